"""Jobs in and out of generation: idempotent enqueue, fair batch claims under a lease,
render-time attempts, heartbeats, completion, failure, hand-back and lease expiry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    and_,
    case,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row

from fedibot.queue.core import (
    HAS_PENDING_HORDE,
    IS_GENERATING,
    EnqueueResult,
    NewJob,
    PictureInput,
    QueueCore,
    _DriverInsert,
    batch_key,
    horde_jobs,
    images,
    inputs,
    jobs,
)
from fedibot.storage.models import (
    JobState,
    ReplyState,
)


class GenerationSide(QueueCore):
    """Jobs in and out of generation: idempotent enqueue, fair batch claims under a lease,"""

    # ------------------------------------------------------------------ enqueue
    async def enqueue(self, job: NewJob) -> EnqueueResult:
        """Record a job; a second call for the same (platform, account, remote id) is a no-op."""
        result = await self.db.run(self._enqueue, job, self._now())
        if result.created:
            self._transition(result.job_id, None, job.state, job.error_code)
        return result

    def _enqueue(self, conn: Connection, job: NewJob, now: float) -> EnqueueResult:
        params = {
            "kind": job.kind,
            "platform": job.platform,
            "bot_account": job.bot_account,
            "remote_id": job.remote_id,
            "requester": job.requester,
            "requester_domain": job.requester_domain,
            "state": job.state,
            "priority": job.priority,
            "batch_key": batch_key(
                job.model, job.width, job.height, job.steps, job.guidance, job.mode, job.strength
            ),
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
            "crashes": 0,
            "batch_size": 0,
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
        new_id = self._insert(conn, params)
        if new_id is not None:
            if job.picture is not None:
                self._store_picture(conn, int(new_id), job.picture, now)
            return EnqueueResult(int(new_id), created=True)
        existing = conn.execute(self._stmts.find_remote, params).scalar_one()
        return EnqueueResult(int(existing), created=False)

    @staticmethod
    def _store_picture(conn: Connection, job_id: int, picture: PictureInput, now: float) -> None:
        conn.execute(delete(inputs).where(inputs.c.job_id == job_id))
        conn.execute(
            insert(inputs).values(
                job_id=job_id,
                data=picture.data,
                mime_type=picture.mime_type,
                width=picture.width,
                height=picture.height,
                size=len(picture.data),
                alt_text=picture.alt_text,
                source_url=picture.source_url,
                created_at=now,
            )
        )

    async def job_options(self, job_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """`params["options"]` of these jobs (a claim leaves the JSON columns out)."""

        def _read(conn: Connection) -> dict[int, dict[str, Any]]:
            rows = conn.execute(select(jobs.c.id, jobs.c.params).where(jobs.c.id.in_(job_ids)))
            return {int(r.id): dict((r.params or {}).get("options") or {}) for r in rows}

        return await self.db.run(_read) if job_ids else {}

    async def picture(self, job_id: int) -> Row[Any] | None:
        """The stored input picture of an image-to-image job (job_inputs row) or None."""

        def _read(conn: Connection) -> Row[Any] | None:
            return conn.execute(select(inputs).where(inputs.c.job_id == job_id)).first()

        return await self.db.run(_read)

    def _insert(self, conn: Connection, params: dict[str, Any]) -> int | None:
        """The enqueue INSERT, compiled once and run on the driver directly: SQLAlchemy's
        per-execution parameter handling cost as much as SQLite's own work here."""
        compiled = self._compiled_insert
        if compiled is None:
            compiled = self._compiled_insert = _DriverInsert.compile(self._stmts.insert, conn)
        return conn.exec_driver_sql(compiled.sql, compiled.arguments(params)).scalar()

    # ------------------------------------------------------------------ generation side
    async def claim(
        self,
        worker_id: str,
        max_batch: int,
        lease_seconds: float | None = None,
        *,
        max_images: int | None = None,
    ) -> list[Row[Any]]:
        """Take up to `max_batch` compatible queued jobs (same batch key) under a lease.

        With `max_images`, the jobs' images (`n`) add up to at most that many — except that
        the first job is always taken, so a large request is never starved. A job that was
        being rendered when its worker died (`crashes` > 0) is taken alone: if it is what
        kills workers, it takes no innocent batch with it. Claiming costs no attempt
        (`start` counts one when rendering begins).
        """
        lease = lease_seconds or self.settings.lease_seconds
        claimed = await self.db.run(
            self._claim, worker_id, max_batch, lease, self._now(), max_images
        )
        for row in claimed:
            self._transition(row.id, JobState.QUEUED, JobState.GENERATING, worker=worker_id)
        return claimed

    def _claim(
        self,
        conn: Connection,
        worker_id: str,
        max_batch: int,
        lease: float,
        now: float,
        max_images: int | None = None,
    ) -> list[Row[Any]]:
        cap = self.settings.per_requester_in_flight
        key = conn.execute(self._stmts.claim_head, {"now": now, "cap": cap}).scalar()
        if key is None:
            return []
        rows = conn.execute(
            self._stmts.claim_candidates, {"now": now, "key": key, "limit": max_batch * 4}
        ).all()
        in_flight = self._in_flight(conn, {r.requester for r in rows}, now)
        chosen: list[int] = []
        images_taken = 0
        for row in rows:
            if in_flight[row.requester] >= cap:
                continue
            if row.crashes and chosen:  # a suspect runs alone
                continue
            if max_images is not None and chosen and images_taken + row.n > max_images:
                continue
            in_flight[row.requester] += 1
            chosen.append(row.id)
            images_taken += row.n
            if row.crashes:
                break
            if len(chosen) == max_batch or (max_images is not None and images_taken >= max_images):
                break
        if not chosen:
            return []
        claimed = list(
            conn.execute(
                self._stmts.claim_update,
                {
                    "ids": chosen,
                    "worker": worker_id,
                    "expires": now + lease,
                    "now": now,
                    "size": len(chosen),
                },
            ).all()
        )
        order = {job_id: i for i, job_id in enumerate(chosen)}
        claimed.sort(key=lambda r: order[r.id])
        return claimed

    async def start(self, worker_id: str, job_ids: Sequence[int]) -> int:
        """Rendering of these claimed jobs begins: each counts one attempt now. Until then a
        job that goes back to the queue (its worker stopped or died) has cost nothing."""
        if not job_ids:
            return 0
        now = self._now()

        def _start(conn: Connection) -> int:
            return conn.execute(
                update(jobs)
                .where(
                    jobs.c.id.in_(list(job_ids)),
                    jobs.c.lease_owner == worker_id,
                    IS_GENERATING,
                    jobs.c.started_at.is_(None),
                )
                .values(started_at=now, attempts=jobs.c.attempts + 1, updated_at=now)
            ).rowcount

        return await self.db.run(_start)

    async def heartbeat(
        self, worker_id: str, job_ids: Sequence[int], lease_seconds: float | None = None
    ) -> int:
        """Extend the lease of jobs this worker still holds; returns how many it holds."""
        if not job_ids:
            return 0
        expires = self._now() + (lease_seconds or self.settings.lease_seconds)

        def _heartbeat(conn: Connection) -> int:
            return conn.execute(
                update(jobs)
                .where(
                    jobs.c.id.in_(list(job_ids)),
                    jobs.c.lease_owner == worker_id,
                    or_(
                        jobs.c.state.in_((JobState.GENERATING, JobState.REPLYING)),
                        jobs.c.reply_state == ReplyState.SENDING,
                    ),
                )
                .values(lease_expires_at=expires)
            ).rowcount

        return await self.db.run(_heartbeat)

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

        def _complete(conn: Connection) -> bool:
            result = conn.execute(
                self._stmts.complete,
                {
                    "job_id": job_id,
                    "worker": worker_id,
                    "now": now,
                    "seconds": generation_seconds,
                    "safety": safety or {},
                },
            )
            if result.rowcount != 1:
                return False
            if image_rows:
                self.image_store.delete(conn, [job_id])  # a Horde job resumed after a crash
                conn.execute(delete(images).where(images.c.job_id == job_id))
                stored = []
                for r in image_rows:
                    row = {k: v for k, v in r.items() if k != "data"}
                    if r.get("data") is not None:
                        row["path"] = self.image_store.put(conn, job_id, r["index"], r["data"])
                    stored.append({**row, "job_id": job_id})
                conn.execute(insert(images), stored)
            return True

        done = await self.db.run(_complete)
        if done:
            self._transition(job_id, JobState.GENERATING, JobState.GENERATED)
        return done

    async def fail(
        self, worker_id: str, job_id: int, code: str, message: str, *, retryable: bool
    ) -> str | None:
        """A generation error: back to queued with backoff, or failed (+ an error reply)."""
        now = self._now()

        def _fail(conn: Connection) -> str | None:
            row = conn.execute(
                select(jobs.c.attempts, jobs.c.max_attempts, jobs.c.started_at).where(
                    jobs.c.id == job_id,
                    jobs.c.state == JobState.GENERATING,
                    jobs.c.lease_owner == worker_id,
                )
            ).first()
            if row is None:
                return None
            # A source that never called start() still pays for a failed generation.
            attempts = row.attempts + (0 if row.started_at is not None else 1)
            if retryable and attempts < row.max_attempts:
                values: dict[str, Any] = {
                    "state": JobState.QUEUED,
                    "not_before": now + self._backoff(attempts),
                }
            else:
                values = {
                    "state": JobState.FAILED,
                    "finished_at": now,
                    "reply_state": ReplyState.PENDING,
                }
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    **values,
                    attempts=attempts,
                    started_at=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    error_code=code,
                    error_message=message,
                    updated_at=now,
                )
            )
            return values["state"]

        new_state = await self.db.run(_fail)
        if new_state:
            self._transition(job_id, JobState.GENERATING, new_state, code)
        return new_state

    async def release(self, worker_id: str, job_ids: Sequence[int]) -> int:
        """Give claimed jobs back untouched (a worker stopping before it started them)."""
        if not job_ids:
            return 0
        now = self._now()

        def _release(conn: Connection) -> int:
            return conn.execute(
                update(jobs)
                .where(
                    jobs.c.id.in_(list(job_ids)),
                    jobs.c.lease_owner == worker_id,
                    jobs.c.state == JobState.GENERATING,
                )
                .values(
                    state=JobState.QUEUED,
                    attempts=jobs.c.attempts - case((jobs.c.started_at.is_not(None), 1), else_=0),
                    started_at=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            ).rowcount

        released = await self.db.run(_release)
        for job_id in job_ids:
            self._transition(job_id, JobState.GENERATING, JobState.QUEUED, "released")
        return released

    async def requeue_expired(self, owner: str | None = None) -> int:
        """Return jobs whose lease ran out (a worker or replier died) to where they resume.

        With `owner`, also every job that owner holds, expired or not: a restarted process
        (same stable worker id) takes back what its previous incarnation held at once instead
        of waiting out the lease. A generating job is judged by how far it got: claimed but
        never started → queued, nothing counted; died while rendering in a batch of several
        → queued without an attempt (any of them may have killed the worker) and marked, so
        it is claimed alone next time; died while rendering alone → the attempt counts, and
        after `max_attempts` such crashes the job fails. Jobs with an open Horde request stay
        reserved for a Horde worker (see `horde_orphan_seconds`).
        """
        moved = await self.db.run(self._requeue_expired, self._now(), owner)
        for job_id, old, new in moved:
            self._transition(job_id, old, new, "lease_expired" if owner is None else "taken_back")
        return len(moved)

    def _requeue_expired(
        self, conn: Connection, now: float, owner: str | None = None
    ) -> list[tuple[int, str, str]]:
        expired = and_(jobs.c.lease_expires_at.is_not(None), jobs.c.lease_expires_at < now)
        if owner is not None:
            expired = or_(expired, jobs.c.lease_owner == owner)
        stale = conn.execute(
            select(
                jobs.c.id,
                jobs.c.state,
                jobs.c.attempts,
                jobs.c.max_attempts,
                jobs.c.started_at,
                jobs.c.batch_size,
                jobs.c.crashes,
                jobs.c.lease_expires_at,
                HAS_PENDING_HORDE.label("horde"),
            ).where(
                expired,
                or_(
                    jobs.c.state.in_((JobState.GENERATING, JobState.REPLYING)),
                    jobs.c.reply_state == ReplyState.SENDING,
                ),
            )
        ).all()
        moved = []
        for row in stale:
            values: dict[str, Any]
            if row.state == JobState.GENERATING and row.horde:
                if (row.lease_expires_at or now) + self.settings.horde_orphan_seconds > now:
                    continue  # a Horde worker resumes the recorded request
                conn.execute(
                    update(horde_jobs)
                    .where(horde_jobs.c.job_id == row.id)
                    .values(state="returned_local", code="horde_orphaned", updated_at=now)
                )
                values = {"state": JobState.QUEUED, "attempts": max(0, row.attempts - 1)}
            elif row.state == JobState.GENERATING:
                values = self._after_crash(row, now)
            elif row.state == JobState.REPLYING:
                values = {"state": JobState.GENERATED}
            else:
                values = {"reply_state": ReplyState.PENDING}
            conn.execute(
                update(jobs)
                .where(jobs.c.id == row.id, expired)
                .values(**values, lease_owner=None, lease_expires_at=None, updated_at=now)
            )
            moved.append((row.id, row.state, values.get("state", row.state)))
        return moved

    def _after_crash(self, row: Any, now: float) -> dict[str, Any]:
        """Where a generating job goes when its worker is gone (see requeue_expired)."""
        base = {"started_at": None, "batch_size": 0}
        if row.started_at is None:  # claimed (prefetched) but never started
            return {**base, "state": JobState.QUEUED}
        crashes = row.crashes + 1
        if row.batch_size > 1:  # not proven guilty: no attempt, but alone from now on
            return {
                **base,
                "state": JobState.QUEUED,
                "crashes": crashes,
                "attempts": max(0, row.attempts - 1),
            }
        if row.attempts < row.max_attempts:
            return {
                **base,
                "state": JobState.QUEUED,
                "crashes": crashes,
                "not_before": now + self._backoff(row.attempts),
            }
        return {
            **base,
            "state": JobState.FAILED,
            "crashes": crashes,
            "finished_at": now,
            "reply_state": ReplyState.PENDING,
            "error_code": "generation_failed",
            "error_message": f"the generator stopped {crashes} times while working on it",
        }
