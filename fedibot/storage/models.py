"""The database schema (SQLAlchemy 2 declarative). Alembic migrations mirror it.

Timestamps are UNIX epoch seconds (float, UTC): cheap to compare in the queue's hot path and
identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of every table."""


def table_of(model: type[Base]) -> Table:
    """A model's Table, for Core statements (SQLAlchemy types `__table__` as a FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class JobState:
    RECEIVED = "received"
    QUEUED = "queued"
    GENERATING = "generating"
    GENERATED = "generated"
    REPLYING = "replying"
    DONE = "done"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # The output check kept the images back (a request naming a minor, see
    # fedibot.moderation.output_check): never posted, kept for the operator to review.
    WITHHELD = "withheld"

    ALL = (
        RECEIVED,
        QUEUED,
        GENERATING,
        GENERATED,
        REPLYING,
        DONE,
        REJECTED,
        FAILED,
        CANCELLED,
        WITHHELD,
    )
    TERMINAL = (DONE, REJECTED, FAILED, CANCELLED, WITHHELD)
    # Retention purges these; `withheld` waits for an operator's decision (or is evidence).
    PURGEABLE = (DONE, REJECTED, FAILED, CANCELLED)


class ReplyState:
    """Delivery of an error/notice reply for a job that ended without images."""

    NONE = "none"
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    GAVE_UP = "gave_up"


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), default="mention")  # mention | campaign
    platform: Mapped[str] = mapped_column(String(16))
    bot_account: Mapped[str] = mapped_column(String(64))
    remote_id: Mapped[str] = mapped_column(String(255))
    requester: Mapped[str] = mapped_column(String(320))  # user@domain, or campaign:<name>
    requester_domain: Mapped[str] = mapped_column(String(255), default="")
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    fair_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    batch_key: Mapped[str] = mapped_column(String(255), default="")

    prompt: Mapped[str] = mapped_column(Text, default="")
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str] = mapped_column(String(64), default="")
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    guidance: Mapped[float] = mapped_column(Float, default=0.0)
    n: Mapped[int] = mapped_column(Integer, default=1)
    seed: Mapped[int] = mapped_column(BigInteger, default=0)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # style, raw options
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the Mention
    visibility: Mapped[str] = mapped_column(String(16), default="direct")

    # Generations started (counted when rendering starts, not at the claim): a claimed job
    # that never started, or one that died with its worker in a batch, costs no attempt.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    # Times a worker died (lease expired, or taken back by its restart) while rendering this
    # job; a job that crashed once is claimed alone afterwards (poison isolation).
    crashes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # this lease's render
    batch_size: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    not_before: Mapped[float] = mapped_column(Float, default=0.0)
    reply_attempts: Mapped[int] = mapped_column(Integer, default=0)
    reply_state: Mapped[str] = mapped_column(String(16), default=ReplyState.NONE)

    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    reply_remote_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    reply_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    safety: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    generated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    generation_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        UniqueConstraint("platform", "bot_account", "remote_id", name="uq_jobs_remote"),
        # The claim order: fair round, then priority, then age. Partial: only queued rows.
        Index(
            "ix_jobs_claim_order",
            "fair_seq",
            text("priority DESC"),
            "id",
            sqlite_where=text("state = 'queued'"),
            postgresql_where=text("state = 'queued'"),
        ),
        Index(
            "ix_jobs_claim_batch",
            "batch_key",
            "fair_seq",
            text("priority DESC"),
            "id",
            sqlite_where=text("state = 'queued'"),
            postgresql_where=text("state = 'queued'"),
        ),
        Index(
            "ix_jobs_requester_queued",
            "requester",
            "fair_seq",
            sqlite_where=text("state = 'queued'"),
            postgresql_where=text("state = 'queued'"),
        ),
        # No index leads with `state` alone: the planner would prefer it (it is an equality)
        # and scan every queued row instead of walking the claim order.
        Index(
            "ix_jobs_generating",
            "requester",
            sqlite_where=text("state = 'generating'"),
            postgresql_where=text("state = 'generating'"),
        ),
        Index(
            "ix_jobs_generated",
            "id",
            sqlite_where=text("state = 'generated'"),
            postgresql_where=text("state = 'generated'"),
        ),
        Index(
            "ix_jobs_reply_pending",
            "id",
            sqlite_where=text("reply_state = 'pending'"),
            postgresql_where=text("reply_state = 'pending'"),
        ),
        Index(
            "ix_jobs_leased",
            "lease_expires_at",
            sqlite_where=text("lease_expires_at IS NOT NULL"),
            postgresql_where=text("lease_expires_at IS NOT NULL"),
        ),
        Index(
            "ix_jobs_finished",
            "finished_at",
            sqlite_where=text("finished_at IS NOT NULL"),
            postgresql_where=text("finished_at IS NOT NULL"),
        ),
        # The console overview's 24-hour counts and charts: covering (migration 0007).
        Index(
            "ix_console_finished_state",
            "finished_at",
            "state",
            sqlite_where=text("finished_at IS NOT NULL"),
            postgresql_where=text("finished_at IS NOT NULL"),
        ),
        Index(
            "ix_console_done_charts",
            "finished_at",
            "kind",
            "created_at",
            "n",
            "state",
            sqlite_where=text("finished_at IS NOT NULL AND state = 'done'"),
            postgresql_where=text("finished_at IS NOT NULL AND state = 'done'"),
        ),
        # The console's review queue and opt-out list (few rows each; see fedibot/console).
        Index(
            "ix_jobs_console_withheld",
            "id",
            sqlite_where=text("state = 'withheld'"),
            postgresql_where=text("state = 'withheld'"),
        ),
        Index(
            "ix_jobs_console_failed",
            "id",
            sqlite_where=text("state = 'failed'"),
            postgresql_where=text("state = 'failed'"),
        ),
        Index(
            "ix_jobs_console_opted_out",
            "requester",
            sqlite_where=text("error_code = 'opted_out'"),
            postgresql_where=text("error_code = 'opted_out'"),
        ),
        Index("ix_jobs_requester_created", "requester", "created_at"),
        Index("ix_jobs_domain_created", "requester_domain", "created_at"),
        Index(
            "ix_jobs_reply_remote",
            "platform",
            "bot_account",
            "reply_remote_id",
            sqlite_where=text("reply_remote_id IS NOT NULL"),
            postgresql_where=text("reply_remote_id IS NOT NULL"),
        ),
    )


class JobImage(Base):
    __tablename__ = "job_images"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    # Where the PNG is: "db:<job>/<index>" for the database ImageStore (fedibot.storage.images);
    # a file path for images made before images moved into the database.
    path: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    safety: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class JobImageData(Base):
    """The PNG bytes of one image (the database ImageStore): any process on any machine can
    read what any worker made."""

    __tablename__ = "job_image_data"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)


class JobInput(Base):
    """The picture a request starts from (image-to-image): the fetched, checked bytes, kept
    in the database so a worker on any machine can use it (docs/picture-input.md)."""

    __tablename__ = "job_inputs"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    mime_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    alt_text: Mapped[str] = mapped_column(Text, default="")
    source_url: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)


class HordeJob(Base):
    """The durable record of a job's latest AI Horde attempt (generator.horde.store)."""

    __tablename__ = "horde_jobs"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(
        String(16)
    )  # submitting|submitted|done|returned_local|failed
    horde_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    submissions: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    code: Mapped[str] = mapped_column(String(128), default="")
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index(
            "ix_horde_jobs_pending",
            "job_id",
            sqlite_where=text("state IN ('submitting', 'submitted')"),
            postgresql_where=text("state IN ('submitting', 'submitted')"),
        ),
    )


