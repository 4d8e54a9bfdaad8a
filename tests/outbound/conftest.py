"""A bot "process" without the generator, against a fake server over real HTTP.

`World` holds what survives a crash (the fake server, the database file, the clock); each
`await world.process()` is a fresh process on it: a new adapter (started) and a new Replier
(and campaign manager). Jobs are put into the queue in the state the replier takes them
from, with small PNG files as their images. Time is the injected `Clock`: the queue's
leases and backoffs and the fake servers' idempotency-key lifetimes (Mastodon: an hour,
Lemmy 1.0: two minutes) all read it. `platform` is "mastodon", "lemmy" (0.19) or "lemmy-v4".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from federation.base import Adapter, MemoryCursorStore
from federation.lemmy import LemmyAdapter
from federation.mastodon import MastodonAdapter
from federation.pacing import Budget
from federation.types import Mention
from federation.visibility import reply_visibility
from fedibot.campaigns.manager import CampaignManager
from fedibot.config.loader import FedibotConfig, parse_config
from fedibot.intake.mention_codec import mention_to_dict
from fedibot.moderation.policy import Policy
from fedibot.moderation.prompt_filter import PromptFilter
from fedibot.outbound.post_once import PostOnce
from fedibot.outbound.replier import Replier
from fedibot.queue.jobs import JobQueue, NewJob, QueueSettings
from fedibot.storage.database import Database
from fedibot.storage.migrate import upgrade
from fedibot.storage.models import JobState, ReplyState
from tests.e2e_support import NO_QUOTAS
from tests.fakes.lemmy_server import FakeLemmy
from tests.fakes.mastodon_server import FakeMastodon

T0 = 1_900_000_000.0
LEASE = 60.0
USAGE = "How to ask me for images: mention me with a prompt, e.g. a red fox --n 2"
BOT_PASSWORD = "correct horse"


class Crash(BaseException):
    """The process dies here: no `except Exception` handler sees it, nothing is recorded."""


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def crash_once(obj: Any, name: str) -> list[int]:
    """Make `obj.name(...)` die (Crash) on its next call only; returns a call counter."""
    real = getattr(obj, name)
    calls: list[int] = []

    async def dying(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            if name == "mark_posted":  # the server has the post; the record never happens
                raise Crash(f"killed before {name}")
            raise Crash(f"killed at {name}")
        return await real(*args, **kwargs)

    setattr(obj, name, dying)
    return calls


class Process:
    """One bot process: a started adapter and the replier around it."""

    def __init__(self, world: World, adapter: Adapter, replier: Replier) -> None:
        self.world = world
        self.adapter = adapter
        self.replier = replier

    async def reply_once(self) -> int:
        return await self.replier.process_once()

    def block_images(self) -> None:
        """The server's image budget is spent for an hour (replies wait; notices go out)."""
        if isinstance(self.adapter, MastodonAdapter):
            self.adapter.media_budget.exhausted_for(3600)
        else:
            assert isinstance(self.adapter, LemmyAdapter)
            self.adapter._images.block(3600)


