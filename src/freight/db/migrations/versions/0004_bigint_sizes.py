"""64-bit sizes: attempt memory and peak memory, release bytes, event ids

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = [
    ("attempts", "memory", False),
    ("attempts", "peak_memory", True),
    ("build_releases", "bytes", False),
]


def upgrade() -> None:
    # SQLite stores every INTEGER as up to 64 bits already; only PostgreSQL's int4 columns need widening.
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, nullable in _COLUMNS:
        op.alter_column(
            table, column, type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=nullable
        )
    op.alter_column(
        "events", "id", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False
    )
    op.execute("ALTER SEQUENCE IF EXISTS events_id_seq AS bigint")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER SEQUENCE IF EXISTS events_id_seq AS integer")
    op.alter_column(
        "events", "id", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False
    )
    for table, column, nullable in _COLUMNS:
        op.alter_column(
            table, column, type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=nullable
        )
