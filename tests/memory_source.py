"""An in-memory WorkSource with leases, for tests, benchmarks and `fedibot generate`.

It mimics the durable queue's contract: claims take compatible jobs (same batch_key, up to
max_batch images), leases expire (the job goes back to the queue with attempts + 1), a retryable
failure re-queues the job. With `log_path`, every event is appended as one JSON line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.config import GeneratorConfig
from generator.horde.payload import ineligible
from generator.horde.store import RETURNED_LOCAL, HordeJobStore
from generator.types import GenerationError, GenerationRequest, JobResult


@dataclass
class _Lease:
    request: GenerationRequest
    worker_id: str
    expires: float
    attempts: int


@dataclass
class MemoryWorkSource:
    """Queue of GenerationRequests held in memory."""

    requests: Iterable[GenerationRequest] = ()
    max_attempts: int = 3
    log_path: Path | None = None
    clock: Callable[[], float] = time.monotonic
    results: dict[int, JobResult] = field(default_factory=dict)
    errors: dict[int, GenerationError] = field(default_factory=dict)
    claims: list[list[int]] = field(default_factory=list)
    heartbeats: int = 0

    def __post_init__(self) -> None:
        self._queue: list[tuple[GenerationRequest, int]] = [(r, 0) for r in self.requests]
        self._leases: dict[int, _Lease] = {}

    def put(self, request: GenerationRequest) -> None:
        self._queue.append((request, 0))

    @property
    def pending(self) -> int:
        """Jobs queued or leased."""
        return len(self._queue) + len(self._leases)

    def leased_to(self, worker_id: str) -> list[int]:
        return [jid for jid, lease in self._leases.items() if lease.worker_id == worker_id]

    async def claim(
        self, worker_id: str, max_batch: int, lease_seconds: float
    ) -> list[GenerationRequest]:
        self._expire()
        if not self._queue:
            return []
        key = self._queue[0][0].batch_key
        taken: list[tuple[GenerationRequest, int]] = []
        images = 0
        for item in list(self._queue):
            req = item[0]
            if req.batch_key != key or (taken and images + req.n_images > max_batch):
                continue
            taken.append(item)
            images += req.n_images
            self._queue.remove(item)
            if images >= max_batch:
                break
        expires = self.clock() + lease_seconds
        for req, attempts in taken:
            self._leases[req.job_id] = _Lease(req, worker_id, expires, attempts)
        ids = [r.job_id for r, _ in taken]
        self.claims.append(ids)
        self._log("claim", worker_id, job_ids=ids)
        return [r for r, _ in taken]

    async def heartbeat(self, worker_id: str, job_ids: list[int], lease_seconds: float) -> None:
        self.heartbeats += 1
        for jid in job_ids:
            lease = self._leases.get(jid)
            if lease and lease.worker_id == worker_id:
                lease.expires = self.clock() + lease_seconds
        self._log("heartbeat", worker_id, job_ids=list(job_ids))

    async def complete(self, worker_id: str, result: JobResult) -> None:
        if self._release(worker_id, result.job_id) is None:
            return  # lease lost: another worker owns the job now
        self.results[result.job_id] = result
        self._log(
            "complete",
            worker_id,
            job_id=result.job_id,
            paths=[str(img.path) for img in result.images],
        )

    async def fail(self, worker_id: str, job_id: int, error: GenerationError) -> None:
        lease = self._release(worker_id, job_id)
        if lease is None:
            return
        if error.retryable and lease.attempts + 1 < self.max_attempts:
            self._queue.insert(0, (lease.request, lease.attempts + 1))
        else:
            self.errors[job_id] = error
        self._log("fail", worker_id, job_id=job_id, code=error.code, message=error.message)

    def _release(self, worker_id: str, job_id: int) -> _Lease | None:
        lease = self._leases.get(job_id)
        if lease is None or lease.worker_id != worker_id:
            return None
        del self._leases[job_id]
        return lease

    def _expire(self) -> None:
        now = self.clock()
        for jid, lease in list(self._leases.items()):
            if lease.expires <= now:
                del self._leases[jid]
                if lease.attempts + 1 < self.max_attempts:
                    self._queue.append((lease.request, lease.attempts + 1))
                else:
                    self.errors[jid] = GenerationError(
                        "lease_expired", "the job's lease expired too often", False
                    )
                self._log("expired", lease.worker_id, job_id=jid)

    def _log(self, event: str, worker_id: str, **data: object) -> None:
        if self.log_path is None:
            return
        line = json.dumps({"event": event, "worker": worker_id, "t": time.time(), **data})
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()


class MemoryHordeWorkSource(MemoryWorkSource):
    """MemoryWorkSource plus `claim_for_horde` (skips returned_local and ineligible jobs)."""

    def __init__(self, config: GeneratorConfig, store: HordeJobStore, **kw: Any) -> None:
        super().__init__(**kw)
        self.config = config
        self.store = store

    async def claim_for_horde(
        self, worker_id: str, max_jobs: int, lease_seconds: float
    ) -> list[GenerationRequest]:
        self._expire()
        taken: list[tuple[GenerationRequest, int]] = []
        for item in list(self._queue):
            if len(taken) >= max_jobs:
                break
            req = item[0]
            rec = await self.store.get(req.job_id)
            if (rec is not None and rec.state == RETURNED_LOCAL) or ineligible(self.config, req):
                continue
            taken.append(item)
            self._queue.remove(item)
        expires = self.clock() + lease_seconds
        for req, attempts in taken:
            self._leases[req.job_id] = _Lease(req, worker_id, expires, attempts)
        self.claims.append([r.job_id for r, _ in taken])
        return [r for r, _ in taken]

    @property
    def queued_images(self) -> int:
        return sum(r.n_images for r, _ in self._queue)
