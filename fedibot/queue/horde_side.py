"""The AI Horde's side of the queue: claims for the Horde worker, the workers-seen table
and the overflow signals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    exists,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from fedibot.queue.core import (
    CLAIM_COLUMNS,
    CLAIM_ORDER,
    HAS_PENDING_HORDE,
    IS_GENERATING,
    IS_QUEUED,
    RETURNED_LOCAL,
    QueueCore,
    horde_jobs,
    jobs,
    workers,
)
from fedibot.storage.models import (
    JobState,
)


class HordeSide(QueueCore):
    """The AI Horde's side of the queue: claims for the Horde worker, the workers-seen table"""

    # ------------------------------------------------------------------ Horde side
    async def claim_for_horde(
        self,
        worker_id: str,
        max_jobs: int,
        lease_seconds: float,
        eligible: Callable[[Row[Any]], bool],
    ) -> list[Row[Any]]:
        """Jobs for a Horde worker, each started at once (one attempt each): first any job
        whose Horde request is open but whose worker is gone (its lease ran out) — resuming
        polls the recorded request, it never submits again — then queued jobs of any batch
        key in claim order, never one handed back to the local queue (`returned_local`) nor
        one `eligible` rejects."""
        claimed = await self.db.run(
            self._claim_for_horde, worker_id, max_jobs, lease_seconds, self._now(), eligible
        )
        for row in claimed:
            self._transition(row.id, JobState.QUEUED, JobState.GENERATING, worker=worker_id)
        return claimed

    def _claim_for_horde(
        self,
        conn: Connection,
        worker_id: str,
        max_jobs: int,
        lease: float,
        now: float,
        eligible: Callable[[Row[Any]], bool],
    ) -> list[Row[Any]]:
        if max_jobs <= 0:
            return []
        orphans = (
            select(jobs.c.id)
            .where(
                IS_GENERATING,
                HAS_PENDING_HORDE,
                jobs.c.lease_expires_at < now,  # its own ones a worker resumes via load_pending
            )
            .order_by(jobs.c.id)
            .limit(max_jobs)
        )
        if self._pg:
            orphans = orphans.with_for_update(skip_locked=True, of=jobs)
        adopted = list(conn.execute(orphans).scalars())
        out: list[Row[Any]] = []
        if adopted:
            out += conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(adopted), IS_GENERATING)
                .values(lease_owner=worker_id, lease_expires_at=now + lease, updated_at=now)
                .returning(*CLAIM_COLUMNS)
            ).all()
        free = max_jobs - len(out)
        if free <= 0:
            return out
        candidates = (
            select(*CLAIM_COLUMNS)
            .where(IS_QUEUED, jobs.c.not_before <= now, ~RETURNED_LOCAL)
            .order_by(*CLAIM_ORDER)
            .limit(free * 8)
        )
        if self._pg:
            candidates = candidates.with_for_update(skip_locked=True, of=jobs)
        rows = conn.execute(candidates).all()
        cap = self.settings.per_requester_in_flight
        in_flight = self._in_flight(conn, {r.requester for r in rows}, now)
        chosen: list[int] = []
        for row in rows:
            if in_flight[row.requester] >= cap or not eligible(row):
                continue
            in_flight[row.requester] += 1
            chosen.append(row.id)
            if len(chosen) == free:
                break
        if chosen:
            out += conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(chosen), IS_QUEUED)
                .values(
                    state=JobState.GENERATING,
                    lease_owner=worker_id,
                    lease_expires_at=now + lease,
                    started_at=now,
                    attempts=jobs.c.attempts + 1,
                    batch_size=1,
                    updated_at=now,
                )
                .returning(*CLAIM_COLUMNS)
            ).all()
        return out

    async def worker_seen(self, worker_id: str, kind: str, host: str = "") -> None:
        """Record that a generator worker is alive (at claims and heartbeats)."""
        now = self._now()

        def _seen(conn: Connection) -> None:
            if conn.execute(
                update(workers).where(workers.c.id == worker_id).values(kind=kind, last_seen_at=now)
            ).rowcount:
                return
            ins = (postgresql.insert if self._pg else sqlite.insert)(workers).values(
                id=worker_id, kind=kind, host=host, started_at=now, last_seen_at=now
            )
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["id"], set_={"kind": kind, "last_seen_at": now}
                )
            )

        await self.db.run(_seen)

    async def overflow_signals(
        self, window_seconds: float = 600.0
    ) -> tuple[int, float | None, float | None]:
        """(images queued, recent local images/s, seconds since a local worker was last
        seen): the inputs of the Horde overflow rule (generator.horde.overflow)."""
        now = self._now()

        def _signals(conn: Connection) -> tuple[int, float | None, float | None]:
            queued = conn.execute(
                select(func.coalesce(func.sum(jobs.c.n), 0)).where(IS_QUEUED, ~RETURNED_LOCAL)
            ).scalar_one()
            local = conn.execute(
                select(func.max(workers.c.last_seen_at), func.min(workers.c.started_at)).where(
                    workers.c.kind == "local", workers.c.last_seen_at >= now - window_seconds
                )
            ).one()
            since = None if local[0] is None else max(0.0, now - float(local[0]))
            rate = None
            if local[1] is not None:
                horde_done = exists().where(
                    horde_jobs.c.job_id == jobs.c.id, horde_jobs.c.state == "done"
                )
                made = conn.execute(
                    select(func.coalesce(func.sum(jobs.c.n), 0)).where(
                        jobs.c.generated_at >= now - window_seconds, ~horde_done
                    )
                ).scalar_one()
                span = max(60.0, min(window_seconds, now - float(local[1])))
                rate = int(made) / span if made else None
            return int(queued), rate, since

        return await self.db.run(_signals)
