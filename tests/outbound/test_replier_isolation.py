"""The replier handles each claimed job on its own: one failed post, even one whose failure
cannot be recorded (a database error), neither cancels the other posts nor the heartbeat
that keeps their shared lease."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from federation.types import Account, Mention, OutgoingPost, PostResult, Visibility
from fedibot.config.loader import parse_config
from fedibot.intake.mention_codec import mention_to_dict
from fedibot.moderation.policy import Policy
from fedibot.moderation.prompt_filter import PromptFilter
from fedibot.outbound.replier import Replier, Skipped
from fedibot.queue.jobs import JobQueue, NewJob
from fedibot.storage.models import JobState
from tests.e2e_support import eventually


class StubAdapter:
    """Posts succeed, except for the request "boom"; the request "slow" waits for `release`."""

    name = "main"
    platform = "stub"
    idempotency_window = 0.0

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.posted: list[str] = []
        self.failed = asyncio.Event()

    def escape_text(self, text: str) -> str:
        return text

    async def find_post(self, post: OutgoingPost, lookup: Any) -> PostResult | None:
        return None

    async def upload(self, item: Any) -> str:
        raise AssertionError("help has no images")

    async def media_available(self, ref: str) -> bool:
        return False

    async def post(self, post: OutgoingPost) -> PostResult:
        if post.in_reply_to_id == "boom":
            self.failed.set()
            raise RuntimeError("the server exploded")
        if post.in_reply_to_id == "slow":
            await self.release.wait()
        self.posted.append(str(post.in_reply_to_id))
        return PostResult(remote_id=f"reply-{post.in_reply_to_id}")


def _help_job(remote_id: str) -> NewJob:
    author = Account(platform="stub", id="1", acct="alice@remote.test")
    mention = Mention(
        platform="stub",
        bot_account="main",
        remote_id=remote_id,
        author=author,
        text="help",
        visibility=Visibility.PUBLIC,
        created_at=datetime.now(UTC),
    )
    return NewJob(
        platform="stub",
        bot_account="main",
        remote_id=remote_id,
        requester=author.acct,
        kind="help",
        state=JobState.GENERATED,
        visibility="unlisted",
        request=mention_to_dict(mention),
    )


async def test_one_failing_post_cancels_neither_the_heartbeat_nor_the_other_posts(
    sqlite_db, tmp_path
) -> None:
    config = parse_config({"data_dir": str(tmp_path), "replies": {"lease_seconds": 5}})
    queue = JobQueue(sqlite_db)
    policy = Policy(sqlite_db, config.policy, config.quotas, PromptFilter(config.prompt_filter))
    adapter = StubAdapter()
    replier = Replier(queue, {"main": adapter}, policy, config, usage="usage")  # type: ignore[dict-item]
    ids = {name: (await queue.enqueue(_help_job(name))).job_id for name in ("ok", "boom", "slow")}

    async def database_gone(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the database went away")

    queue.reply_failed = database_gone  # type: ignore[method-assign]  # recording fails too
    beats: list[float] = []
    real_heartbeat = queue.heartbeat

    async def heartbeat(*args: Any, **kwargs: Any) -> int:
        if adapter.failed.is_set():
            beats.append(1.0)
        return await real_heartbeat(*args, **kwargs)

    queue.heartbeat = heartbeat  # type: ignore[method-assign]
    task = asyncio.ensure_future(replier.process_once())
    await eventually(adapter.failed.is_set, timeout=10)
    await eventually(lambda: beats, timeout=10)  # still beating after the failure
    assert not task.done()
    adapter.release.set()
    assert await asyncio.wait_for(task, 10) == 3
    assert sorted(adapter.posted) == ["ok", "slow"]
    for name in ("ok", "slow"):
        job = await queue.get(ids[name])
        assert job is not None and job.state == JobState.DONE
    boom = await queue.get(ids["boom"])
    assert boom is not None and boom.state == JobState.REPLYING  # back when its lease ends


def test_skipped_is_a_named_outcome() -> None:
    assert Skipped("user_banned") == Skipped("user_banned")
    assert "user_banned" in repr(Skipped("user_banned"))
