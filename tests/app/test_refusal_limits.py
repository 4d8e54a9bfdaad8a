"""Refusals cost something: at most one refusal reply per requester per
`policy.refusal_reply_window_minutes`, refused requests count toward the hourly quota, and an
edit that raises --n goes through the quota check again. Real SQLite file, injected clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from federation.types import Account, Mention, Visibility
from fedibot.config.loader import parse_config
from fedibot.intake.ingest import Ingest
from fedibot.moderation.policy import Policy
from fedibot.moderation.prompt_filter import PromptFilter
from fedibot.queue.jobs import JobQueue, QueueSettings
from fedibot.storage.models import JobState

T0 = 1_800_000_000.0
_ids = iter(range(70_000, 80_000))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_ingest(db: Any, tmp_path: Any, clock: Clock, **sections: Any) -> Ingest:
    config = parse_config({"data_dir": str(tmp_path), **sections})
    queue = JobQueue(db, QueueSettings(clock=clock))
    policy = Policy(
        db, config.policy, config.quotas, PromptFilter(config.prompt_filter), clock=clock
    )
    return Ingest(queue, policy, config)


def mention(clock: Clock, text: str, acct: str = "spam@remote.example", **kw: Any) -> Mention:
    return Mention(
        platform=kw.pop("platform", "mastodon"),
        bot_account="main",
        remote_id=kw.pop("remote_id", str(next(_ids))),
        author=Account(platform="mastodon", id="1", acct=acct),
        text=text,
        visibility=Visibility.PUBLIC,
        created_at=datetime.fromtimestamp(clock.now, UTC),
        **kw,
    )


async def jobs_of(ingest: Ingest, acct: str = "spam@remote.example") -> list[Any]:
    rows = await ingest.queue.list_jobs(requester=acct, limit=1000)
    return sorted(rows, key=lambda r: r.id)


async def test_thirty_bad_mentions_get_one_reply_and_are_all_recorded(sqlite_db, tmp_path):
    clock = Clock(T0)
    ingest = make_ingest(sqlite_db, tmp_path, clock)
    for i in range(30):
        clock.now = T0 + i  # one a second
        await ingest.handle(mention(clock, "a fox --n 99"))
    rows = await jobs_of(ingest)
    assert len(rows) == 30 and {r.state for r in rows} == {JobState.REJECTED}
    assert [r.reply_state for r in rows].count("pending") == 1
    assert rows[0].reply_state == "pending"
    assert all(r.params.get("reply_suppressed") for r in rows[1:])
    # after the window, the next refusal is answered again
    clock.now = T0 + 10 * 60 + 31
    job_id = await ingest.handle(mention(clock, "a fox --n 99"))
    assert (await ingest.queue.get(job_id)).reply_state == "pending"


async def test_the_window_is_configurable_and_per_requester(sqlite_db, tmp_path):
    clock = Clock(T0)
    ingest = make_ingest(sqlite_db, tmp_path, clock, policy={"refusal_reply_window_minutes": 1})
    first = await ingest.handle(mention(clock, "--bogus"))
    other = await ingest.handle(mention(clock, "--bogus", acct="bob@remote.example"))
    clock.now += 30
    second = await ingest.handle(mention(clock, "--bogus"))
    clock.now += 31
    third = await ingest.handle(mention(clock, "--bogus"))
    states = [(await ingest.queue.get(j)).reply_state for j in (first, other, second, third)]
    assert states == ["pending", "pending", "none", "pending"]


async def test_over_quota_spam_gets_one_reply(sqlite_db, tmp_path):
    clock = Clock(T0)
    ingest = make_ingest(sqlite_db, tmp_path, clock, quotas={"user_requests_per_hour": 2})
    for i in range(32):
        clock.now = T0 + i
        await ingest.handle(mention(clock, f"a fox number {i}"))
    rows = await jobs_of(ingest)
    assert [r.state for r in rows[:2]] == [JobState.QUEUED, JobState.QUEUED]
    refused = rows[2:]
    assert {r.error_code for r in refused} == {"quota_exceeded"}
    assert [r.reply_state for r in refused].count("pending") == 1


async def test_refused_requests_count_toward_the_hourly_quota(sqlite_db, tmp_path):
    clock = Clock(T0)
    ingest = make_ingest(sqlite_db, tmp_path, clock, quotas={"user_requests_per_hour": 5})
    for i in range(5):
        clock.now = T0 + i
        await ingest.handle(mention(clock, "--bogus"))
    clock.now = T0 + 10
    job = await ingest.queue.get(await ingest.handle(mention(clock, "a good fox")))
    assert (job.state, job.error_code) == (JobState.REJECTED, "quota_exceeded")
    # an hour after the refusals the window is free again
    clock.now = T0 + 3600 + 60
    job = await ingest.queue.get(await ingest.handle(mention(clock, "a good fox")))
    assert job.state == JobState.QUEUED


async def test_an_edit_that_raises_n_beyond_the_quota_is_refused(sqlite_db, tmp_path):
    clock = Clock(T0)
    ingest = make_ingest(sqlite_db, tmp_path, clock, quotas={"user_images_per_day": 4})
    first = await ingest.handle(mention(clock, "a fox --n 1", remote_id="e1"))
    await ingest.handle(mention(clock, "a cat --n 2"))
    clock.now += 60
    edited = mention(
        clock, "a fox --n 4", remote_id="e1", edited_at=datetime.fromtimestamp(clock.now, UTC)
    )
    assert await ingest.handle(edited) == first
    job = await ingest.queue.get(first)
    assert (job.state, job.n, job.prompt) == (JobState.QUEUED, 1, "a fox")  # old values
    refusals = [r for r in await jobs_of(ingest) if r.state == JobState.REJECTED]
    assert len(refusals) == 1
    (refusal,) = refusals
    assert refusal.error_code == "quota_exceeded" and refusal.reply_state == "pending"
    assert refusal.request["remote_id"] == "e1"  # the reply goes under the edited post
    assert "edit" in refusal.error_message
    # the same edit delivered again is not a second refusal
    await ingest.handle(edited)
    assert len([r for r in await jobs_of(ingest) if r.state == JobState.REJECTED]) == 1


async def test_an_edit_that_still_fits_is_applied(sqlite_db, tmp_path):
    clock = Clock(T0)
    ingest = make_ingest(
        sqlite_db,
        tmp_path,
        clock,
        quotas={"user_images_per_day": 4, "user_requests_per_hour": 1},
    )
    first = await ingest.handle(mention(clock, "a fox --n 1", remote_id="e2"))
    clock.now += 60
    edited = mention(
        clock, "a fox --n 4", remote_id="e2", edited_at=datetime.fromtimestamp(clock.now, UTC)
    )
    await ingest.handle(edited)
    job = await ingest.queue.get(first)
    assert (job.state, job.n) == (JobState.QUEUED, 4)  # the job itself is not counted twice
