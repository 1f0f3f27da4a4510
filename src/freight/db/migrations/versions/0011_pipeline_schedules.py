"""pipeline schedules: runs own a data interval; registered schedules

pipeline_runs gains interval_start/interval_end (the run's data interval), trigger (manual, schedule,
backfill) and notified (the notifications sent); pipeline_schedules holds what `freight pipeline
schedule FILE` registered for the server to run.

Revision ID: 0011
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("interval_start", sa.Float(), nullable=True))
        batch.add_column(sa.Column("interval_end", sa.Float(), nullable=True))
        batch.add_column(sa.Column("trigger", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("notified", sa.String(length=100), nullable=True))
    op.create_index("ix_pipeline_runs_interval", "pipeline_runs", ["pipeline", "interval_start"])
    op.create_table(
        "pipeline_schedules",
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("spec_path", sa.Text(), nullable=True),
        sa.Column("base_dir", sa.Text(), nullable=False),
        sa.Column("config_path", sa.Text(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("pipeline"),
    )


def downgrade() -> None:
    op.drop_table("pipeline_schedules")
    op.drop_index("ix_pipeline_runs_interval", table_name="pipeline_runs")
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.drop_column("notified")
        batch.drop_column("trigger")
        batch.drop_column("interval_end")
        batch.drop_column("interval_start")
