"""The worker loop over MemoryWorkSource with the real tiny service."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from generator.config import GeneratorConfig
from generator.service import GeneratorService
from generator.types import GenerationRequest
from generator.worker import Worker
from tests.memory_source import MemoryWorkSource
from tests.waiting import wait_until


def job(job_id: int, seeds: list[int] | None = None, **kw: Any) -> GenerationRequest:
    return GenerationRequest(
        job_id=job_id, prompt=f"prompt {job_id}", seeds=seeds or [job_id], **kw
    )


async def test_serves_every_job_in_compatible_batches(
    service: GeneratorService, config: GeneratorConfig
) -> None:
    jobs = [job(1000 + i, width=64 if i % 3 else 72) for i in range(14)]
    jobs.append(job(2000, seeds=[1, 2, 3]))
    jobs.append(job(2001, steps=999))  # refused by the limits
    source = MemoryWorkSource(jobs)
    await Worker(source, service, config, "w", exit_when_empty=True).run()
    assert set(source.results) == {j.job_id for j in jobs} - {2001}
    assert source.errors[2001].code == "bad_option"
    by_id = {j.job_id: j for j in jobs}
    for ids in source.claims:
        assert len({by_id[i].batch_key for i in ids}) == 1
        assert sum(by_id[i].n_images for i in ids) <= config.max_batch
    assert len(source.results[2000].images) == 3
    for result in source.results.values():
        assert all(img.path.is_file() for img in result.images)


async def test_heartbeats_and_loop_stays_free_during_a_long_batch(
    service: GeneratorService, tiny_data_dir: Path, wrap_pipe: Any
) -> None:
    loop = asyncio.get_running_loop()
    cfg = service.config.model_copy(update={"heartbeat_seconds": 0.05})
    source = MemoryWorkSource([job(3000), job(3001)])

    async def on_the_loop() -> bool:
        return True

    def compute(kwargs: dict[str, Any]) -> None:
        # While the pipeline computes, the event loop must run other coroutines (a blocked
        # loop would never answer) and the worker must keep its lease alive.
        answer = asyncio.run_coroutine_threadsafe(on_the_loop(), loop)
        assert answer.result(timeout=60)
        beats = source.heartbeats
        wait_until(lambda: source.heartbeats >= beats + 2, "two heartbeats mid-batch")

    wrap_pipe(compute)
    await Worker(source, service, cfg, "w", exit_when_empty=True).run()
    assert set(source.results) == {3000, 3001}
    assert source.heartbeats >= 2


async def test_next_batch_is_claimed_while_the_current_one_computes(
    service: GeneratorService, config: GeneratorConfig, tmp_path: Path, wrap_pipe: Any
) -> None:
    log = tmp_path / "events.jsonl"
    source = MemoryWorkSource([job(4000 + i) for i in range(12)], log_path=log)

    def claims() -> int:
        return log.read_text().count('"event": "claim"')  # safe against a half-written line

    # The first batch computes until the next one is claimed (or the wait gives up, and
    # the order below shows the claim came only after the completion).
    wrap_pipe(lambda kwargs: wait_until(lambda: claims() >= 2, "a prefetch claim", 20))
    await Worker(source, service, config, "w", exit_when_empty=True).run()
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events[:2] == ["claim", "claim"]  # second claim before the first completion
    assert len(source.results) == 12


async def test_request_stop_finishes_the_batch_and_hands_back_the_prefetch(
    service: GeneratorService, config: GeneratorConfig, wrap_pipe: Any
) -> None:
    started = asyncio.Event()
    stopped = threading.Event()
    loop = asyncio.get_running_loop()

    def slow(kwargs: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(started.set)
        if not stopped.wait(timeout=60):  # the first batch is mid-compute at request_stop
            raise AssertionError("the test never asked the worker to stop")

    wrap_pipe(slow)
    source = MemoryWorkSource([job(5000 + i) for i in range(20)])
    worker = Worker(source, service, config, "w")
    task = asyncio.create_task(worker.run())
    await started.wait()
    worker.request_stop()
    stopped.set()
    await asyncio.wait_for(task, 60)
    assert len(source.results) == config.max_batch
    assert source.pending == 20 - config.max_batch  # the prefetched jobs are queued again
    assert source.leased_to("w") == []


async def test_jobs_of_a_dead_worker_come_back_after_lease_expiry(
    service: GeneratorService, config: GeneratorConfig
) -> None:
    now = [0.0]
    source = MemoryWorkSource([job(6000), job(6001)], clock=lambda: now[0])
    dead = await source.claim("dead", 8, lease_seconds=10)
    assert [r.job_id for r in dead] == [6000, 6001]
    assert await source.claim("w", 8, 10) == []
    now[0] = 11.0
    await Worker(source, service, config, "w", exit_when_empty=True).run()
    assert set(source.results) == {6000, 6001}
    await source.complete("dead", source.results[6000])  # late report of a lost lease: ignored
    assert source.pending == 0


@pytest.mark.parametrize("retryable", [True, False])
async def test_failures_are_reported_and_retryable_ones_requeued(
    config: GeneratorConfig, retryable: bool
) -> None:
    from generator.types import GenerationError

    class Failing:
        calls = 0

        def generate(self, requests, progress=None):
            Failing.calls += 1
            return [GenerationError("generation_failed", "boom", retryable)] * len(requests)

    source = MemoryWorkSource([job(7000)], max_attempts=3)
    await Worker(source, Failing(), config, "w", exit_when_empty=True).run()
    assert source.errors[7000].code == "generation_failed"
    assert Failing.calls == (3 if retryable else 1)
