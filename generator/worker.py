"""The worker loop: claim a compatible batch, generate it in a thread, report, repeat.

While a batch renders, the previous one is classified and stored in another thread, and the
worker heartbeats the leases of its jobs and claims (prefetches) the
next batch, so the GPU never waits for the database. `request_stop()` (wired to SIGTERM/SIGINT by
`install_signal_handlers`) lets the current batch finish and report; a prefetched batch that was
not started is handed back with a retryable `interrupted` failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterable
from typing import Any, Protocol

from generator.config import GeneratorConfig
from generator.types import (
    GENERATION_FAILED,
    INTERRUPTED,
    GenerationError,
    GenerationRequest,
    JobResult,
    Progress,
    WorkSource,
)

log = logging.getLogger(__name__)


class Service(Protocol):
    def generate(
        self, requests: list[GenerationRequest], progress: Progress | None = None
    ) -> list[JobResult | GenerationError]: ...


class Worker:
    """Pulls batches from a WorkSource and feeds them to a GeneratorService."""

    def __init__(
        self,
        source: WorkSource,
        service: Service,
        config: GeneratorConfig,
        worker_id: str,
        *,
        progress: Progress | None = None,
        exit_when_empty: bool = False,
    ) -> None:
        self.source = source
        self.service = service
        self.config = config
        self.worker_id = worker_id
        self.progress = progress
        self.exit_when_empty = exit_when_empty
        self.batches_done = 0
        self._stopping = False
        self._stop_event: asyncio.Event | None = None
        self._wake_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store_task: asyncio.Task[None] | None = None

    @property
    def stopping(self) -> bool:
        return self._stopping

    def request_stop(self) -> None:
        """Finish the current batch, then return from run(). Safe from any thread."""
        self._stopping = True
        loop, event = self._loop, self._stop_event
        if loop is None or event is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(event.set)

    async def run(self) -> None:
        """Serve until request_stop() (or, with exit_when_empty, until a claim comes back empty)."""
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._wake_event = asyncio.Event()
        if self._stopping:
            self._stop_event.set()
        prefetch: asyncio.Task[list[GenerationRequest]] | None = None
        try:
            while not self._stopping:
                batch: list[GenerationRequest] = []
                if prefetch is not None:
                    task, prefetch = prefetch, None
                    batch = await task
                if not batch:  # an empty prefetch may predate jobs queued again since
                    batch = await self._claim()
                if self._stopping:  # stop arrived while claiming: start nothing new
                    await self._give_back(batch)
                    break
                if not batch:
                    if self.exit_when_empty:
                        return
                    await self._sleep(self.config.idle_poll_seconds)
                    continue
                prefetch = await self._process(batch)
        finally:
            await self._drain_store()
            if prefetch is not None:
                await self._hand_back(prefetch)

    async def _process(
        self, batch: list[GenerationRequest]
    ) -> asyncio.Task[list[GenerationRequest]] | None:
        """Render one batch; returns the task that claims the next one (None when stopping).

        With a service that splits render() (GPU) from store() (classify + PNG, CPU), storing
        this batch runs in the background while the next batch renders.
        """
        prefetch = None if self._stopping else asyncio.create_task(self._claim())
        beat = asyncio.create_task(self._heartbeat_loop([r.job_id for r in batch], prefetch))
        split = hasattr(self.service, "render") and hasattr(self.service, "store")
        await self._mark_started(batch)
        started = time.perf_counter()
        work = self.service.render if split else self.service.generate  # type: ignore[attr-defined]
        compute = asyncio.create_task(asyncio.to_thread(work, batch, self.progress))
        try:
            # shield: a cancelled run() must not abandon a batch whose thread keeps running
            outputs = await asyncio.shield(compute)
        except asyncio.CancelledError:
            beat.cancel()
            raise
        except Exception as exc:
            log.exception("batch of %d jobs failed", len(batch))
            err = GenerationError(GENERATION_FAILED, f"worker error: {exc}", retryable=True)
            outputs, split = [err] * len(batch), False
        await self._drain_store()  # at most one batch being stored at a time
        if split:
            seconds = time.perf_counter() - started
            self._store_task = asyncio.create_task(self._store(batch, outputs, seconds, beat))
        else:
            beat.cancel()
            await self._report(batch, outputs)
            self.batches_done += 1
        if self._stopping and prefetch is not None:
            await self._drain_store()
            await self._hand_back(prefetch)
            return None
        return prefetch

    async def _mark_started(self, batch: list[GenerationRequest]) -> None:
        """Tell a source that offers `start` (the SQL queue) that rendering begins: attempts
        are counted from here, so a prefetched batch that never started costs nothing."""
        start = getattr(self.source, "start", None)
        if start is None:
            return
        try:
            await start(self.worker_id, [r.job_id for r in batch])
        except Exception:  # counting is bookkeeping: render anyway
            log.exception("marking a batch as started failed")

    async def _store(
        self,
        batch: list[GenerationRequest],
        outputs: list[Any],
        seconds: float,
        beat: asyncio.Task[None],
    ) -> None:
        try:
            results = await asyncio.to_thread(
                self.service.store,  # type: ignore[attr-defined]
                batch,
                outputs,
                seconds,
            )
        except Exception as exc:
            log.exception("storing a batch of %d jobs failed", len(batch))
            err = GenerationError(GENERATION_FAILED, f"storing failed: {exc}", retryable=True)
            results = [err] * len(batch)
        finally:
            beat.cancel()
        await self._report(batch, results)
        self.batches_done += 1

    async def _drain_store(self) -> None:
        task, self._store_task = self._store_task, None
        if task is not None:
            await asyncio.shield(task)

    async def _claim(self) -> list[GenerationRequest]:
        try:
            return await self.source.claim(
                self.worker_id, self.config.max_batch, self.config.lease_seconds
            )
        except Exception:
            log.exception("claiming jobs failed; retrying later")
            await self._sleep(self.config.idle_poll_seconds)
            return []

    async def _heartbeat_loop(
        self, held: list[int], prefetch: asyncio.Task[list[GenerationRequest]] | None
    ) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            ids = list(held)
            if (
                prefetch is not None
                and prefetch.done()
                and not prefetch.cancelled()
                and prefetch.exception() is None
            ):
                ids += [r.job_id for r in prefetch.result()]
            try:
                await self.source.heartbeat(self.worker_id, ids, self.config.lease_seconds)
            except Exception:
                log.exception("heartbeat failed")

    async def _report(
        self, batch: Iterable[GenerationRequest], results: list[JobResult | GenerationError]
    ) -> None:
        for req, res in zip(batch, results, strict=True):
            try:
                if isinstance(res, GenerationError):
                    log.info("job %s failed: %s", req.job_id, res)
                    await self.source.fail(self.worker_id, req.job_id, res)
                else:
                    await self.source.complete(self.worker_id, res)
            except Exception:  # the lease will expire and the job comes back
                log.exception("reporting job %s failed", req.job_id)

    async def _hand_back(self, prefetch: asyncio.Task[list[GenerationRequest]]) -> None:
        """Give back a claimed-but-unstarted batch so another worker takes it at once."""
        try:
            batch = await prefetch
        except Exception:
            return
        await self._give_back(batch)

    async def _give_back(self, batch: list[GenerationRequest]) -> None:
        err = GenerationError(INTERRUPTED, "the worker stopped before starting this job", True)
        await self._report(batch, [err] * len(batch))

    def wake(self) -> None:
        """New work was queued: end an idle wait now (call from the worker's event loop)."""
        if self._wake_event is not None:
            self._wake_event.set()

    async def _sleep(self, seconds: float) -> None:
        """Idle: wait `seconds`, or less when stopped or woken."""
        if self._stop_event is None or self._wake_event is None:
            await asyncio.sleep(seconds)
            return
        waits = [asyncio.ensure_future(e.wait()) for e in (self._stop_event, self._wake_event)]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            self._wake_event.clear()


def install_signal_handlers(
    worker: Worker, signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
) -> None:
    """First SIGTERM/SIGINT: stop after the current batch. A second one: default behaviour."""
    loop = asyncio.get_running_loop()
    sigs = list(signals)

    def handler(signum: signal.Signals) -> None:
        log.warning("%s received: finishing the current batch (again to force)", signum.name)
        worker.request_stop()
        for s in sigs:
            loop.remove_signal_handler(s)

    for s in sigs:
        loop.add_signal_handler(s, handler, s)