class WorkerSeen(Base):
    """Generator workers by their stable id, and when each last claimed or heartbeat (the
    Horde overflow rule asks how long ago a local worker was alive)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # local | horde
    host: Mapped[str] = mapped_column(String(255), default="")
    started_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float] = mapped_column(Float)


class Cursor(Base):
    """An adapter's catch-up position (e.g. the newest handled notification id)."""

    __tablename__ = "cursors"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Float)


class DomainOverride(Base):
    """A manual allow/deny decision by an admin: always beats the Fediseer sync."""

    __tablename__ = "domain_overrides"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    action: Mapped[str] = mapped_column(String(8))  # allow | deny
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(128), default="cli")


class FediseerEntry(Base):
    """The last good result of the Fediseer sync: one row per allowed or denied domain."""

    __tablename__ = "fediseer_entries"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    list: Mapped[str] = mapped_column(String(8))  # allow | deny
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    since: Mapped[float] = mapped_column(Float)


class SyncRun(Base):
    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # applied | held | failed | dry_run
    added: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    sources: Mapped[list[Any]] = mapped_column(JSON, default=list)
    diff: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class BannedUser(Base):
    __tablename__ = "banned_users"

    acct: Mapped[str] = mapped_column(String(320), primary_key=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(320), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CampaignState(Base):
    __tablename__ = "campaign_state"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    last_status_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    prompt_index: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[float] = mapped_column(Float)


class CampaignRun(Base):
    """One scheduled run of a campaign; unique by (campaign, scheduled time)."""

    __tablename__ = "campaign_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign: Mapped[str] = mapped_column(String(128))
    scheduled_at: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))  # enqueued | skipped | posted | failed
    job_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("campaign", "scheduled_at", name="uq_campaign_run"),)


class OutboundPost(Base):
    """One post the bot means to make (a job's result, wait notice, error reply, help text,
    campaign run): recorded `intended` before the first attempt, `posted` with the server's id
    once it is there. See docs/outbound.md."""

    __tablename__ = "outbound_posts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # result | wait | error | help | campaign
    bot_account: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), default="intended")  # intended | posted
    text: Mapped[str] = mapped_column(Text, default="")  # the first attempt's text
    media_refs: Mapped[list[str]] = mapped_column(JSON, default=list)  # uploads, in order
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    remote_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    posted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The post call in flight, or left without an answer (a crash, a timeout, a proxy's
    # 502/504): its request token and when it was first sent. Cleared when answered.
    send_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    send_started_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        UniqueConstraint("job_id", "kind", name="uq_outbound_job_kind"),
        UniqueConstraint("idempotency_key", name="uq_outbound_key"),
    )


class Setting(Base):
    """Install-wide values that live as long as the database (e.g. the install id)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class BudgetSlot(Base):
    """One posting request of a budget (fedibot/storage/budgets.py): spent (`spent`, at the
    time it went out) or reserved for a held job (in the future), per account and kind."""

    __tablename__ = "budget_slots"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[float] = mapped_column(Float)
    job_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    spent: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ix_budget_slots_account_kind_at", "account", "kind", "at"),
        Index("ix_budget_slots_job", "job_id"),
    )


class BudgetState(Base):
    """The effective limit of one budget and the server's last word on it (a 429, headers)."""

    __tablename__ = "budget_state"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    limit: Mapped[int] = mapped_column(Integer)
    per_seconds: Mapped[float] = mapped_column(Float)
    server_remaining: Mapped[int | None] = mapped_column(Integer, nullable=True)
    server_reset_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float)
