"""keyset listing: (state, id), (queue, state, id) and (queue, id) on jobs; job_labels for label filters

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

#: rows read per round when copying labels out of jobs.labels
_CHUNK = 5000


def upgrade() -> None:
    op.create_index("ix_jobs_state_id", "jobs", ["state", "id"])
    op.create_index("ix_jobs_queue_state_id", "jobs", ["queue", "state", "id"])
    op.create_index("ix_jobs_queue_id", "jobs", ["queue", "id"])
    # (state, id) and (queue, state, id) lead with what the old ones held: they serve those lookups
    op.drop_index("ix_jobs_state", table_name="jobs")
    op.drop_index("ix_jobs_queue_state", table_name="jobs")
    labels = op.create_table(
        "job_labels",
        sa.Column("job_id", sa.String(length=32), sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "key"),
    )
    op.create_index("ix_job_labels_key_value_job", "job_labels", ["key", "value", "job_id"])
    _copy_labels(labels)


def _copy_labels(labels: sa.Table) -> None:
    """One row per label of every job there is. A label longer than the index takes (only possible
    before labels were size-checked) stays in jobs.labels, shown but not filterable."""
    conn = op.get_bind()
    jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("labels", sa.Text))
    last = ""
    while True:
        rows = conn.execute(
            sa.select(jobs.c.id, jobs.c.labels)
            .where(jobs.c.id > last, jobs.c.labels != "{}")
            .order_by(jobs.c.id)
            .limit(_CHUNK)
        ).all()
        if not rows:
            return
        out = [
            {"job_id": row.id, "key": key, "value": value}
            for row in rows
            for key, value in json.loads(row.labels or "{}").items()
            if isinstance(value, str) and len(key) <= 128 and len(value) <= 500
        ]
        if out:
            conn.execute(sa.insert(labels), out)
        last = rows[-1].id


def downgrade() -> None:
    op.drop_index("ix_job_labels_key_value_job", table_name="job_labels")
    op.drop_table("job_labels")
    op.create_index("ix_jobs_queue_state", "jobs", ["queue", "state"])
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.drop_index("ix_jobs_queue_id", table_name="jobs")
    op.drop_index("ix_jobs_queue_state_id", table_name="jobs")
    op.drop_index("ix_jobs_state_id", table_name="jobs")
