"""Leases after issue 15: attempts count generations, not claims; a dead worker's jobs come
back without blame (poison isolated into a batch of one first); a restarted worker takes back
its own jobs at once; expired leases do not hold the per-requester cap; images live in the
database; the Horde's open requests stay with the Horde."""

from __future__ import annotations

from fedibot.queue.jobs import JobQueue, QueueSettings
from fedibot.queue.work_source import QueueWorkSource
from fedibot.storage.models import JobState, ReplyState
from tests.queue.test_queue import FakeClock, job


def _queue(db, clock: FakeClock, **kw) -> JobQueue:  # type: ignore[no-untyped-def]
    settings = dict(lease_seconds=60, retry_base_seconds=1, retry_max_seconds=2, clock=clock)
    settings.update(kw)
    return JobQueue(db, QueueSettings(**settings))  # type: ignore[arg-type]


async def _enqueue(queue: JobQueue, n: int, prefix: str = "j") -> list[int]:
    ids = []
    for i in range(n):
        ids.append((await queue.enqueue(job(f"{prefix}{i}", requester=f"u{i}@x.example"))).job_id)
    return ids


async def test_prefetched_jobs_that_never_started_cost_no_attempt(db):
    clock = FakeClock()
    queue = _queue(db, clock, max_attempts=1)
    await _enqueue(queue, 3)
    for _ in range(5):  # a worker dying five times with these jobs prefetched
        assert len(await queue.claim("w", max_batch=8)) == 3
        clock.advance(61)
        assert await queue.requeue_expired() == 3
    rows = await queue.list_jobs()
    assert all(r.state == JobState.QUEUED and r.attempts == 0 and r.crashes == 0 for r in rows)
    assert all(r.not_before <= clock.now for r in rows)  # no backoff either


async def test_attempts_count_when_generation_starts_and_fails(db):
    clock = FakeClock()
    queue = _queue(db, clock, max_attempts=2)
    [job_id] = await _enqueue(queue, 1)
    await queue.claim("w", max_batch=1)
    assert await queue.start("w", [job_id]) == 1
    assert await queue.start("w", [job_id]) == 0  # once per lease
    assert (await queue.get(job_id)).attempts == 1
    assert await queue.fail("w", job_id, "generation_failed", "x", retryable=True) == "queued"
    clock.advance(10)
    await queue.claim("w", max_batch=1)
    await queue.start("w", [job_id])
    assert await queue.fail("w", job_id, "generation_failed", "x", retryable=True) == "failed"
    # a stopped worker handing back a started job gets the attempt back
    [other] = await _enqueue(queue, 1, prefix="o")
    await queue.claim("w", max_batch=1)
    await queue.start("w", [other])
    assert await queue.release("w", [other]) == 1
    assert (await queue.get(other)).attempts == 0


async def test_worker_dying_mid_batch_blames_nobody_and_isolates_the_batch(db):
    clock = FakeClock()
    queue = _queue(db, clock, max_attempts=1)
    ids = await _enqueue(queue, 4)
    batch = await queue.claim("w", max_batch=8)
    assert len(batch) == 4
    await queue.start("w", ids)
    clock.advance(61)
    assert await queue.requeue_expired() == 4
    rows = {r.id: r for r in await queue.list_jobs()}
    assert all(rows[i].state == JobState.QUEUED for i in ids)
    assert all(rows[i].attempts == 0 and rows[i].crashes == 1 for i in ids)
    # each suspect is claimed alone from now on
    for _ in ids:
        (alone,) = await queue.claim("w2", max_batch=8)
        await queue.start("w2", [alone.id])
        assert await queue.complete("w2", alone.id, [])
    assert (await queue.stats())[JobState.GENERATED] == 4


async def test_a_poison_job_is_isolated_then_given_up_while_the_rest_is_served(db):
    clock = FakeClock()
    queue = _queue(db, clock, max_attempts=2)
    ids = await _enqueue(queue, 4)
    poison = ids[0]
    done: set[int] = set()
    for _round in range(20):
        batch = await queue.claim("w", max_batch=8)
        if not batch:
            clock.advance(5)  # past the backoff of a suspect
            if (await queue.stats())[JobState.QUEUED] == 0:
                break
            continue
        await queue.start("w", [r.id for r in batch])
        if any(r.id == poison for r in batch):  # the worker dies on it
            clock.advance(61)
            await queue.requeue_expired()
            continue
        for r in batch:
            assert await queue.complete("w", r.id, [])
            done.add(r.id)
    assert done == set(ids[1:])
    row = await queue.get(poison)
    assert row.state == JobState.FAILED and row.reply_state == ReplyState.PENDING
    assert row.crashes == 3  # once in the batch (no blame), then twice alone
    assert "stopped 3 times" in row.error_message


