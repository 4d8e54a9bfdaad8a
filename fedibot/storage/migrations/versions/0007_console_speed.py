"""console speed: covering indexes for the overview's 24-hour counts and charts

Revision ID: 0007
Revises: 0006

Both are partial on `finished_at IS NOT NULL` like `ix_jobs_finished`, and hold every column
their query reads (`state` too: SQLite 3.40 does not count a partial index's own WHERE
terms as covered), so SQLite answers from the index alone instead of fetching ~3,000 rows
from the jobs table (benchmarks/console_bench.py, 100,000 jobs).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_INDEXES = (
    # finished jobs per state in the last 24 hours (the overview's counts)
    ("ix_console_finished_state", ["finished_at", "state"], "finished_at IS NOT NULL"),
    # done jobs in the last 24 hours: images per hour, time to reply per hour
    (
        "ix_console_done_charts",
        ["finished_at", "kind", "created_at", "n", "state"],
        "finished_at IS NOT NULL AND state = 'done'",
    ),
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
