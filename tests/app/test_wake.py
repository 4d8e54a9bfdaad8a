"""Work this process queues wakes the idle worker at once instead of at its next poll."""

from __future__ import annotations

import asyncio

from fedibot.queue.jobs import JobQueue
from fedibot.queue.work_source import QueueWorkSource
from fedibot.storage.models import JobState
from generator.config import GeneratorConfig, SafetyConfig
from generator.service import GeneratorService
from generator.worker import Worker
from tests.queue.test_queue import job


async def test_a_queued_job_wakes_an_idle_worker(sqlite_db, tiny_data_dir):
    config = GeneratorConfig(
        device="cpu",
        data_dir=str(tiny_data_dir),
        safety=SafetyConfig(classifier="none"),
        idle_poll_seconds=3600,  # without the wake-up the job would wait an hour
        cpu_threads=1,
    )
    queue = JobQueue(sqlite_db)
    service = GeneratorService(config)
    idle = asyncio.Event()

    class WatchedSource(QueueWorkSource):
        async def claim(self, worker_id, max_batch, lease_seconds):
            claimed = await super().claim(worker_id, max_batch, lease_seconds)
            if not claimed:
                idle.set()  # the worker found nothing and goes idle now
            return claimed

    worker = Worker(WatchedSource(queue), service, config, "w")
    queue.add_listener(lambda state: worker.wake() if state == JobState.QUEUED else None)
    task = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(idle.wait(), 60)
        job_id = (await queue.enqueue(job("1", width=64, height=64, steps=2))).job_id
        deadline = asyncio.get_running_loop().time() + 60  # far below the idle poll
        while (await queue.get(job_id)).state != JobState.GENERATED:
            assert asyncio.get_running_loop().time() < deadline, "the worker was not woken"
            await asyncio.sleep(0.05)
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 30)
        service.close()
