"""The queue's core: settings, the job tables and the shared predicates, the hot-path
statements, and `QueueCore` (database, listeners, clock, the one `_transition` hook) that the
queue's sides build on (`generation`, `replies`, `maintenance`, `horde_side`; put together
in `fedibot.queue.jobs.JobQueue`).

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

import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    Integer,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from fedibot.ops import metrics
from fedibot.storage.database import Database
from fedibot.storage.images import (
    DatabaseImageStore,
    ImageStore,
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


class QueueCore:
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

    def _in_flight(self, conn: Connection, requesters: Iterable[str], now: float) -> Counter[str]:
        """Jobs each requester has generating under a live lease (expired ones do not count)."""
        wanted = set(requesters)
        result = conn.execute(self._stmts.in_flight, {"now": now})
        return Counter({name: int(n) for name, n in result.all() if name in wanted})

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
