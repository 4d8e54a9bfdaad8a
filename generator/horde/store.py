"""Durable records of jobs sent to the Horde: the protocol the database implements, and an
in-memory implementation for tests and benchmarks.

One record per job (its latest Horde attempt). The write order is the whole point:

1. `record_submitting(request)` is written BEFORE the POST (state `submitting`, no id,
   `submissions` + 1);
2. `record_submitted(job_id, horde_id)` right AFTER the 202 answer;
3. `record_done(job_id, state, code)` once the job's outcome has been reported to the queue.

After a restart `load_pending()` gives every record in `submitting` or `submitted`:
with an id we resume polling (never submit again); without one the POST may or may not have
reached the Horde, which has no idempotency key. We then submit again, but only while
`submissions < max_submissions` (default 2): a possible duplicate costs kudos, never a second
post, because only the recorded id is ever read. Past that the job goes back to the local
queue (local+horde) or fails with `horde_unconfirmed`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Protocol

from generator.types import GenerationRequest

State = Literal["submitting", "submitted", "done", "returned_local", "failed"]
SUBMITTING: State = "submitting"
SUBMITTED: State = "submitted"
DONE: State = "done"  # images reported (code: "" or a notice such as horde_partially_censored)
RETURNED_LOCAL: State = "returned_local"  # handed back to the local queue: never to the Horde
FAILED: State = "failed"
PENDING: tuple[State, ...] = (SUBMITTING, SUBMITTED)


@dataclass(frozen=True)
class HordeJobRecord:
    job_id: int
    request: GenerationRequest  # the DB can rebuild it from the job row instead of storing it
    state: State
    horde_id: str | None = None
    submissions: int = 0  # POSTs started in the current attempt
    submitted_at: float | None = None  # wall-clock time of the 202 (for our timeout)
    code: str = ""  # our outcome code once done/returned/failed


class HordeJobStore(Protocol):
    """Five calls; each must be durable (committed) before it returns."""

    async def record_submitting(self, request: GenerationRequest) -> HordeJobRecord:
        """Before a POST. A new or finished record starts a new attempt (submissions = 1);
        one still `submitting` counts another submission."""
        ...

    async def record_submitted(self, job_id: int, horde_id: str, now: float) -> None:
        """After the 202: the Horde's request id (and when we got it)."""
        ...

    async def record_done(self, job_id: int, state: State, code: str = "") -> None:
        """The job left the Horde: `done`, `returned_local` or `failed`, with our code."""
        ...

    async def load_pending(self) -> list[HordeJobRecord]:
        """Records in `submitting` or `submitted`: what a restarted worker must resume."""
        ...

    async def get(self, job_id: int) -> HordeJobRecord | None: ...


class MemoryHordeJobStore:
    """The protocol on a dict. Survives a 'restart' when the same instance is handed to a new
    worker and client, which is what the durability tests do."""

    def __init__(self) -> None:
        self.records: dict[int, HordeJobRecord] = {}
        self.writes: list[tuple[str, int]] = []  # (call, job_id), in order, for tests

    async def record_submitting(self, request: GenerationRequest) -> HordeJobRecord:
        old = self.records.get(request.job_id)
        count = old.submissions + 1 if old is not None and old.state == SUBMITTING else 1
        rec = HordeJobRecord(request.job_id, request, SUBMITTING, None, count)
        self.records[request.job_id] = rec
        self.writes.append(("submitting", request.job_id))
        return rec

    async def record_submitted(self, job_id: int, horde_id: str, now: float) -> None:
        rec = self.records[job_id]
        self.records[job_id] = replace(rec, state=SUBMITTED, horde_id=horde_id, submitted_at=now)
        self.writes.append(("submitted", job_id))

    async def record_done(self, job_id: int, state: State, code: str = "") -> None:
        rec = self.records[job_id]
        self.records[job_id] = replace(rec, state=state, code=code)
        self.writes.append((state, job_id))

    async def load_pending(self) -> list[HordeJobRecord]:
        return [r for r in self.records.values() if r.state in PENDING]

    async def get(self, job_id: int) -> HordeJobRecord | None:
        return self.records.get(job_id)
