"""The AI Horde's durable job records (generator.horde.store.HordeJobStore) in the database.

One row per job in `horde_jobs`; every call is one committed transaction before it returns.
The request is not stored: it is rebuilt from the job row. `load_pending` only returns the
records a restarted worker should resume itself: jobs still `generating` under this worker's
(stable) id or under an expired lease; it re-leases them to this worker. Records of jobs that
already left `generating` (their result reached the queue just before a crash) are closed as
`done` instead of being polled again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from fedibot.queue.jobs import CLAIM_COLUMNS, JobQueue, horde_jobs, jobs
from fedibot.queue.work_source import request_from_row
from fedibot.storage.models import JobState
from generator.horde.store import PENDING, SUBMITTED, SUBMITTING, HordeJobRecord, State
from generator.types import GenerationRequest


class SqlHordeJobStore:
    def __init__(self, queue: JobQueue, worker_id: str, lease_seconds: float) -> None:
        self.queue = queue
        self.db = queue.db
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds

    def _now(self) -> float:
        return self.queue.settings.clock()

    async def record_submitting(self, request: GenerationRequest) -> HordeJobRecord:
        now = self._now()

        def _submitting(conn: Connection) -> int:
            old = conn.execute(
                select(horde_jobs.c.state, horde_jobs.c.submissions).where(
                    horde_jobs.c.job_id == request.job_id
                )
            ).first()
            count = old.submissions + 1 if old is not None and old.state == SUBMITTING else 1
            values = {
                "state": SUBMITTING,
                "horde_id": None,
                "submissions": count,
                "submitted_at": None,
                "code": "",
                "updated_at": now,
            }
            if old is None:
                conn.execute(insert(horde_jobs).values(job_id=request.job_id, **values))
            else:
                conn.execute(
                    update(horde_jobs).where(horde_jobs.c.job_id == request.job_id).values(**values)
                )
            return count

        count = await self.db.run(_submitting)
        return HordeJobRecord(request.job_id, request, SUBMITTING, None, count)

    async def record_submitted(self, job_id: int, horde_id: str, now: float) -> None:
        await self._update(job_id, state=SUBMITTED, horde_id=horde_id, submitted_at=now)

    async def record_done(self, job_id: int, state: State, code: str = "") -> None:
        await self._update(job_id, state=state, code=code)

    async def _update(self, job_id: int, **values: Any) -> None:
        now = self._now()

        def _set(conn: Connection) -> None:
            conn.execute(
                update(horde_jobs)
                .where(horde_jobs.c.job_id == job_id)
                .values(**values, updated_at=now)
            )

        await self.db.run(_set)

    async def load_pending(self) -> list[HordeJobRecord]:
        now = self._now()

        def _load(conn: Connection) -> list[HordeJobRecord]:
            rows = conn.execute(
                select(
                    *CLAIM_COLUMNS,
                    horde_jobs.c.state.label("horde_state"),
                    horde_jobs.c.horde_id,
                    horde_jobs.c.submissions,
                    horde_jobs.c.submitted_at,
                    horde_jobs.c.code.label("horde_code"),
                )
                .join(horde_jobs, horde_jobs.c.job_id == jobs.c.id)
                .where(horde_jobs.c.state.in_(PENDING))
                .order_by(jobs.c.id)
            ).all()
            out: list[HordeJobRecord] = []
            for row in rows:
                if row.state != JobState.GENERATING:
                    # The outcome reached the queue before the crash (or an admin ended the
                    # job): nothing to resume.
                    conn.execute(
                        update(horde_jobs)
                        .where(horde_jobs.c.job_id == row.id)
                        .values(state="done", updated_at=now)
                    )
                    continue
                mine = row.lease_owner == self.worker_id
                expired = row.lease_expires_at is not None and row.lease_expires_at < now
                if not (mine or expired):
                    continue  # a live Horde worker elsewhere has it
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == row.id, jobs.c.state == JobState.GENERATING)
                    .values(
                        lease_owner=self.worker_id,
                        lease_expires_at=now + self.lease_seconds,
                        updated_at=now,
                    )
                )
                out.append(_record(row))
            return out

        return await self.db.run(_load)

    async def get(self, job_id: int) -> HordeJobRecord | None:
        def _get(conn: Connection) -> HordeJobRecord | None:
            row = conn.execute(
                select(
                    *CLAIM_COLUMNS,
                    horde_jobs.c.state.label("horde_state"),
                    horde_jobs.c.horde_id,
                    horde_jobs.c.submissions,
                    horde_jobs.c.submitted_at,
                    horde_jobs.c.code.label("horde_code"),
                )
                .join(horde_jobs, horde_jobs.c.job_id == jobs.c.id)
                .where(jobs.c.id == job_id)
            ).first()
            return None if row is None else _record(row)

        return await self.db.run(_get)


def _record(row: Any) -> HordeJobRecord:
    return HordeJobRecord(
        job_id=int(row.id),
        request=request_from_row(row),
        state=row.horde_state,
        horde_id=row.horde_id,
        submissions=int(row.submissions),
        submitted_at=row.submitted_at,
        code=row.horde_code or "",
    )
