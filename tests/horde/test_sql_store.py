"""The Horde backend on the real database (SQLite file and PostgreSQL): the SQL
HordeJobStore, `claim_for_horde` and a restart in the middle of a Horde job."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fedibot.queue.horde_store import SqlHordeJobStore
from fedibot.queue.jobs import JobQueue, QueueSettings
from fedibot.queue.work_source import QueueWorkSource
from fedibot.storage.models import JobState
from generator.horde import codes
from generator.horde.client import HordeClient
from generator.horde.flow import HordeFlow
from generator.horde.ratelimit import ManualClock
from generator.horde.store import DONE, SUBMITTED
from generator.horde.worker import HordeWorker
from generator.service import GeneratorService
from tests.fakes.horde_server import Behaviour, FakeHorde
from tests.horde.conftest import RecordingClassifier, make_config, wait_for
from tests.queue.test_queue import job


class SqlRig:
    """Queue, store and service on one database; `worker()` is a fresh process's worker."""

    def __init__(self, db: Any, fake: FakeHorde, clock: ManualClock, tmp: Path, **cfg: Any):
        self.fake, self.clock = fake, clock
        self.config = make_config(fake.url, tmp, **cfg)
        self.queue = JobQueue(db, QueueSettings(per_requester_in_flight=10))
        self.service = GeneratorService(self.config, classifier=RecordingClassifier())
        self.clients: list[HordeClient] = []

    def worker(self, worker_id: str = "horde-host-1", **kw: Any) -> HordeWorker:
        client = HordeClient(self.config.horde, clock=self.clock, version="9.9")
        self.clients.append(client)
        store = SqlHordeJobStore(self.queue, worker_id, self.config.lease_seconds)
        source = QueueWorkSource(self.queue, kind="horde", config=self.config)
        kw.setdefault("exit_when_idle", True)

        async def notice(job_id: int, code: str, text: str) -> None:
            await self.queue.add_notice(job_id, code, text)

        return HordeWorker(
            source,
            HordeFlow(client, store, self.config),
            self.service,
            self.config,
            on_notice=notice,
            worker_id=worker_id,
            **kw,
        )

    async def close(self) -> None:
        for c in self.clients:
            await c.close()


async def _enqueue(queue: JobQueue, name: str, **kw: Any) -> int:
    options: dict[str, Any] = {"model": "tiny", "width": 64, "height": 64, **kw}
    return (await queue.enqueue(job(name, **options))).job_id


async def test_restart_mid_horde_job_neither_submits_twice_nor_loses_it(
    db: Any, fake: FakeHorde, clock: ManualClock, tmp_path: Path
) -> None:
    rig = SqlRig(db, fake, clock, tmp_path, backend="horde")
    fake.will(Behaviour(done_after_checks=None))  # never done until we say so
    job_id = await _enqueue(rig.queue, "1", n=2)
    first = rig.worker(exit_when_idle=False)
    task = asyncio.create_task(first.run())
    store = SqlHordeJobStore(rig.queue, "observer", 60)

    async def submitted() -> bool:
        rec = await store.get(job_id)
        return rec is not None and rec.state == SUBMITTED

    await wait_for(submitted)
    [fr] = fake.requests.values()
    await wait_for(lambda: fr.checks >= 2)
    task.cancel()  # the process dies mid-poll
    await asyncio.gather(task, return_exceptions=True)
    row = await rig.queue.get(job_id)
    assert row.state == JobState.GENERATING  # not handed to anyone else
    assert await rig.queue.requeue_expired() == 0

    fr.behaviour.done_after_checks = fr.checks + 1
    second = rig.worker()  # same stable id: resumes from the database at once
    await second.run()
    assert len(fake.submissions) == 1
    row = await rig.queue.get(job_id)
    assert row.state == JobState.GENERATED and row.attempts == 1
    images = await rig.queue.images(job_id)
    blobs = await rig.queue.image_bytes(job_id, images)
    assert len(images) == 2 and all(blobs[i.index].startswith(b"\x89PNG") for i in images)
    assert (await store.get(job_id)).state == DONE
    assert not any((tmp_path / "images").rglob("*.png"))  # the files went into the database
    await rig.close()


async def test_crash_during_the_post_resubmits_once_from_the_database(
    db: Any, fake: FakeHorde, clock: ManualClock, tmp_path: Path
) -> None:
    rig = SqlRig(db, fake, clock, tmp_path, backend="horde")
    job_id = await _enqueue(rig.queue, "1")
    [row] = await rig.queue.claim_for_horde("horde-host-1", 1, 600, lambda r: True)
    from fedibot.queue.work_source import request_from_row

    store = SqlHordeJobStore(rig.queue, "horde-host-1", 600)
    await store.record_submitting(request_from_row(row))  # died while the POST was in flight
    await rig.worker().run()
    assert len(fake.submissions) == 1
    assert (await rig.queue.get(job_id)).state == JobState.GENERATED
    rec = await store.get(job_id)
    assert rec.state == DONE and rec.submissions == 2
    await rig.close()


async def test_partly_censored_notice_reaches_the_job_and_ineligible_jobs_stay_local(
    db: Any, fake: FakeHorde, clock: ManualClock, tmp_path: Path
) -> None:
    rig = SqlRig(db, fake, clock, tmp_path, backend="local+horde")
    fake.will(Behaviour(censor=[None, "nsfw"]))
    job_id = await _enqueue(rig.queue, "1", n=2)
    odd = await _enqueue(rig.queue, "2", width=96)  # not a multiple of 64: never the Horde
    worker = rig.worker()
    rows = await worker.source.claim_for_horde(worker.worker_id, 4, 600)
    assert [r.job_id for r in rows] == [job_id]
    worker._start(rows[0])
    await asyncio.gather(*worker.tasks.values())
    row = await rig.queue.get(job_id)
    assert row.state == JobState.GENERATED
    [notice] = row.params["notices"]
    assert notice["code"] == codes.HORDE_PARTIAL_CENSORED
    assert len(await rig.queue.images(job_id)) == 1
    assert (await rig.queue.get(odd)).state == JobState.QUEUED
    await rig.close()
