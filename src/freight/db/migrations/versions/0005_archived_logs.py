"""attempts.log_archived_at: when the attempt's log was copied to the object store

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("attempts", sa.Column("log_archived_at", sa.Float(), nullable=True))


def downgrade() -> None:
    # batch mode: SQLite rebuilds the table, PostgreSQL drops the column in place
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("log_archived_at")
