"""The durable job queue: idempotent enqueue, fair atomic batch claims under a lease.

One module, one concept (after procrastinate's `manager`): every method is one committed
transaction, so a crash anywhere resumes from the database.

Claiming is atomic: on SQLite every transaction is `BEGIN IMMEDIATE` (see
`fedibot.storage.database`), so the read of the candidates and the `UPDATE … RETURNING`
happen under one write lock; on PostgreSQL the candidates are read `FOR UPDATE SKIP LOCKED`.
The update also re-checks `state = 'queued'`, so a job is never taken twice.

Fairness: every job gets a `fair_seq` at enqueue: one more than the requester's newest queued
job, but never less than the oldest queued job anywhere (the "virtual clock"). Claiming in
`fair_seq` order therefore serves requesters round-robin: A's 50 jobs get rounds 0..49, B's
one job joins round 0. Priority breaks ties inside a round, then age.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    Integer,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from fedibot.ops import metrics
from fedibot.storage.database import Database
from fedibot.storage.images import (
    DatabaseImageStore,
    ImageStore,
    read_legacy_file,
    remove_legacy_files,
)
from fedibot.storage.models import (
    HordeJob,
    Job,
    JobImage,
    JobInput,
    JobState,
    ReplyState,
    WorkerSeen,
    table_of,
)

log = logging.getLogger("fedibot.queue.jobs")

jobs = table_of(Job)
images = table_of(JobImage)
horde_jobs = table_of(HordeJob)
workers = table_of(WorkerSeen)
inputs = table_of(JobInput)
HORDE_PENDING = ("submitting", "submitted")

CLAIM_ORDER = (jobs.c.fair_seq, jobs.c.priority.desc(), jobs.c.id)
# What a claim hands the worker: everything but the JSON documents (decoding those for every
# claimed row cost more than the claim itself).
CLAIM_COLUMNS = [c for c in jobs.c if c.name not in ("params", "request", "safety")]
# A literal (not a bound parameter) so SQLite and PostgreSQL can use the partial indexes
# declared with `WHERE state = 'queued'`.
IS_QUEUED = jobs.c.state == literal_column("'queued'")
IS_GENERATING = jobs.c.state == literal_column("'generating'")
IS_GENERATED = jobs.c.state == literal_column("'generated'")
REPLY_PENDING = jobs.c.reply_state == literal_column("'pending'")
# A Horde request is open for the job: only a Horde worker may take it (it polls the recorded
# request instead of making the images again).
HAS_PENDING_HORDE = exists().where(
    horde_jobs.c.job_id == jobs.c.id, horde_jobs.c.state.in_(HORDE_PENDING)
)
RETURNED_LOCAL = exists().where(
    horde_jobs.c.job_id == jobs.c.id, horde_jobs.c.state == "returned_local"
)


@dataclass(frozen=True)
class QueueSettings:
    max_attempts: int = 3
    lease_seconds: float = 60.0
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 900.0
    reply_retry_max_seconds: float = 3600.0
    per_requester_in_flight: int = 2
    # A reply that keeps failing (server down for days, a bug) ends `failed` after this many
    # tries, ~2 days with the default backoff cap; `fedibot queue retry` brings it back.
    max_reply_attempts: int = 50
    # A job whose Horde worker vanished stays reserved for a Horde worker (one resumes its
    # recorded request) this long after its lease ran out; then it goes to the local queue.
    horde_orphan_seconds: float = 1800.0
    clock: Callable[[], float] = time.time

    @classmethod
    def from_config(cls, config: Any, clock: Callable[[], float] = time.time) -> QueueSettings:
        """The settings in a FedibotConfig (`[queue]`, and the generator's lease)."""
        q = config.queue
        return cls(
            max_attempts=q.max_attempts,
            lease_seconds=config.generator.lease_seconds,
            retry_base_seconds=q.retry_base_seconds,
            retry_max_seconds=q.retry_max_seconds,
            reply_retry_max_seconds=q.reply_retry_max_seconds,
            per_requester_in_flight=q.per_requester_in_flight,
            clock=clock,
        )


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
    mode: str = "txt2img"  # txt2img | qr | img2img (the batch key's mode)
    strength: float | None = None  # img2img only
    picture: PictureInput | None = None  # img2img: stored in job_inputs with the job


@dataclass(frozen=True)
class PictureInput:
    """The checked picture an image-to-image job starts from (see fedibot/intake/pictures)."""

    data: bytes
    mime_type: str
    width: int
    height: int
    alt_text: str = ""
    source_url: str = ""


@dataclass(frozen=True)
class EnqueueResult:
    job_id: int
    created: bool


def batch_key(
    model: str,
    width: int,
    height: int,
    steps: int,
    guidance: float,
    mode: str = "txt2img",
    strength: float | None = None,
) -> str:
    """Jobs with the same key can share one pipeline call (the generator's
    `GenerationRequest.batch_key` as a string). Plain text-to-image keeps the short form of
    earlier versions; QR art ends in `|qr`, image-to-image in `|img2img@<strength>`, so they
    never share a batch with plain jobs (nor img2img jobs of different strengths)."""
    key = f"{model}|{width}x{height}|{steps}|{guidance:g}"
    if mode == "img2img":
        return f"{key}|img2img@{float(strength or 0.0):g}"
    if mode == "qr":
        return f"{key}|qr"
    return key


def key_mode(key: str | None) -> str:
    """The mode a `batch_key` string was made for: txt2img, qr or img2img."""
    tail = (key or "").split("|")[4:]
    if not tail:
        return "txt2img"
    return "img2img" if tail[0].startswith("img2img") else tail[0]


def options_mode(options: Any) -> str:
    """txt2img, qr or img2img for a job's options (a dict or an object with attributes):
    img2img when a picture comes with it, qr when it holds a QR text."""

    def get(name: str) -> Any:
        return options.get(name) if isinstance(options, dict) else getattr(options, name, None)

    if get("picture"):
        return "img2img"
    return "qr" if get("qr") is not None else "txt2img"


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with 'equal jitter': between half and all of base·2^(attempt-1)."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay / 2 + random.uniform(0, delay / 2)


class JobQueue:
    """All state changes of jobs. Safe to share between tasks, processes and machines.

    Each public method is one transaction run in the database thread (`Database.run`); the
    `_…` twins hold the SQL and take the connection.
    """

    def __init__(
        self,
        db: Database,
        settings: QueueSettings | None = None,
        image_store: ImageStore | None = None,
    ) -> None:
        self.db = db
        self.settings = settings or QueueSettings()
        self.image_store: ImageStore = image_store or DatabaseImageStore(self.settings.clock)
        self._pg = not db.is_sqlite
        self._stmts = _Statements.build(self._pg)
        self._listeners: list[Callable[[str], None]] = []
        self._compiled_insert: _DriverInsert | None = None

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Called with the new state after every change this process makes (to wake the
        worker or the replier at once instead of at their next poll)."""
        self._listeners.append(listener)

    def _now(self) -> float:
        return self.settings.clock()

    def _backoff(self, attempt: int, cap: float | None = None) -> float:
        return backoff_seconds(
            attempt, self.settings.retry_base_seconds, cap or self.settings.retry_max_seconds
        )

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

    def _in_flight(self, conn: Connection, requesters: Iterable[str], now: float) -> Counter[str]:
        wanted = set(requesters)
        result = conn.execute(self._stmts.in_flight, {"now": now})
        return Counter({name: int(n) for name, n in result.all() if name in wanted})

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

    # ------------------------------------------------------------------ reply side
    async def claim_replies(
        self, worker_id: str, limit: int = 10, lease_seconds: float = 120.0
    ) -> list[Row[Any]]:
        """Take generated jobs (→ replying) and pending error replies (→ sending)."""
        out = await self.db.run(self._claim_replies, worker_id, limit, lease_seconds, self._now())
        for row in out:
            if row.state == JobState.REPLYING:
                self._transition(row.id, JobState.GENERATED, JobState.REPLYING, worker=worker_id)
        return out

    def _claim_replies(
        self, conn: Connection, worker_id: str, limit: int, lease_seconds: float, now: float
    ) -> list[Row[Any]]:
        lease = {"lease_owner": worker_id, "lease_expires_at": now + lease_seconds}
        error_reply_due = and_(
            REPLY_PENDING,
            jobs.c.state.in_((JobState.REJECTED, JobState.FAILED, JobState.WITHHELD)),
        )
        out: list[Row[Any]] = []
        for where, values in (
            (IS_GENERATED, {"state": JobState.REPLYING}),
            (error_reply_due, {"reply_state": ReplyState.SENDING}),
        ):
            picked = select(jobs.c.id).where(where, jobs.c.not_before <= now)
            picked = picked.order_by(jobs.c.id).limit(limit - len(out))
            if self._pg:
                picked = picked.with_for_update(skip_locked=True)
            ids = list(conn.execute(picked).scalars())
            if ids:
                rows = conn.execute(
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
        return out

    async def reply_sent(
        self, worker_id: str, job_id: int, remote_id: str | None, url: str | None = None
    ) -> bool:
        """The reply is on the server: replying → done, or an error reply sending → sent."""
        now = self._now()

        def _sent(conn: Connection) -> Row[Any, Any] | None:
            row = conn.execute(
                select(jobs.c.state, jobs.c.created_at).where(
                    jobs.c.id == job_id, jobs.c.lease_owner == worker_id
                )
            ).first()
            if row is None:
                return None
            if row.state == JobState.REPLYING:
                values: dict[str, Any] = {"state": JobState.DONE, "finished_at": now}
            else:
                values = {"reply_state": ReplyState.SENT}
            conn.execute(
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
            return row

        row = await self.db.run(_sent)
        if row is None:
            return False
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

        def _failed(conn: Connection) -> tuple[str, str] | None:
            row = conn.execute(
                select(jobs.c.state, jobs.c.reply_attempts).where(
                    jobs.c.id == job_id, jobs.c.lease_owner == worker_id
                )
            ).first()
            if row is None:
                return None
            sending_images = row.state == JobState.REPLYING
            values: dict[str, Any]
            give_up = row.reply_attempts >= self.settings.max_reply_attempts
            if retryable and not gone and not give_up:
                cap = self.settings.reply_retry_max_seconds
                delay = self._backoff(row.reply_attempts, cap)
                server_wait = retry_after if retry_after and math.isfinite(retry_after) else 0.0
                values = {"not_before": now + min(max(delay, server_wait), cap)}
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
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(**values, lease_owner=None, lease_expires_at=None, updated_at=now)
            )
            return row.state, values.get("state", row.state)

        moved = await self.db.run(_failed)
        if moved is None:
            return None
        self._transition(job_id, moved[0], moved[1], code)
        return moved[1]

    async def withhold(
        self, worker_id: str, job_id: int, code: str, reason: str, *, reply: bool
    ) -> bool:
        """replying → withheld: the output check keeps the images back for the operator;
        `code` says why (`minor_exposure` is never postable). With `reply`, a neutral error
        reply is queued."""
        now = self._now()

        def _withhold(conn: Connection) -> int:
            return conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.state == JobState.REPLYING,
                    jobs.c.lease_owner == worker_id,
                )
                .values(
                    state=JobState.WITHHELD,
                    error_code=code,
                    error_message=reason,
                    reply_state=ReplyState.PENDING if reply else ReplyState.NONE,
                    reply_attempts=0,
                    not_before=0.0,
                    lease_owner=None,
                    lease_expires_at=None,
                    finished_at=now,
                    updated_at=now,
                )
            ).rowcount

        moved = bool(await self.db.run(_withhold))
        if moved:
            self._transition(job_id, JobState.REPLYING, JobState.WITHHELD, reason)
        return moved

    # ------------------------------------------------------------------ admin
    async def cancel(self, job_id: int, reason: str = "cancelled") -> bool:
        """Stop a job that has not finished; a worker holding it finds its lease gone."""
        now = self._now()

        def _cancel(conn: Connection) -> str | None:
            row = conn.execute(select(jobs.c.state).where(jobs.c.id == job_id)).first()
            if row is None or row.state in JobState.TERMINAL:
                return None
            conn.execute(
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
            return row.state

        old = await self.db.run(_cancel)
        if old is None:
            return False
        self._transition(job_id, old, JobState.CANCELLED, reason)
        return True

    async def retry(self, job_id: int) -> bool:
        """Put a failed or cancelled job back in the queue with fresh attempts."""
        now = self._now()

        def _retry(conn: Connection) -> str | None:
            row = conn.execute(select(jobs.c.state, jobs.c.kind).where(jobs.c.id == job_id)).first()
            if row is None or row.state not in (JobState.FAILED, JobState.CANCELLED):
                return None
            if row.kind not in ("mention", "campaign"):
                return None  # help/delete notices are not generated
            old_paths.extend(
                conn.execute(select(images.c.path).where(images.c.job_id == job_id)).scalars()
            )
            conn.execute(delete(images).where(images.c.job_id == job_id))
            self.image_store.delete(conn, [job_id])
            conn.execute(delete(horde_jobs).where(horde_jobs.c.job_id == job_id))
            clock = conn.execute(
                select(func.coalesce(func.min(jobs.c.fair_seq), 0)).where(IS_QUEUED)
            ).scalar_one()
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    state=JobState.QUEUED,
                    attempts=0,
                    crashes=0,
                    started_at=None,
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
            return row.state

        old_paths: list[str] = []
        old = await self.db.run(_retry)
        if old is None:
            return False
        await asyncio.to_thread(remove_legacy_files, old_paths)
        self._transition(job_id, old, JobState.QUEUED, "retry")
        return True

    async def update_queued(self, job_id: int, **values: Any) -> bool:
        """Change a job that is still queued (a request edited before it was handled)."""
        now = self._now()

        def _update(conn: Connection) -> int:
            return conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED)
                .values(**values, updated_at=now)
            ).rowcount

        return bool(await self.db.run(_update))

    async def update_params(self, job_id: int, values: dict[str, Any]) -> None:
        """Merge `values` into a job's params (small notes such as 'wait notice sent')."""

        def _update(conn: Connection) -> None:
            current = conn.execute(select(jobs.c.params).where(jobs.c.id == job_id)).scalar()
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(params={**(current or {}), **values}, updated_at=self._now())
            )

        await self.db.run(_update)

    async def add_notice(self, job_id: int, code: str, text: str) -> None:
        """A sentence for the job's reply (e.g. the Horde censored some of its images): kept
        in params["notices"], which compose_result appends to the reply text."""

        def _add(conn: Connection) -> None:
            current = conn.execute(select(jobs.c.params).where(jobs.c.id == job_id)).scalar()
            params = dict(current or {})
            notices = [n for n in params.get("notices", []) if n.get("code") != code]
            params["notices"] = [*notices, {"code": code, "text": text}]
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(params=params, updated_at=self._now())
            )

        await self.db.run(_add)

    async def get(self, job_id: int) -> Row[Any] | None:
        return await self.db.run(
            lambda conn: conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        )

    async def find(self, platform: str, bot_account: str, remote_id: str) -> Row[Any] | None:
        query = select(jobs).where(
            jobs.c.platform == platform,
            jobs.c.bot_account == bot_account,
            jobs.c.remote_id == remote_id,
        )
        return await self.db.run(lambda conn: conn.execute(query).first())

    async def find_by_reply(
        self, platform: str, bot_account: str, reply_id: str
    ) -> Row[Any] | None:
        """The job whose reply (the bot's post) has this remote id — for `again`/`delete`."""
        query = select(jobs).where(
            jobs.c.platform == platform,
            jobs.c.bot_account == bot_account,
            jobs.c.reply_remote_id == reply_id,
        )
        return await self.db.run(lambda conn: conn.execute(query).first())

    async def images(self, job_id: int) -> list[Row[Any]]:
        query = select(images).where(images.c.job_id == job_id).order_by(images.c.index)
        return await self.db.run(lambda conn: list(conn.execute(query).all()))

    async def image_bytes(self, job_id: int, rows: Sequence[Any]) -> dict[int, bytes]:
        """The PNG bytes of these image rows of a job, by index, from the image store (or,
        for images made before the store, from their file when this process can read it)."""
        indexes = [int(r.index) for r in rows]
        found = await self.db.run(lambda conn: self.image_store.get(conn, job_id, indexes))
        for r in rows:
            if int(r.index) not in found:
                legacy = await asyncio.to_thread(read_legacy_file, str(r.path))
                if legacy is not None:
                    found[int(r.index)] = legacy
        return found

    async def stats(self) -> dict[str, int]:
        def _stats(conn: Connection) -> dict[str, int]:
            result = conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))
            counts = {state: 0 for state in JobState.ALL}
            counts.update({state: int(n) for state, n in result.all()})
            return counts

        return await self.db.run(_stats)

    async def list_jobs(
        self, state: str | None = None, limit: int = 50, requester: str | None = None
    ) -> list[Row[Any]]:
        query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if state:
            query = query.where(jobs.c.state == state)
        if requester:
            query = query.where(jobs.c.requester == requester)
        return await self.db.run(lambda conn: list(conn.execute(query).all()))

    async def purge(self, older_than_seconds: float) -> tuple[int, int]:
        """Delete finished jobs older than the retention and their image files. Withheld jobs
        stay until an operator decided (discarded ones are purged later; evidence never)."""
        cutoff = self._now() - older_than_seconds
        old = and_(
            jobs.c.finished_at.is_not(None),
            jobs.c.finished_at < cutoff,
            jobs.c.state.in_(JobState.PURGEABLE),
        )

        def _purge(conn: Connection) -> tuple[list[int], list[str], int]:
            ids = list(conn.execute(select(jobs.c.id).where(old)).scalars())
            if not ids:
                return [], [], 0
            paths = list(
                conn.execute(select(images.c.path).where(images.c.job_id.in_(ids))).scalars()
            )
            stored = self.image_store.delete(conn, ids)
            conn.execute(delete(images).where(images.c.job_id.in_(ids)))
            conn.execute(delete(horde_jobs).where(horde_jobs.c.job_id.in_(ids)))
            conn.execute(delete(inputs).where(inputs.c.job_id.in_(ids)))
            conn.execute(delete(jobs).where(jobs.c.id.in_(ids)))
            return ids, paths, stored

        ids, paths, stored = await self.db.run(_purge)
        removed = stored + await asyncio.to_thread(remove_legacy_files, paths)
        if ids:
            log.info(
                "purged %d jobs and %d images older than %.0fs",
                len(ids),
                removed,
                older_than_seconds,
            )
        return len(ids), removed

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

    # ------------------------------------------------------------------ logging
    def _transition(
        self, job_id: int, old: str | None, new: str, reason: str | None = None, **extra: Any
    ) -> None:
        for listener in self._listeners:
            listener(new)
        metrics.JOB_TRANSITIONS.labels(to_state=new).inc()
        if new in JobState.TERMINAL and new != old:
            metrics.JOBS_FINISHED.labels(outcome=new).inc()
        if not log.isEnabledFor(logging.INFO):
            return
        log.info(
            "job %s %s -> %s%s",
            job_id,
            old or "new",
            new,
            f" ({reason})" if reason else "",
            extra={"job_id": job_id, "from_state": old, "to_state": new, "reason": reason, **extra},
        )


