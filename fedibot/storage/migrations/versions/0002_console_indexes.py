"""console indexes: withheld and failed jobs (review queue), opted-out requesters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_jobs_console_withheld", ["id"], "state = 'withheld'"),
    ("ix_jobs_console_failed", ["id"], "state = 'failed'"),
    ("ix_jobs_console_opted_out", ["requester"], "error_code = 'opted_out'"),
)


def upgrade() -> None:
    for name, columns, where in _INDEXES:
        op.create_index(
            name,
            "jobs",
            columns,
            unique=False,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    for name, _columns, _where in reversed(_INDEXES):
        op.drop_index(name, table_name="jobs")
