"""pipeline and build tables

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "build_apps",
        sa.Column("app", sa.String(length=100), nullable=False),
        sa.Column("hosts", sa.Text(), nullable=False),
        sa.Column("prefix", sa.String(length=200), nullable=False),
        sa.Column("spa", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("app"),
    )
    op.create_table(
        "build_current",
        sa.Column("app", sa.String(length=100), nullable=False),
        sa.Column("env", sa.String(length=64), nullable=False),
        sa.Column("release_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("app", "env"),
    )
    op.create_table(
        "build_deployments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app", sa.String(length=100), nullable=False),
        sa.Column("env", sa.String(length=64), nullable=False),
        sa.Column("release_id", sa.String(length=40), nullable=False),
        sa.Column("previous_release_id", sa.String(length=40), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("build_deployments", schema=None) as batch_op:
        batch_op.create_index("ix_build_deployments_app_env", ["app", "env", "id"], unique=False)

    op.create_table(
        "build_releases",
        sa.Column("app", sa.String(length=100), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("manifest_key", sa.String(length=500), nullable=False),
        sa.Column("task_hash", sa.String(length=64), nullable=True),
        sa.Column("commit", sa.String(length=64), nullable=True),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("app", "id"),
    )
    with op.batch_alter_table("build_releases", schema=None) as batch_op:
        batch_op.create_index("ix_build_releases_app_created", ["app", "created_at"], unique=False)

    op.create_table(
        "build_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace", sa.String(length=500), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("commit", sa.String(length=64), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "build_task_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("workspace", sa.String(length=500), nullable=False),
        sa.Column("task", sa.String(length=300), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("build_task_runs", schema=None) as batch_op:
        batch_op.create_index("ix_build_task_runs_lookup", ["workspace", "task", "id"], unique=False)

    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("spec_path", sa.Text(), nullable=True),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("rerun_of", sa.String(length=40), nullable=True),
        sa.Column("run_url", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        batch_op.create_index("ix_pipeline_runs_pipeline", ["pipeline", "created_at"], unique=False)

    op.create_table(
        "pipeline_checks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("step", sa.String(length=100), nullable=False),
        sa.Column("check_type", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("on_fail", sa.String(length=10), nullable=False),
        sa.Column("observed", sa.Text(), nullable=True),
        sa.Column("expected", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pipeline_checks", schema=None) as batch_op:
        batch_op.create_index("ix_pipeline_checks_run", ["run_id", "step"], unique=False)

    op.create_table(
        "pipeline_step_runs",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("step", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("output_url", sa.Text(), nullable=True),
        sa.Column("reused_from", sa.String(length=40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_runs.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "step"),
    )


def downgrade() -> None:
    op.drop_table("pipeline_step_runs")
    with op.batch_alter_table("pipeline_checks", schema=None) as batch_op:
        batch_op.drop_index("ix_pipeline_checks_run")

    op.drop_table("pipeline_checks")
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_pipeline_runs_pipeline")

    op.drop_table("pipeline_runs")
    with op.batch_alter_table("build_task_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_build_task_runs_lookup")

    op.drop_table("build_task_runs")
    op.drop_table("build_runs")
    with op.batch_alter_table("build_releases", schema=None) as batch_op:
        batch_op.drop_index("ix_build_releases_app_created")

    op.drop_table("build_releases")
    with op.batch_alter_table("build_deployments", schema=None) as batch_op:
        batch_op.drop_index("ix_build_deployments_app_env")

    op.drop_table("build_deployments")
    op.drop_table("build_current")
    op.drop_table("build_apps")