class World:
    def __init__(self, platform: str, fake: Any, tmp_path: Path, clock: Clock) -> None:
        self.platform = platform
        self.fake = fake
        self.tmp_path = tmp_path
        self.clock = clock
        self.db_file = tmp_path / "bot.db"
        self.db: Database | None = None
        self.queue: JobQueue | None = None
        self.config = self._config()
        self._processes: list[Process] = []
        self._images = 0
        if platform == "mastodon":
            self.requester = fake.add_user("alice@remote.test")
        else:
            self.requester = fake.add_user("alice", domain="remote.test")

    def _config(self) -> FedibotConfig:
        if self.platform == "mastodon":
            account: dict[str, Any] = {
                "platform": "mastodon",
                "name": "main",
                "base_url": self.fake.base_url,
                "access_token": self.fake.bot_token,
                "request_timeout_seconds": 10,
            }
        else:
            account = {
                "platform": "lemmy",
                "name": "main",
                "base_url": self.fake.base_url,
                "username": self.fake.bot["name"],
                "password": BOT_PASSWORD,
                "request_timeout_seconds": 10,
            }
        return parse_config(
            {
                "data_dir": str(self.tmp_path / "data"),
                "database": {"url": f"sqlite:///{self.db_file}"},
                "server": {"enabled": False},
                "replies": {"lease_seconds": LEASE, "notify_wait_seconds": 900},
                "queue": {"retry_base_seconds": 1, "reply_retry_max_seconds": 30},
                "quotas": NO_QUOTAS,
                "accounts": [account],
            }
        )

    async def open_database(self, path: Path | None = None) -> None:
        """(Re)open the database; a new `path` is a reset database (a new install)."""
        if self.db is not None:
            await self.db.dispose()
        if path is not None:
            self.db_file = path
        self.db = Database(f"sqlite:///{self.db_file}")
        await upgrade(self.db)
        q = self.config.queue
        self.queue = JobQueue(
            self.db,
            QueueSettings(
                retry_base_seconds=q.retry_base_seconds,
                reply_retry_max_seconds=q.reply_retry_max_seconds,
                clock=self.clock,
            ),
        )

    async def process(self) -> Process:
        """A fresh bot process on the same database and server."""
        assert self.db is not None and self.queue is not None
        account = self.config.account("main")
        adapter: Adapter
        if self.platform == "mastodon":
            mastodon = MastodonAdapter(account, MemoryCursorStore())  # type: ignore[arg-type]
            mastodon.media_poll_initial_delay = 0.01
            mastodon.media_budget = Budget("media", None, None)
            adapter = mastodon
        else:
            adapter = LemmyAdapter(account, MemoryCursorStore())  # type: ignore[arg-type]
        await adapter.start()
        policy = Policy(
            self.db, self.config.policy, self.config.quotas, PromptFilter(self.config.prompt_filter)
        )
        outbound = PostOnce(self.db, self.clock)  # one way out, shared as in App
        campaigns = CampaignManager(
            self.config, self.queue, self.db, clock=self.clock, outbound=outbound
        )
        replier = Replier(
            self.queue,
            {"main": adapter},
            policy,
            self.config,
            usage=USAGE,
            worker_id=f"replier-{len(self._processes)}",
            campaign_poster=campaigns.post,
            outbound=outbound,
        )
        process = Process(self, adapter, replier)
        self._processes.append(process)
        return process

    async def close(self) -> None:
        for process in self._processes:
            await process.adapter.close()
        if self.db is not None:
            await self.db.dispose()

    # ------------------------------------------------------------------ requests & jobs

    async def request(self, text: str, visibility: str = "public") -> Mention:
        """Someone mentions the bot; the mention as the adapter hands it over."""
        if self.platform == "mastodon":
            self.fake.mention("alice@remote.test", f"@fedibot {text}", visibility=visibility)
        else:
            self.fake.mention(self.requester, text)
        return await self._received()

    async def private_request(self, text: str, *, local: bool = False) -> Mention:
        """Lemmy: a private message to the bot, from remote alice or from a local user."""
        sender = self.fake.add_user("carol") if local else self.requester
        self.fake.private_message(sender, text)
        return await self._received()

    async def _received(self) -> Mention:
        got: list[Mention] = []

        async def sink(mention: Mention) -> None:
            got.append(mention)

        adapter: Adapter
        if self.platform == "mastodon":
            adapter = MastodonAdapter(self.config.account("main"), MemoryCursorStore())  # type: ignore[arg-type]
        else:
            adapter = LemmyAdapter(self.config.account("main"), MemoryCursorStore())  # type: ignore[arg-type]
        await adapter.start()
        await adapter.catch_up(sink)
        await adapter.close()
        assert got, "the fake's mention did not arrive"
        return got[-1]

    def _image(self) -> dict[str, Any]:
        self._images += 1
        path = self.tmp_path / f"image-{self._images}.png"
        Image.new("RGB", (8, 8), (self._images * 40 % 256, 90, 200)).save(path)
        return {
            "index": 0,
            "seed": 1000 + self._images,
            "path": str(path),
            "width": 8,
            "height": 8,
            "flagged": False,
            "safety": {},
        }

    async def _generated(self, job: NewJob, images: int) -> int:
        assert self.queue is not None
        result = await self.queue.enqueue(job)
        claimed = await self.queue.claim("generator", 1)
        assert [r.id for r in claimed] == [result.job_id]
        rows = [{**self._image(), "index": i} for i in range(images)]
        assert await self.queue.complete("generator", result.job_id, rows)
        return result.job_id

    def _job(self, mention: Mention, **values: Any) -> NewJob:
        defaults: dict[str, Any] = {
            "platform": mention.platform,
            "bot_account": "main",
            "remote_id": mention.remote_id,
            "requester": mention.author.acct.lower(),
            "requester_domain": mention.author.domain,
            "prompt": "a red fox",
            "model": "tiny",
            "width": 8,
            "height": 8,
            "steps": 2,
            "visibility": reply_visibility(mention.visibility, "unlisted").value,
            "request": mention_to_dict(mention),
        }
        return NewJob(**{**defaults, **values})

    async def result_job(self, mention: Mention, images: int = 2) -> int:
        return await self._generated(self._job(mention, n=images), images)

    async def help_job(self, mention: Mention) -> int:
        assert self.queue is not None
        job = self._job(mention, kind="help", state=JobState.GENERATED)
        return (await self.queue.enqueue(job)).job_id

    async def error_job(self, mention: Mention) -> int:
        assert self.queue is not None
        job = self._job(
            mention,
            state=JobState.REJECTED,
            error_code="bad_option",
            error_message="--steps must be 1-50 (you asked for 999 @bob@else.test)",
            reply_state=ReplyState.PENDING,
        )
        return (await self.queue.enqueue(job)).job_id

    async def campaign_job(self, at: float = T0) -> int:
        job = NewJob(
            kind="campaign",
            platform=self.platform,
            bot_account="main",
            remote_id=f"campaign:fox:{int(at)}",
            requester="campaign:fox",
            prompt="a red fox",
            model="tiny",
            width=8,
            height=8,
            steps=2,
            visibility="public",
            params={
                "campaign": "fox",
                "scheduled_at": at,
                "thread": False,
                "text": "Fox of the minute: a red fox #foxes",
                "alt_text": "A fox. Seed {seed}.",
            },
        )
        return await self._generated(job, 1)

    async def job(self, job_id: int) -> Any:
        assert self.queue is not None
        row = await self.queue.get(job_id)
        assert row is not None
        return row

    # ------------------------------------------------------------------ what the server has

    def bot_posts(self) -> list[dict[str, Any]]:
        """Every post of the bot still on the server (statuses, comments, messages)."""
        if self.platform == "mastodon":
            return [
                s for s in self.fake.statuses.values() if s["account"]["id"] == self.fake.bot["id"]
            ]
        return list(self.fake.comments_by(self.fake.bot)) + list(
            self.fake.messages_by(self.fake.bot)
        )

    def has_media(self, post: dict[str, Any]) -> bool:
        if self.platform == "mastodon":
            return bool(post["media_attachments"])
        return "](" in str(post.get("content") or "")

    def uploads(self) -> int:
        """Upload requests the server received."""
        if self.platform == "mastodon":
            return int(self.fake.count("POST", "/api/v2/media"))
        return len([r for r in self.fake.requests if r.method == "POST" and "image" in r.path])

    def orphans(self) -> list[Any]:
        """Uploads on the server that no post of the bot shows."""
        if self.platform == "mastodon":
            return list(self.fake.orphan_media())
        shown = " ".join(str(p.get("content") or "") for p in self.bot_posts())
        return [name for name in self.fake.images if name not in shown]

    def expire_idempotency_keys(self) -> None:
        """Time passes beyond every key's lifetime on the server (Mastodon: 1 hour, Lemmy
        1.0: 2 minutes; 0.19 has none)."""
        if self.platform == "mastodon":
            self.clock.advance(self.fake.idempotency_ttl + 1)
        elif self.fake.api_version == "v4":
            self.clock.advance(self.fake.idempotency_memory + 1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["mastodon", "lemmy", "lemmy-v4"])
def platform(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def world(platform: str, tmp_path: Path, clock: Clock) -> AsyncIterator[World]:
    fake: Any
    if platform == "mastodon":
        fake = FakeMastodon(heartbeat_interval=0.2)
        fake.idempotency_clock = clock
        await fake.start()
    else:
        fake = FakeLemmy(
            "v4" if platform == "lemmy-v4" else "v3",
            bot_password=BOT_PASSWORD,
            rate_limits={"message": (100_000, 60), "comment": (1000, 60), "image": (1000, 60)},
        )
        fake.set_clock(clock)
        await fake.start()
    built = World(platform, fake, tmp_path, clock)
    await built.open_database()
    try:
        yield built
    finally:
        await built.close()
        await fake.close()


MakeWorld = Callable[[str], World]