async def test_restarted_worker_takes_back_its_jobs_at_once(db):
    clock = FakeClock()
    queue = _queue(db, clock)
    ids = await _enqueue(queue, 3)
    held = await queue.claim("worker-host-abc", max_batch=8)
    await queue.start("worker-host-abc", [r.id for r in held])
    other = await queue.claim("someone-else", max_batch=8)
    assert other == []
    # the same stable id starts again: its first claim takes everything back, no lease wait
    source = QueueWorkSource(queue)
    again = await source.claim("worker-host-abc", 8, 60)
    assert len(again) == 1 and again[0].job_id in ids  # suspects come back one at a time
    rows = await queue.list_jobs()
    assert all(r.crashes == 1 and r.attempts == 0 for r in rows)  # nobody blamed
    assert sum(r.state == JobState.QUEUED for r in rows) == 2


async def test_expired_leases_do_not_count_against_the_in_flight_cap(db):
    clock = FakeClock()
    queue = _queue(db, clock, per_requester_in_flight=1)
    for i in range(3):
        await queue.enqueue(job(f"a{i}", requester="a@x.example"))
    assert len(await queue.claim("dead", max_batch=8)) == 1
    assert await queue.claim("live", max_batch=8) == []  # capped by the live lease
    clock.advance(61)  # the lease ran out, nobody has swept it yet
    got = await queue.claim("live", max_batch=8)
    assert len(got) == 1


async def test_images_live_in_the_database_and_go_with_purge_and_retry(db):
    clock = FakeClock()
    queue = _queue(db, clock)
    [a, b] = await _enqueue(queue, 2)
    await queue.claim("w", max_batch=8)
    png = b"\x89PNG fake bytes"
    row = dict(index=0, seed=1, path="/elsewhere/0.png", width=64, height=64, data=png)
    assert await queue.complete("w", a, [row, {**row, "index": 1, "data": png * 2}])
    assert await queue.complete("w", b, [row])
    images = await queue.images(a)
    assert [i.path for i in images] == [f"db:{a}/0", f"db:{a}/1"]
    assert await queue.image_bytes(a, images) == {0: png, 1: png * 2}
    # retry (after a failure) drops the old images
    await queue.cancel(b)
    assert await queue.retry(b)
    assert await queue.images(b) == [] and await queue.image_bytes(b, [images[0]]) == {}
    # purge removes the bytes with the job
    await queue.cancel(a)
    clock.advance(10)
    assert await queue.purge(5) == (1, 2)
    assert await queue.image_bytes(a, images) == {}


async def test_open_horde_request_stays_with_the_horde_and_returned_local_stays_local(db):
    from fedibot.queue.horde_store import SqlHordeJobStore
    from fedibot.queue.work_source import request_from_row

    clock = FakeClock()
    queue = _queue(db, clock, horde_orphan_seconds=600)
    ids = await _enqueue(queue, 3)
    rows = await queue.claim_for_horde("horde-1", 2, 60, lambda r: True)
    assert [r.id for r in rows] == ids[:2] and all(r.attempts == 1 for r in rows)
    store = SqlHordeJobStore(queue, "horde-1", 60)
    await store.record_submitting(request_from_row(rows[0]))
    await store.record_submitted(ids[0], "hid-1", clock.now)
    await store.record_submitting(request_from_row(rows[1]))
    await store.record_done(ids[1], "returned_local", "horde_faulted")
    await queue.fail("horde-1", ids[1], "horde_faulted", "x", retryable=True)
    clock.advance(61)  # the Horde worker died
    assert await queue.requeue_expired() == 0  # job 0 is not handed to a local worker
    assert (await queue.get(ids[0])).state == JobState.GENERATING
    # the Horde never takes the returned job again; it adopts the orphan first
    clock.advance(10)
    again = await queue.claim_for_horde("horde-2", 5, 60, lambda r: r.id != ids[2])
    assert [r.id for r in again] == [ids[0]]
    # a restarted Horde worker with the old id resumes only its own or expired records
    assert await SqlHordeJobStore(queue, "horde-1", 60).load_pending() == []
    [rec] = await SqlHordeJobStore(queue, "horde-2", 60).load_pending()
    assert rec.horde_id == "hid-1" and rec.request.job_id == ids[0]
    # local claims take the returned job
    local = await queue.claim("local", max_batch=8)
    assert ids[1] in {r.id for r in local}
    # an orphan nobody resumes goes local after horde_orphan_seconds
    clock.advance(700)
    assert await queue.requeue_expired() >= 1
    assert (await store.get(ids[0])).state == "returned_local"
