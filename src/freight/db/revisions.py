"""The store's schema revisions, read from the migration files without importing Alembic, and
SQLite's busy timeout.

Standard library only: a command that only needs to know whether the store is at head (the fast path
of a cached build, the quick `jobs ls` of jobs/listing.py) must not pay for SQLAlchemy or Alembic.
"""

from __future__ import annotations

import functools
import re
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
