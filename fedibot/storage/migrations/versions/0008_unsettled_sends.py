"""unsettled sends: the request token and start time of a post call without an answer

Revision ID: 0008
Revises: 0007

`outbound_posts.send_token` / `send_started_at` are written right before the post call and
cleared when the server answers. Left set (a crash, a timeout, a proxy's 502/504), they let
the next attempt repeat the call with the same `Idempotency-Key` while the server remembers
it (Lemmy 1.0: two minutes), and tell it how long ago the unanswered call was made.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_posts") as batch:
        batch.add_column(sa.Column("send_token", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("send_started_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound_posts") as batch:
        batch.drop_column("send_started_at")
        batch.drop_column("send_token")
