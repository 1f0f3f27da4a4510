"""build_releases.image: the OCI image an app ships beside its static release

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("build_releases") as batch:
        batch.add_column(sa.Column("image", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("build_releases") as batch:
        batch.drop_column("image")
