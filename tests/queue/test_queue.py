"""The durable queue on a real SQLite file and the real PostgreSQL server."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from fedibot.queue.jobs import JobQueue, NewJob, QueueSettings
from fedibot.storage.models import JobState, ReplyState


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def job(remote_id: str, requester: str = "alice@example.social", **kw) -> NewJob:
    base = dict(
        platform="mastodon",
        bot_account="main",
        remote_id=remote_id,
        requester=requester,
        requester_domain=requester.rsplit("@", 1)[-1],
        prompt=f"a lighthouse {remote_id}",
        model="tiny",
        width=64,
        height=64,
        steps=2,
        guidance=5.0,
    )
    base.update(kw)
    return NewJob(**base)


async def test_same_mention_enqueued_twice_is_one_job(db):
    queue = JobQueue(db)
    first = await queue.enqueue(job("111"))
    second = await queue.enqueue(job("111", prompt="something else"))
    assert first.created and not second.created
    assert first.job_id == second.job_id
    assert (await queue.stats())[JobState.QUEUED] == 1
    assert (await queue.get(first.job_id)).prompt == "a lighthouse 111"


async def test_eight_concurrent_claimers_complete_each_of_1000_jobs_exactly_once(db):
    queue = JobQueue(db, QueueSettings(per_requester_in_flight=1000))
    for i in range(1000):
        await queue.enqueue(job(str(i), requester=f"user{i % 37}@example.social"))
    completed: Counter[int] = Counter()

    async def claimer(name: str) -> None:
        while True:
            batch = await queue.claim(name, max_batch=8)
            if not batch:
                return
            for row in batch:
                assert row.lease_owner == name
                if await queue.complete(name, row.id, []):
                    completed[row.id] += 1

    await asyncio.gather(*(claimer(f"w{i}") for i in range(8)))
    assert len(completed) == 1000
    assert set(completed.values()) == {1}
    stats = await queue.stats()
    assert stats[JobState.GENERATED] == 1000
    assert stats[JobState.QUEUED] == stats[JobState.GENERATING] == 0


async def test_claim_returns_only_compatible_jobs(db):
    queue = JobQueue(db, QueueSettings(per_requester_in_flight=100))
    for i in range(6):
        await queue.enqueue(job(f"a{i}", width=64 if i % 2 else 128))
    batch = await queue.claim("w", max_batch=8)
    assert len(batch) == 3
    assert len({(r.model, r.width, r.height, r.steps, r.guidance) for r in batch}) == 1


async def test_requester_with_one_job_is_served_among_the_first_two(db):
    queue = JobQueue(db, QueueSettings(per_requester_in_flight=100))
    for i in range(50):
        await queue.enqueue(job(f"a{i}", requester="a@one.example"))
    await queue.enqueue(job("b0", requester="b@two.example"))
    first_two = [(await queue.claim("w", max_batch=1))[0] for _ in range(2)]
    assert "b@two.example" in {r.requester for r in first_two}


async def test_round_robin_interleaves_requesters_in_a_batch(db):
    queue = JobQueue(db, QueueSettings(per_requester_in_flight=100))
    for i in range(5):
        await queue.enqueue(job(f"a{i}", requester="a@one.example"))
    for i in range(5):
        await queue.enqueue(job(f"b{i}", requester="b@two.example"))
    batch = await queue.claim("w", max_batch=4)
    assert [r.requester[0] for r in batch] == ["a", "b", "a", "b"]


async def test_per_requester_in_flight_cap(db):
    queue = JobQueue(db, QueueSettings(per_requester_in_flight=2))
    for i in range(5):
        await queue.enqueue(job(f"a{i}", requester="a@one.example"))
    await queue.enqueue(job("b0", requester="b@two.example"))
    batch = await queue.claim("w", max_batch=8)
    assert Counter(r.requester for r in batch) == {"a@one.example": 2, "b@two.example": 1}
    assert await queue.claim("w2", max_batch=8) == []  # a is at its cap, b has nothing left
    await queue.complete("w", batch[0].id, [])
    assert len(await queue.claim("w2", max_batch=8)) == 1


async def test_claimer_dying_mid_lease_gives_jobs_back_after_expiry(db):
    clock = FakeClock()
    queue = JobQueue(db, QueueSettings(lease_seconds=60, retry_base_seconds=1, clock=clock))
    for i in range(3):
        await queue.enqueue(job(str(i), requester=f"u{i}@example.social"))
    lost = await queue.claim("dead-worker", max_batch=8)
    assert len(lost) == 3
    clock.advance(30)
    assert await queue.requeue_expired() == 0  # lease still valid
    assert await queue.claim("other", max_batch=8) == []
    clock.advance(31)
    assert await queue.requeue_expired() == 3
    clock.advance(10)  # past the retry backoff
    again = await queue.claim("other", max_batch=8)
    assert sorted(r.id for r in again) == sorted(r.id for r in lost)
    assert all(r.attempts == 0 for r in again)  # claimed, never started: nothing counted
    for row in again:
        assert await queue.complete("other", row.id, [])
    # the dead worker coming back late cannot complete what it no longer holds
    assert not await queue.complete("dead-worker", lost[0].id, [])
    assert (await queue.stats())[JobState.GENERATED] == 3


async def test_heartbeat_keeps_the_lease(db):
    clock = FakeClock()
    queue = JobQueue(db, QueueSettings(lease_seconds=60, clock=clock))
    await queue.enqueue(job("1"))
    claimed = await queue.claim("w", max_batch=1)
    for _ in range(5):
        clock.advance(50)
        assert await queue.heartbeat("w", [claimed[0].id]) == 1
        assert await queue.requeue_expired() == 0
    assert await queue.complete("w", claimed[0].id, [])


async def test_retryable_failure_backs_off_then_fails_with_error_reply(db):
    clock = FakeClock()
    queue = JobQueue(
        db,
        QueueSettings(max_attempts=3, retry_base_seconds=10, retry_max_seconds=100, clock=clock),
    )
    job_id = (await queue.enqueue(job("1"))).job_id
    for attempt in (1, 2):
        (claimed,) = await queue.claim("w", max_batch=1)
        assert claimed.attempts == attempt - 1  # counted when generation starts or fails
        assert (
            await queue.fail("w", job_id, "generation_failed", "boom", retryable=True) == "queued"
        )
        assert await queue.claim("w", max_batch=1) == []  # backoff holds it
        row = await queue.get(job_id)
        assert row.not_before - clock.now >= 5 * attempt  # at least half of base·2^(n-1)
        clock.advance(row.not_before - clock.now + 0.01)
    await queue.claim("w", max_batch=1)
    assert await queue.fail("w", job_id, "generation_failed", "boom", retryable=True) == "failed"
    row = await queue.get(job_id)
    assert row.state == JobState.FAILED and row.reply_state == ReplyState.PENDING


async def test_reply_flow_and_crash_in_replying_resumes(db):
    clock = FakeClock()
    queue = JobQueue(db, QueueSettings(clock=clock))
    job_id = (await queue.enqueue(job("1"))).job_id
    await queue.claim("w", max_batch=1)
    await queue.complete("w", job_id, [dict(index=0, seed=1, path="/x.png", width=64, height=64)])
    (claimed,) = await queue.claim_replies("replier-1", lease_seconds=30)
    assert claimed.state == JobState.REPLYING
    clock.advance(31)  # the replier died before finishing
    assert await queue.requeue_expired() == 1
    (claimed,) = await queue.claim_replies("replier-2", lease_seconds=30)
    assert await queue.reply_sent("replier-2", job_id, "remote-1")
    row = await queue.get(job_id)
    assert row.state == JobState.DONE and row.reply_remote_id == "remote-1"
    assert len(await queue.images(job_id)) == 1


async def test_transient_reply_failure_is_never_dropped(db):
    clock = FakeClock()
    queue = JobQueue(db, QueueSettings(clock=clock))
    job_id = (await queue.enqueue(job("1"))).job_id
    await queue.claim("w", max_batch=1)
    await queue.complete("w", job_id, [])
    for _ in range(20):
        assert len(await queue.claim_replies("r")) == 1
        state = await queue.reply_failed(
            "r", job_id, "remote_unavailable", "503", retryable=True, retry_after=42
        )
        assert state == JobState.GENERATED
        assert await queue.claim_replies("r") == []
        clock.advance(10_000)
    assert (await queue.get(job_id)).state == JobState.GENERATED


async def test_a_retry_that_must_repeat_a_request_token_comes_back_in_time(db):
    """`retry_within` (an unanswered create the server remembers for a while) caps the
    delay that the backoff and the server's Retry-After would give."""
    clock = FakeClock()
    queue = JobQueue(db, QueueSettings(clock=clock, reply_retry_max_seconds=3600))
    job_id = (await queue.enqueue(job("1"))).job_id
    await queue.claim("w", max_batch=1)
    await queue.complete("w", job_id, [])
    await queue.claim_replies("r")
    await queue.reply_failed(
        "r", job_id, "remote_unavailable", "504", retryable=True, retry_after=600, retry_within=40
    )
    assert (await queue.get(job_id)).not_before == clock() + 40
    clock.advance(40)
    assert len(await queue.claim_replies("r")) == 1
    await queue.reply_failed(
        "r", job_id, "remote_unavailable", "504", retryable=True, retry_after=600
    )
    assert (await queue.get(job_id)).not_before == clock() + 600  # without it: as before


