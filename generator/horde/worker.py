"""The Horde worker: claims jobs routed to the Horde, runs many HordeFlows at once, and reports
each outcome to the queue after the project's own safety check and PNG writer ran on every
image (GeneratorService.store, the same as for local images).

Its WorkSource must offer `claim_for_horde`, which never returns a job whose store record is
`returned_local` (that job belongs to the local worker now). MemoryHordeWorkSource below is the
in-memory version; the database one filters on the store's table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from generator.config import GeneratorConfig
from generator.horde import codes
from generator.horde.flow import HordeFlow, HordeResult
from generator.horde.images import rendered
from generator.horde.overflow import OverflowSignals, decide
from generator.horde.payload import sampler_of
from generator.horde.store import DONE, FAILED, RETURNED_LOCAL, HordeJobStore
from generator.types import GenerationError, GenerationRequest, JobResult, WorkSource

log = logging.getLogger("generator.horde")


class HordeWorkSource(WorkSource, Protocol):
    async def claim_for_horde(
        self, worker_id: str, max_jobs: int, lease_seconds: float
    ) -> list[GenerationRequest]:
        """Up to `max_jobs` queued jobs (any batch key), oldest first, leased to `worker_id`;
        never one the HordeJobStore marks `returned_local`, nor one `ineligible` rejects."""
        ...


class ImageStore(Protocol):
    """GeneratorService.store: classify every image, write PNGs (called in a thread)."""

    def store(
        self, requests: list[GenerationRequest], rendered: list[Any], seconds: float
    ) -> list[JobResult | GenerationError]: ...


Signals = Callable[[], Awaitable[OverflowSignals]]
Notice = Callable[[int, str, str], Awaitable[None]]  # (job_id, code, text)


class HordeWorker:
    def __init__(
        self,
        source: HordeWorkSource,
        flow: HordeFlow,
        service: ImageStore,
        config: GeneratorConfig,
        *,
        signals: Signals | None = None,
        on_notice: Notice | None = None,
        worker_id: str = "horde",
        exit_when_idle: bool = False,
    ) -> None:
        self.source = source
        self.flow = flow
        self.store: HordeJobStore = flow.store
        self.service = service
        self.config = config
        self.signals = signals
        self.on_notice = on_notice
        self.worker_id = worker_id  # stable across restarts: resumed jobs keep their lease
        self.exit_when_idle = exit_when_idle
        self.clock = flow.clock
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.outcomes: dict[int, str] = {}  # job_id → "done" | our code (tests, metrics)
        self._stopping = False
        self._wake = asyncio.Event()

    def request_stop(self) -> None:
        """Claim nothing new; run() returns once the open Horde requests are reported (they
        stay recorded, so a restart resumes them if the process is killed instead)."""
        self._stopping = True
        self._wake.set()

    async def route(self) -> str:
        if self.signals is None:
            return "horde" if self.config.backend != "local" else "local"
        s = await self.signals()
        s = OverflowSignals(
            s.queued_images,
            s.local_images_per_s,
            s.seconds_since_local_heartbeat,
            len(self.tasks),
            s.horde_paused or self.flow.paused,
        )
        return decide(s, self.config)

    async def run(self) -> None:
        for rec in await self.store.load_pending():
            log.info("job %s: resuming Horde request %s", rec.job_id, rec.horde_id or "(none)")
            self._start(rec.request)
        beat = asyncio.create_task(self._heartbeat_loop())
        try:
            while not self._stopping:
                free = self.config.horde.max_in_flight - len(self.tasks)
                claimed: list[GenerationRequest] = []
                if free > 0 and not self.flow.paused and await self.route() == "horde":
                    claimed = await self.source.claim_for_horde(
                        self.worker_id, free, self.config.lease_seconds
                    )
                    for req in claimed:
                        self._start(req)
                if not claimed and not self.tasks and self.exit_when_idle:
                    break
                if not claimed:
                    await self._idle()
            if self.tasks:
                await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        finally:
            beat.cancel()

    async def _idle(self) -> None:
        """Until a job finishes, stop, or idle_poll_seconds pass (a freed slot claims again)."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
        waits.append(asyncio.ensure_future(asyncio.sleep(self.config.idle_poll_seconds)))
        waits += [asyncio.ensure_future(asyncio.shield(t)) for t in self.tasks.values()]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            self._wake.clear()

    def _start(self, req: GenerationRequest) -> None:
        if req.job_id not in self.tasks:
            self.tasks[req.job_id] = asyncio.create_task(self._job(req))

    async def _job(self, req: GenerationRequest) -> None:
        started = time.perf_counter()
        try:
            out = await self.flow.run(req)
            if isinstance(out, HordeResult):
                await self._complete(req, out, time.perf_counter() - started)
            else:
                await self._fail(req, out)
        except Exception:
            log.exception("job %s: Horde flow crashed; it stays recorded and resumes", req.job_id)
        finally:
            self.tasks.pop(req.job_id, None)
            self._wake.set()

    async def _complete(self, req: GenerationRequest, out: HordeResult, seconds: float) -> None:
        try:
            narrowed, images = rendered(req, out, sampler_of(self.config, req))
        except ValueError as exc:
            await self._fail(req, codes.error(codes.HORDE_BAD_IMAGE, str(exc), local=self._local))
            return
        [result] = await asyncio.to_thread(self.service.store, [narrowed], [images], seconds)
        if isinstance(result, GenerationError):  # e.g. the safety classifier failed
            await self.source.fail(self.worker_id, req.job_id, result)
            await self.store.record_done(req.job_id, FAILED, result.code)
            self.outcomes[req.job_id] = result.code
            return
        if self.on_notice is not None:  # before complete: the reply may go out right after
            for code in out.notices:
                await self.on_notice(req.job_id, code, codes.CODES[code].reply)
        await self.source.complete(self.worker_id, result)
        notice = ",".join(out.notices)
        await self.store.record_done(req.job_id, DONE, notice)
        self.outcomes[req.job_id] = "done"

    @property
    def _local(self) -> bool:
        return self.config.backend != "horde"

    async def _fail(self, req: GenerationRequest, err: GenerationError) -> None:
        back = self._local and codes.CODES.get(err.code, codes.CODES[codes.HORDE_BUSY]).local_ok
        state = RETURNED_LOCAL if back else FAILED
        await self.store.record_done(req.job_id, state, err.code)  # before: no Horde reclaim
        log.info("job %s: %s → %s", req.job_id, err.code, state)
        await self.source.fail(self.worker_id, req.job_id, err)
        self.outcomes[req.job_id] = err.code

    async def _heartbeat_loop(self) -> None:
        # Real time, like the queue's leases; only the Horde's limits run on the injected clock.
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            if self.tasks:
                with contextlib.suppress(Exception):
                    await self.source.heartbeat(
                        self.worker_id, list(self.tasks), self.config.lease_seconds
                    )
