"""The store's schema revisions, read from the migration files without importing Alembic, and
SQLite's busy timeout.

Standard library only: a command that only needs to know whether the store is at head (the fast path
of a cached build, the quick `jobs ls` of jobs/listing.py) must not pay for SQLAlchemy or Alembic.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=(.*)$", re.MULTILINE)

#: How long a SQLite writer waits for the write lock before "database is locked". At most a third of
#: the scheduler lease's TTL (jobs.scheduler.LEASE_TTL): a scheduler whose commit waited this long
#: still renews its lease in time. A store locked for longer is unavailable (the API answers 503).
SQLITE_BUSY_TIMEOUT = 5.0


@functools.cache
def head_revisions() -> frozenset[str] | None:
    """The revisions no migration builds on, read from the files' `revision =` and `down_revision =`
    lines (what Alembic would find, without importing it: ~150 ms of every command); None when a file
    does not say them plainly, and Alembic must be asked."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text()
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None or down is None:
            return None
        revisions.add(revision.group(1))
        downs.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return frozenset(revisions - downs) or None


def sqlite_file(database_url: str) -> Path | None:
    """The file of a plain `sqlite:///PATH` store URL; None for any other store (another database,
    URL options, an in-memory store), which only the full path through SQLAlchemy can open."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or "?" in database_url:
        return None
    path = database_url.removeprefix(prefix)
    return Path(path) if path and path != ":memory:" else None


def at_head(db: sqlite3.Connection) -> bool:
    """Whether an open SQLite store is at the migrations' head (a stdlib reader must not read a
    store whose schema it does not know); raises sqlite3.Error when the store cannot be read."""
    heads = head_revisions()
    if heads is None:
        return False
    try:
        found = {row[0] for row in db.execute("SELECT version_num FROM alembic_version")}
    except sqlite3.OperationalError:  # no such table: a store never migrated
        return False
    return found == heads
