"""events.id never reused on SQLite: AUTOINCREMENT

Without it SQLite hands out max(id) + 1, so after a purge deleted the newest events a new event took
an id a follower (the scheduler's change feed, wait(), the SSE feed) had already read past, and it
went unseen until the next full rescan. PostgreSQL's sequence never goes back: nothing to do there.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # the copy (INSERT ... SELECT) carries the ids, and sqlite_sequence starts from their largest
    with op.batch_alter_table(
        "events", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
