"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 20:55:54.815927
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=320), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)

    op.create_table(
        "banned_users",
        sa.Column("acct", sa.String(length=320), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("acct"),
    )
    op.create_table(
        "campaign_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("campaign", sa.String(length=128), nullable=False),
        sa.Column("scheduled_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign", "scheduled_at", name="uq_campaign_run"),
    )
    op.create_table(
        "campaign_state",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("last_status_id", sa.String(length=255), nullable=True),
        sa.Column("prompt_index", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "cursors",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "domain_overrides",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("domain"),
    )
    op.create_table(
        "fediseer_entries",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("list", sa.String(length=8), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("domain"),
    )
    op.create_table(
        "jobs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("bot_account", sa.String(length=64), nullable=False),
        sa.Column("remote_id", sa.String(length=255), nullable=False),
        sa.Column("requester", sa.String(length=320), nullable=False),
        sa.Column("requester_domain", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("fair_seq", sa.BigInteger(), nullable=False),
        sa.Column("batch_key", sa.String(length=255), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("negative_prompt", sa.Text(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("guidance", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("not_before", sa.Float(), nullable=False),
        sa.Column("reply_attempts", sa.Integer(), nullable=False),
        sa.Column("reply_state", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("reply_remote_id", sa.String(length=255), nullable=True),
        sa.Column("reply_url", sa.Text(), nullable=True),
        sa.Column("safety", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("generated_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("generation_seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "bot_account", "remote_id", name="uq_jobs_remote"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_claim_order",
            ["fair_seq", sa.text("priority DESC"), "id"],
            unique=False,
            sqlite_where=sa.text("state = 'queued'"),
            postgresql_where=sa.text("state = 'queued'"),
        )
        batch_op.create_index(
            "ix_jobs_claim_batch",
            ["batch_key", "fair_seq", sa.text("priority DESC"), "id"],
            unique=False,
            sqlite_where=sa.text("state = 'queued'"),
            postgresql_where=sa.text("state = 'queued'"),
        )
        batch_op.create_index(
            "ix_jobs_domain_created", ["requester_domain", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_jobs_finished",
            ["finished_at"],
            unique=False,
            sqlite_where=sa.text("finished_at IS NOT NULL"),
            postgresql_where=sa.text("finished_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_jobs_generated",
            ["id"],
            unique=False,
            sqlite_where=sa.text("state = 'generated'"),
            postgresql_where=sa.text("state = 'generated'"),
        )
        batch_op.create_index(
            "ix_jobs_generating",
            ["requester"],
            unique=False,
            sqlite_where=sa.text("state = 'generating'"),
            postgresql_where=sa.text("state = 'generating'"),
        )
        batch_op.create_index(
            "ix_jobs_leased",
            ["lease_expires_at"],
            unique=False,
            sqlite_where=sa.text("lease_expires_at IS NOT NULL"),
            postgresql_where=sa.text("lease_expires_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_jobs_reply_pending",
            ["id"],
            unique=False,
            sqlite_where=sa.text("reply_state = 'pending'"),
            postgresql_where=sa.text("reply_state = 'pending'"),
        )
        batch_op.create_index(
            "ix_jobs_reply_remote",
            ["platform", "bot_account", "reply_remote_id"],
            unique=False,
            sqlite_where=sa.text("reply_remote_id IS NOT NULL"),
            postgresql_where=sa.text("reply_remote_id IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_jobs_requester_created", ["requester", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_jobs_requester_queued",
            ["requester", "fair_seq"],
            unique=False,
            sqlite_where=sa.text("state = 'queued'"),
            postgresql_where=sa.text("state = 'queued'"),
        )

    op.create_table(
        "sync_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("diff", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "job_images",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("safety", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("job_images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_images_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_images_job_id"))

    op.drop_table("job_images")
    op.drop_table("sync_runs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_jobs_requester_queued",
            sqlite_where=sa.text("state = 'queued'"),
            postgresql_where=sa.text("state = 'queued'"),
        )
        batch_op.drop_index("ix_jobs_requester_created")
        batch_op.drop_index("ix_jobs_reply_remote")
        batch_op.drop_index(
            "ix_jobs_reply_pending",
            sqlite_where=sa.text("reply_state = 'pending'"),
            postgresql_where=sa.text("reply_state = 'pending'"),
        )
        batch_op.drop_index(
            "ix_jobs_leased",
            sqlite_where=sa.text("lease_expires_at IS NOT NULL"),
            postgresql_where=sa.text("lease_expires_at IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_jobs_generating",
            sqlite_where=sa.text("state = 'generating'"),
            postgresql_where=sa.text("state = 'generating'"),
        )
        batch_op.drop_index(
            "ix_jobs_generated",
            sqlite_where=sa.text("state = 'generated'"),
            postgresql_where=sa.text("state = 'generated'"),
        )
        batch_op.drop_index(
            "ix_jobs_finished",
            sqlite_where=sa.text("finished_at IS NOT NULL"),
            postgresql_where=sa.text("finished_at IS NOT NULL"),
        )
        batch_op.drop_index("ix_jobs_claim_order")
        batch_op.drop_index("ix_jobs_claim_batch")
        batch_op.drop_index("ix_jobs_domain_created")

    op.drop_table("jobs")
    op.drop_table("fediseer_entries")
    op.drop_table("domain_overrides")
    op.drop_table("cursors")
    op.drop_table("campaign_state")
    op.drop_table("campaign_runs")
    op.drop_table("banned_users")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
