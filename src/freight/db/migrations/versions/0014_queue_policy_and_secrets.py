"""queue policy (allow_root, allow_inherit_env, maxima and defaults) and named secrets

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("allow_root", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(
            sa.Column("allow_inherit_env", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("max_cpus", sa.Float(), nullable=True))
        batch.add_column(sa.Column("max_memory", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("default_cpus", sa.Float(), nullable=True))
        batch.add_column(sa.Column("default_memory", sa.BigInteger(), nullable=True))
    op.create_table(
        "secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("secrets")
    with op.batch_alter_table("queues") as batch:
        for column in ("default_memory", "default_cpus", "max_memory", "max_cpus"):
            batch.drop_column(column)
        batch.drop_column("allow_inherit_env")
        batch.drop_column("allow_root")
