"""posting budgets: spent and reserved slots, effective limits

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 12:00:00

The lead chains `down_revision` to the head of the merged branches.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_slots",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("spent", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("budget_slots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_budget_slots_account_kind_at", ["account", "kind", "at"], unique=False
        )
        batch_op.create_index("ix_budget_slots_job", ["job_id"], unique=False)

    op.create_table(
        "budget_state",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("limit", sa.Integer(), nullable=False),
        sa.Column("per_seconds", sa.Float(), nullable=False),
        sa.Column("server_remaining", sa.Integer(), nullable=True),
        sa.Column("server_reset_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("account", "kind"),
    )


def downgrade() -> None:
    op.drop_table("budget_state")
    with op.batch_alter_table("budget_slots", schema=None) as batch_op:
        batch_op.drop_index("ix_budget_slots_job")
        batch_op.drop_index("ix_budget_slots_account_kind_at")
    op.drop_table("budget_slots")