async def test_cancel_and_retry(db):
    queue = JobQueue(db)
    job_id = (await queue.enqueue(job("1"))).job_id
    assert await queue.cancel(job_id, "request deleted")
    assert not await queue.cancel(job_id)
    assert await queue.claim("w", max_batch=1) == []
    assert await queue.retry(job_id)
    assert (await queue.claim("w", max_batch=1))[0].id == job_id


async def test_retention_purges_old_jobs_and_their_files(db, tmp_path: Path):
    clock = FakeClock()
    queue = JobQueue(db, QueueSettings(clock=clock))
    old_id = (await queue.enqueue(job("old"))).job_id
    await queue.claim("w", max_batch=1)
    image = tmp_path / "images" / str(old_id) / "0.png"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"png")
    await queue.complete("w", old_id, [dict(index=0, seed=1, path=str(image), width=1, height=1)])
    await queue.claim_replies("r")
    await queue.reply_sent("r", old_id, "x")
    clock.advance(10 * 86400)
    fresh_id = (await queue.enqueue(job("new"))).job_id
    assert await queue.purge(7 * 86400) == (1, 1)
    assert not image.exists()
    assert await queue.get(old_id) is None
    assert await queue.get(fresh_id) is not None


async def test_heartbeat_keeps_an_error_reply_lease(db):
    clock = FakeClock()
    queue = JobQueue(db, QueueSettings(clock=clock))
    job_id = (
        await queue.enqueue(
            job(
                "1",
                state=JobState.REJECTED,
                error_code="bad_option",
                reply_state=ReplyState.PENDING,
            )
        )
    ).job_id
    (claimed,) = await queue.claim_replies("r", lease_seconds=30)
    assert claimed.reply_state == ReplyState.SENDING
    clock.advance(20)
    assert await queue.heartbeat("r", [job_id], 30) == 1
    clock.advance(20)
    assert await queue.requeue_expired() == 0
    assert await queue.reply_sent("r", job_id, "remote-9")
    assert (await queue.get(job_id)).reply_state == ReplyState.SENT


async def test_retry_starts_with_fresh_images(db, tmp_path: Path):
    queue = JobQueue(db)
    job_id = (await queue.enqueue(job("1"))).job_id
    await queue.claim("w", max_batch=1)
    old = tmp_path / "0.png"
    old.write_bytes(b"png")
    await queue.complete("w", job_id, [dict(index=0, seed=1, path=str(old), width=1, height=1)])
    await queue.claim_replies("r")
    await queue.reply_failed("r", job_id, "remote_refused", "422", retryable=False)
    assert (await queue.get(job_id)).state == JobState.FAILED
    assert await queue.retry(job_id)
    assert await queue.images(job_id) == [] and not old.exists()
    help_id = (await queue.enqueue(job("h", kind="help", state=JobState.FAILED))).job_id
    assert not await queue.retry(help_id)  # notices never go to the generator
