"""The store's schema revisions, read from the migration files without importing Alembic.

Standard library only: a command that only needs to know whether the store is at head (the fast path
of a cached build) must not pay for SQLAlchemy or Alembic.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=(.*)$", re.MULTILINE)


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