@dataclass(frozen=True)
class _Statements:
    """The hot-path statements, built once: constructing a SQLAlchemy statement costs more
    than executing it on SQLite."""

    insert: Any
    find_remote: Any
    claim_head: Any
    claim_candidates: Any
    claim_update: Any
    in_flight: Any
    complete: Any

    @classmethod
    def build(cls, pg: bool) -> _Statements:
        clock = select(func.min(jobs.c.fair_seq)).where(IS_QUEUED).scalar_subquery()
        mine = (
            select(func.max(jobs.c.fair_seq) + 1)
            .where(IS_QUEUED, jobs.c.requester == bindparam("requester"))
            .scalar_subquery()
        )
        lo, hi = func.coalesce(clock, 0), func.coalesce(mine, 0)
        columns = [
            c
            for c in jobs.c
            if c.name
            not in (
                "id",
                "fair_seq",
                "generated_at",
                "generation_seconds",
                "lease_owner",
                "lease_expires_at",
                "started_at",
                "reply_remote_id",
                "reply_url",
            )
        ]
        values: dict[str, Any] = {c.name: bindparam(c.name, type_=c.type) for c in columns}
        values["fair_seq"] = case((hi > lo, hi), else_=lo)
        dialect_insert = postgresql.insert if pg else sqlite.insert
        insert_stmt = (
            dialect_insert(jobs)
            .values(values)
            .on_conflict_do_nothing(index_elements=["platform", "bot_account", "remote_id"])
            .returning(jobs.c.id)
        )
        find_remote = select(jobs.c.id).where(
            jobs.c.platform == bindparam("platform"),
            jobs.c.bot_account == bindparam("bot_account"),
            jobs.c.remote_id == bindparam("remote_id"),
        )
        ready = and_(IS_QUEUED, jobs.c.not_before <= bindparam("now"))
        # An expired lease is a dead worker's: its jobs do not hold their requester back.
        live = and_(IS_GENERATING, jobs.c.lease_expires_at >= bindparam("now"))
        capped = (
            select(jobs.c.requester)
            .where(live)
            .group_by(jobs.c.requester)
            .having(func.count() >= bindparam("cap"))
        )
        head = (
            select(jobs.c.batch_key)
            .where(ready, jobs.c.requester.not_in(capped))
            .order_by(*CLAIM_ORDER)
            .limit(1)
        )
        candidates = (
            select(jobs.c.id, jobs.c.requester, jobs.c.n, jobs.c.crashes)
            .where(ready, jobs.c.batch_key == bindparam("key"))
            .order_by(*CLAIM_ORDER)
            .limit(bindparam("limit", type_=Integer))
        )
        if pg:
            head = head.with_for_update(skip_locked=True, of=jobs)
            candidates = candidates.with_for_update(skip_locked=True)
        claim_update = (
            update(jobs)
            .where(jobs.c.id.in_(bindparam("ids", expanding=True)), IS_QUEUED)
            .values(
                state=JobState.GENERATING,
                lease_owner=bindparam("worker"),
                lease_expires_at=bindparam("expires"),
                started_at=None,
                batch_size=bindparam("size", type_=Integer),
                updated_at=bindparam("now"),
            )
            .returning(*CLAIM_COLUMNS)
        )
        # All generating jobs (few: workers × batch), not `requester IN (…)`: the planner
        # would pick the full requester index and visit every job those people ever sent.
        in_flight = select(jobs.c.requester, func.count()).where(live).group_by(jobs.c.requester)
        complete = (
            update(jobs)
            .where(
                jobs.c.id == bindparam("job_id"),
                jobs.c.state == JobState.GENERATING,
                jobs.c.lease_owner == bindparam("worker"),
            )
            .values(
                state=JobState.GENERATED,
                lease_owner=None,
                lease_expires_at=None,
                not_before=0.0,
                generated_at=bindparam("now"),
                updated_at=bindparam("now"),
                generation_seconds=bindparam("seconds", type_=Float),
                safety=bindparam("safety", type_=JSON),
            )
        )
        return cls(insert_stmt, find_remote, head, candidates, claim_update, in_flight, complete)


@dataclass(frozen=True)
class _DriverInsert:
    """The enqueue INSERT as driver SQL plus how to turn a params dict into its arguments."""

    sql: str
    names: tuple[str, ...] | None  # positional (sqlite's qmark) order, or None for named
    json_columns: frozenset[str]
    literals: dict[str, Any]  # values SQLAlchemy bound itself (e.g. the `+ 1`, the 0s)

    @classmethod
    def compile(cls, statement: Any, conn: Connection) -> _DriverInsert:
        compiled = statement.compile(dialect=conn.dialect)
        names = tuple(compiled.positiontup) if compiled.positiontup else None
        json_columns = frozenset(c.name for c in jobs.c if isinstance(c.type, JSON))
        literals = {k: v for k, v in compiled.params.items() if v is not None}
        return cls(str(compiled), names, json_columns, literals)

    def arguments(self, params: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = dict(self.literals)
        values.update(
            (k, json.dumps(v) if k in self.json_columns else v) for k, v in params.items()
        )
        if self.names is None:
            return values
        return tuple(values[name] for name in self.names)
