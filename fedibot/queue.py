"""The durable job queue: idempotent enqueue, fair atomic batch claims under a lease.

One module, one concept (after procrastinate's `manager`): every method is one committed
transaction, so a crash anywhere resumes from the database.

Claiming is atomic: on SQLite every transaction is `BEGIN IMMEDIATE` (see `fedibot.db`), so
the read of the candidates and the `UPDATE … RETURNING` happen under one write lock; on
PostgreSQL the candidates are read `FOR UPDATE SKIP LOCKED`. The update also re-checks
`state = 'queued'`, so a job is never taken twice.

Fairness: every job gets a `fair_seq` at enqueue: one more than the requester's newest queued
job, but never less than the oldest queued job anywhere (the "virtual clock"). Claiming in
`fair_seq` order therefore serves requesters round-robin: A's 50 jobs get rounds 0..49, B's
one job joins round 0. Priority breaks ties inside a round, then age.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fedibot import metrics
from fedibot.models import Job, JobImage, JobState, ReplyState

log = logging.getLogger("fedibot.queue")

jobs = Job.__table__
images = JobImage.__table__

CLAIM_ORDER = (jobs.c.fair_seq, jobs.c.priority.desc(), jobs.c.id)
ACTIVE_STATES = (JobState.QUEUED, JobState.GENERATING, JobState.GENERATED, JobState.REPLYING)


@dataclass(frozen=True)
class QueueSettings:
    max_attempts: int = 3
    lease_seconds: float = 300.0
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 900.0
    reply_retry_max_seconds: float = 3600.0
    per_requester_in_flight: int = 2
    clock: Callable[[], float] = time.time


@dataclass
class NewJob:
    """What ingest (or a campaign) asks the queue to record."""

    platform: str
    bot_account: str
    remote_id: str
    requester: str
    prompt: str = ""
    negative_prompt: str = ""
    model: str = ""
    width: int = 0
    height: int = 0
    steps: int = 0
    guidance: float = 0.0
    n: int = 1
    seed: int = 0
    visibility: str = "direct"
    requester_domain: str = ""
    kind: str = "mention"
    priority: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)
    state: str = JobState.QUEUED  # or REJECTED for a refusal that is recorded
    error_code: str | None = None
    error_message: str | None = None
    reply_state: str = ReplyState.NONE
    max_attempts: int | None = None


@dataclass(frozen=True)
class EnqueueResult:
    job_id: int
    created: bool


def batch_key(model: str, width: int, height: int, steps: int, guidance: float) -> str:
    """Jobs with the same key can share one pipeline call."""
    return f"{model}|{width}x{height}|{steps}|{guidance:g}"


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with 'equal jitter': between half and all of base·2^(attempt-1)."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay / 2 + random.uniform(0, delay / 2)


class JobQueue:
    """All state changes of jobs. Safe to share between tasks, processes and machines."""

    def __init__(self, engine: AsyncEngine, settings: QueueSettings | None = None) -> None:
        self.engine = engine
        self.settings = settings or QueueSettings()
        self._pg = engine.dialect.name == "postgresql"

    def _now(self) -> float:
        return self.settings.clock()

    # ------------------------------------------------------------------ enqueue
    async def enqueue(self, job: NewJob) -> EnqueueResult:
        """Record a job; a second call for the same (platform, account, remote id) is a no-op."""
        now = self._now()
        queued = jobs.c.state == JobState.QUEUED
        clock = select(func.min(jobs.c.fair_seq)).where(queued).scalar_subquery()
        mine = (
            select(func.max(jobs.c.fair_seq) + 1)
            .where(queued, jobs.c.requester == job.requester)
            .scalar_subquery()
        )
        lo, hi = func.coalesce(clock, 0), func.coalesce(mine, 0)
        values = {
            "kind": job.kind,
            "platform": job.platform,
            "bot_account": job.bot_account,
            "remote_id": job.remote_id,
            "requester": job.requester,
            "requester_domain": job.requester_domain,
            "state": job.state,
            "priority": job.priority,
            "fair_seq": case((hi > lo, hi), else_=lo),
            "batch_key": batch_key(job.model, job.width, job.height, job.steps, job.guidance),
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "model": job.model,
            "width": job.width,
            "height": job.height,
            "steps": job.steps,
            "guidance": job.guidance,
            "n": job.n,
            "seed": job.seed,
            "params": job.params,
            "request": job.request,
            "visibility": job.visibility,
            "attempts": 0,
            "max_attempts": job.max_attempts or self.settings.max_attempts,
            "not_before": 0.0,
            "reply_attempts": 0,
            "reply_state": job.reply_state,
            "error_code": job.error_code,
            "error_message": job.error_message,
            "safety": {},
            "created_at": now,
            "updated_at": now,
            "finished_at": now if job.state in JobState.TERMINAL else None,
        }
        dialect_insert = postgresql.insert if self._pg else sqlite.insert
        stmt = (
            dialect_insert(jobs)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["platform", "bot_account", "remote_id"])
            .returning(jobs.c.id)
        )
        async with self.engine.begin() as conn:
            new_id = (await conn.execute(stmt)).scalar()
            if new_id is None:
                existing = await conn.execute(
                    select(jobs.c.id).where(
                        jobs.c.platform == job.platform,
                        jobs.c.bot_account == job.bot_account,
                        jobs.c.remote_id == job.remote_id,
                    )
                )
                return EnqueueResult(int(existing.scalar_one()), created=False)
        self._transition(new_id, None, job.state, job.error_code)
        return EnqueueResult(int(new_id), created=True)

    # ------------------------------------------------------------------ generation side
    async def claim(
        self, worker_id: str, max_batch: int, lease_seconds: float | None = None
    ) -> list[Row[Any]]:
        """Take up to `max_batch` compatible queued jobs (same batch key) under a lease."""
        now = self._now()
        lease = lease_seconds or self.settings.lease_seconds
        cap = self.settings.per_requester_in_flight
        ready = and_(jobs.c.state == JobState.QUEUED, jobs.c.not_before <= now)
        capped = (
            select(jobs.c.requester)
            .where(jobs.c.state == JobState.GENERATING)
            .group_by(jobs.c.requester)
            .having(func.count() >= cap)
        )
        async with self.engine.begin() as conn:
            head = select(jobs.c.batch_key).where(ready, jobs.c.requester.not_in(capped))
            head = head.order_by(*CLAIM_ORDER).limit(1)
            if self._pg:
                head = head.with_for_update(skip_locked=True, of=jobs)
            key = (await conn.execute(head)).scalar()
            if key is None:
                return []
            candidates = (
                select(jobs.c.id, jobs.c.requester)
                .where(ready, jobs.c.batch_key == key)
                .order_by(*CLAIM_ORDER)
                .limit(max_batch * 4)
            )
            if self._pg:
                candidates = candidates.with_for_update(skip_locked=True)
            rows = (await conn.execute(candidates)).all()
            in_flight = await self._in_flight(conn, {r.requester for r in rows})
            chosen: list[int] = []
            for row in rows:
                if in_flight[row.requester] >= cap:
                    continue
                in_flight[row.requester] += 1
                chosen.append(row.id)
                if len(chosen) == max_batch:
                    break
            if not chosen:
                return []
            claimed = (
                await conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(chosen), jobs.c.state == JobState.QUEUED)
                    .values(
                        state=JobState.GENERATING,
                        lease_owner=worker_id,
                        lease_expires_at=now + lease,
                        attempts=jobs.c.attempts + 1,
                        updated_at=now,
                    )
                    .returning(*jobs.c)
                )
            ).all()
        order = {job_id: i for i, job_id in enumerate(chosen)}
        claimed.sort(key=lambda r: order[r.id])
        for row in claimed:
            self._transition(row.id, JobState.QUEUED, JobState.GENERATING, worker=worker_id)
        return claimed

    async def _in_flight(self, conn: AsyncConnection, requesters: Iterable[str]) -> Counter[str]:
        names = list(requesters)
        result = await conn.execute(
            select(jobs.c.requester, func.count())
            .where(jobs.c.state == JobState.GENERATING, jobs.c.requester.in_(names))
            .group_by(jobs.c.requester)
        )
        return Counter({name: int(count) for name, count in result.all()})

    async def heartbeat(
        self, worker_id: str, job_ids: Sequence[int], lease_seconds: float | None = None
    ) -> int:
        """Extend the lease of jobs this worker still holds; returns how many it holds."""
        if not job_ids:
            return 0
        now = self._now()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(jobs)
                .where(
                    jobs.c.id.in_(list(job_ids)),
                    jobs.c.lease_owner == worker_id,
                    jobs.c.state.in_((JobState.GENERATING, JobState.REPLYING)),
                )
                .values(lease_expires_at=now + (lease_seconds or self.settings.lease_seconds))
            )
        return result.rowcount or 0

    async def complete(
        self,
        worker_id: str,
        job_id: int,
        image_rows: Sequence[dict[str, Any]],
        *,
        generation_seconds: float | None = None,
        safety: dict[str, Any] | None = None,
    ) -> bool:
        """generating → generated with its images. False when the lease was lost meanwhile."""
        now = self._now()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.state == JobState.GENERATING,
                    jobs.c.lease_owner == worker_id,
                )
                .values(
                    state=JobState.GENERATED,
                    lease_owner=None,
                    lease_expires_at=None,
                    not_before=0.0,
                    generated_at=now,
                    updated_at=now,
                    generation_seconds=generation_seconds,
                    safety=safety or {},
                )
            )
            if result.rowcount != 1:
                return False
            if image_rows:
                await conn.execute(insert(images), [{**r, "job_id": job_id} for r in image_rows])
        self._transition(job_id, JobState.GENERATING, JobState.GENERATED)
        return True

    async def fail(
        self, worker_id: str, job_id: int, code: str, message: str, *, retryable: bool
    ) -> str | None:
        """A generation error: back to queued with backoff, or failed (+ an error reply)."""
        now = self._now()
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(jobs.c.attempts, jobs.c.max_attempts).where(
                        jobs.c.id == job_id,
                        jobs.c.state == JobState.GENERATING,
                        jobs.c.lease_owner == worker_id,
                    )
                )
            ).first()
            if row is None:
                return None
            if retryable and row.attempts < row.max_attempts:
                delay = backoff_seconds(
                    row.attempts, self.settings.retry_base_seconds, self.settings.retry_max_seconds
                )
                values: dict[str, Any] = {"state": JobState.QUEUED, "not_before": now + delay}
            else:
                values = {
                    "state": JobState.FAILED,
                    "finished_at": now,
                    "reply_state": ReplyState.PENDING,
                }
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    **values,
                    lease_owner=None,
                    lease_expires_at=None,
                    error_code=code,
                    error_message=message,
                    updated_at=now,
                )
            )
        self._transition(job_id, JobState.GENERATING, values["state"], code)
        return values["state"]

    async def requeue_expired(self) -> int:
        """Return jobs whose lease ran out (a worker or replier died) to where they resume."""
        now = self._now()
        expired = and_(jobs.c.lease_expires_at.is_not(None), jobs.c.lease_expires_at < now)
        moved = 0
        async with self.engine.begin() as conn:
            stale = (
                await conn.execute(
                    select(
                        jobs.c.id,
                        jobs.c.state,
                        jobs.c.attempts,
                        jobs.c.max_attempts,
                        jobs.c.reply_state,
                    ).where(
                        expired,
                        or_(
                            jobs.c.state.in_((JobState.GENERATING, JobState.REPLYING)),
                            jobs.c.reply_state == ReplyState.SENDING,
                        ),
                    )
                )
            ).all()
            for row in stale:
                if row.state == JobState.GENERATING:
                    if row.attempts < row.max_attempts:
                        delay = backoff_seconds(
                            row.attempts,
                            self.settings.retry_base_seconds,
                            self.settings.retry_max_seconds,
                        )
                        values: dict[str, Any] = {
                            "state": JobState.QUEUED,
                            "not_before": now + delay,
                        }
                    else:
                        values = {
                            "state": JobState.FAILED,
                            "finished_at": now,
                            "reply_state": ReplyState.PENDING,
                            "error_code": "generation_failed",
                            "error_message": "the generator stopped while working on it",
                        }
                elif row.state == JobState.REPLYING:
                    values = {"state": JobState.GENERATED}
                else:
                    values = {"reply_state": ReplyState.PENDING}
                await conn.execute(
                    update(jobs)
                    .where(jobs.c.id == row.id, expired)
                    .values(**values, lease_owner=None, lease_expires_at=None, updated_at=now)
                )
                moved += 1
                self._transition(row.id, row.state, values.get("state", row.state), "lease_expired")
        return moved

    # ------------------------------------------------------------------ reply side
    async def claim_replies(
        self, worker_id: str, limit: int = 10, lease_seconds: float = 120.0
    ) -> list[Row[Any]]:
        """Take generated jobs (→ replying) and pending error replies (→ sending)."""
        now = self._now()
        lease = {"lease_owner": worker_id, "lease_expires_at": now + lease_seconds}
        out: list[Row[Any]] = []
        async with self.engine.begin() as conn:
            for where, values in (
                (
                    jobs.c.state == JobState.GENERATED,
                    {"state": JobState.REPLYING},
                ),
                (
                    and_(
                        jobs.c.reply_state == ReplyState.PENDING,
                        jobs.c.state.in_((JobState.REJECTED, JobState.FAILED)),
                    ),
                    {"reply_state": ReplyState.SENDING},
                ),
            ):
                picked = select(jobs.c.id).where(where, jobs.c.not_before <= now)
                picked = picked.order_by(jobs.c.id).limit(limit - len(out))
                if self._pg:
                    picked = picked.with_for_update(skip_locked=True)
                ids = list((await conn.execute(picked)).scalars())
                if not ids:
                    continue
                rows = await conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(ids), where)
                    .values(
                        **values, **lease, reply_attempts=jobs.c.reply_attempts + 1, updated_at=now
                    )
                    .returning(*jobs.c)
                )
                out.extend(rows.all())
                if len(out) >= limit:
                    break
        for row in out:
            if row.state == JobState.REPLYING:
                self._transition(row.id, JobState.GENERATED, JobState.REPLYING, worker=worker_id)
        return out

    async def reply_sent(
        self, worker_id: str, job_id: int, remote_id: str | None, url: str | None = None
    ) -> bool:
        """The reply is on the server: replying → done, or an error reply sending → sent."""
        now = self._now()
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(jobs.c.state, jobs.c.created_at).where(
                        jobs.c.id == job_id, jobs.c.lease_owner == worker_id
                    )
                )
            ).first()
            if row is None:
                return False
            if row.state == JobState.REPLYING:
                values: dict[str, Any] = {"state": JobState.DONE, "finished_at": now}
            else:
                values = {"reply_state": ReplyState.SENT}
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    **values,
                    reply_remote_id=remote_id,
                    reply_url=url,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
        if row.state == JobState.REPLYING:
            metrics.REPLY_LATENCY.observe(max(0.0, now - row.created_at))
            self._transition(job_id, JobState.REPLYING, JobState.DONE, remote=remote_id)
        return True

    async def reply_failed(
        self,
        worker_id: str,
        job_id: int,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        gone: bool = False,
    ) -> str | None:
        """A post attempt failed. Transient → try again later (never dropped); permanent →
        failed without reply; the request deleted → cancelled."""
        now = self._now()
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(jobs.c.state, jobs.c.reply_attempts).where(
                        jobs.c.id == job_id, jobs.c.lease_owner == worker_id
                    )
                )
            ).first()
            if row is None:
                return None
            sending_images = row.state == JobState.REPLYING
            if retryable and not gone:
                delay = backoff_seconds(
                    row.reply_attempts,
                    self.settings.retry_base_seconds,
                    self.settings.reply_retry_max_seconds,
                )
                delay = max(delay, retry_after or 0.0)
                values: dict[str, Any] = {"not_before": now + delay}
                if sending_images:
                    values["state"] = JobState.GENERATED
                else:
                    values["reply_state"] = ReplyState.PENDING
            elif sending_images:
                values = {
                    "state": JobState.CANCELLED if gone else JobState.FAILED,
                    "finished_at": now,
                    "error_code": code,
                    "error_message": message,
                }
            else:
                values = {"reply_state": ReplyState.GAVE_UP}
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(**values, lease_owner=None, lease_expires_at=None, updated_at=now)
            )
        new_state = values.get("state", row.state)
        self._transition(job_id, row.state, new_state, code)
        return new_state

    # ------------------------------------------------------------------ admin
    async def cancel(self, job_id: int, reason: str = "cancelled") -> bool:
        now = self._now()
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(jobs.c.state).where(jobs.c.id == job_id))).first()
            if row is None or row.state in JobState.TERMINAL:
                return False
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == row.state)
                .values(
                    state=JobState.CANCELLED,
                    error_code="cancelled",
                    error_message=reason,
                    lease_owner=None,
                    lease_expires_at=None,
                    finished_at=now,
                    updated_at=now,
                )
            )
        self._transition(job_id, row.state, JobState.CANCELLED, reason)
        return True

    async def retry(self, job_id: int) -> bool:
        """Put a failed or cancelled job back in the queue with fresh attempts."""
        now = self._now()
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(jobs.c.state).where(jobs.c.id == job_id))).first()
            if row is None or row.state not in (JobState.FAILED, JobState.CANCELLED):
                return False
            clock = (
                await conn.execute(
                    select(func.coalesce(func.min(jobs.c.fair_seq), 0)).where(
                        jobs.c.state == JobState.QUEUED
                    )
                )
            ).scalar_one()
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    state=JobState.QUEUED,
                    attempts=0,
                    reply_attempts=0,
                    fair_seq=clock,
                    not_before=0.0,
                    error_code=None,
                    error_message=None,
                    reply_state=ReplyState.NONE,
                    finished_at=None,
                    updated_at=now,
                )
            )
        self._transition(job_id, row.state, JobState.QUEUED, "retry")
        return True

    async def get(self, job_id: int) -> Row[Any] | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()

    async def find(self, platform: str, bot_account: str, remote_id: str) -> Row[Any] | None:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    select(jobs).where(
                        jobs.c.platform == platform,
                        jobs.c.bot_account == bot_account,
                        jobs.c.remote_id == remote_id,
                    )
                )
            ).first()

    async def find_by_reply(
        self, platform: str, bot_account: str, reply_id: str
    ) -> Row[Any] | None:
        """The job whose reply (the bot's post) has this remote id — for `again`/`delete`."""
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    select(jobs).where(
                        jobs.c.platform == platform,
                        jobs.c.bot_account == bot_account,
                        jobs.c.reply_remote_id == reply_id,
                    )
                )
            ).first()

    async def images(self, job_id: int) -> list[Row[Any]]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(images).where(images.c.job_id == job_id).order_by(images.c.index)
            )
            return list(result.all())

    async def stats(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            result = await conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))
            counts = {state: 0 for state in JobState.ALL}
            counts.update({state: int(n) for state, n in result.all()})
        return counts

    async def list_jobs(
        self, state: str | None = None, limit: int = 50, requester: str | None = None
    ) -> list[Row[Any]]:
        query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if state:
            query = query.where(jobs.c.state == state)
        if requester:
            query = query.where(jobs.c.requester == requester)
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def purge(self, older_than_seconds: float) -> tuple[int, int]:
        """Delete finished jobs older than the retention and their image files."""
        cutoff = self._now() - older_than_seconds
        old = and_(jobs.c.state.in_(JobState.TERMINAL), jobs.c.finished_at < cutoff)
        async with self.engine.begin() as conn:
            ids = list((await conn.execute(select(jobs.c.id).where(old))).scalars())
            if not ids:
                return 0, 0
            paths = list(
                (
                    await conn.execute(select(images.c.path).where(images.c.job_id.in_(ids)))
                ).scalars()
            )
            await conn.execute(delete(images).where(images.c.job_id.in_(ids)))
            await conn.execute(delete(jobs).where(jobs.c.id.in_(ids)))
        removed = 0
        for path in paths:
            file = Path(path)
            if file.exists():
                file.unlink()
                removed += 1
            parent = file.parent
            if parent.exists() and not any(parent.iterdir()):
                parent.rmdir()
        log.info(
            "purged %d jobs and %d image files older than %.0fs",
            len(ids),
            removed,
            older_than_seconds,
        )
        return len(ids), removed

    # ------------------------------------------------------------------ logging
    @staticmethod
    def _transition(
        job_id: int, old: str | None, new: str, reason: str | None = None, **extra: Any
    ) -> None:
        metrics.JOB_TRANSITIONS.labels(to_state=new).inc()
        if new in JobState.TERMINAL and new != old:
            metrics.JOBS_FINISHED.labels(outcome=new).inc()
        log.info(
            "job %s %s -> %s%s",
            job_id,
            old or "new",
            new,
            f" ({reason})" if reason else "",
            extra={"job_id": job_id, "from_state": old, "to_state": new, "reason": reason, **extra},
        )
