"""`freight jobs ls` on the embedded SQLite store without SQLAlchemy or pydantic (~250 ms of imports):
the same rows JobService.list_jobs reads, through the standard library's sqlite3, with the same
reasons for queued jobs (jobs/waiting.py, the rule both use; the lease judged by jobs/liveness.py).

Only a store that is already migrated (else the service migrates it) and no label filter (matched
over JSON by the service); anything else answers None and the caller asks the service. The table
and columns are db/schema.py's (tests/jobs/test_listing.py checks them, and that both paths print
the same)."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass, replace

from freight.db.revisions import SQLITE_BUSY_TIMEOUT, at_head, sqlite_file
from freight.jobs.liveness import SCHEDULER_LEASE, SQLITE_NOW, holder_alive
from freight.jobs.states import JobState
from freight.jobs.waiting import waiting_reasons

#: db/schema.py's `jobs` columns a listing shows
COLUMNS = ("id", "name", "queue", "state", "attempts", "submitted_at", "started_at", "ended_at", "reason")


@dataclass(frozen=True)
class ListedJob:
    """The fields of a JobView that a listing shows."""

    id: str
    name: str | None
    queue: str
    state: JobState
    attempts: int
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    reason: str | None


def quick_list(
    database_url: str,
    *,
    state: str | None = None,
    queue: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> list[ListedJob] | None:
    """Newest first, as JobService.list_jobs; None when the service must answer (see above)."""
    path = sqlite_file(database_url)
    if path is None or not path.is_file() or limit < 1:
        return None
    if state is not None and state not in {s.value for s in JobState}:
        return None  # the service says what the states are
    where, params = _filters(state, queue, cursor)
    query = f"SELECT {', '.join(COLUMNS)} FROM jobs{where} ORDER BY id DESC LIMIT ?"
    try:
        # read-only: a read never takes SQLite's write lock
        uri = f"{path.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT)) as db:
            if not at_head(db):
                return None
            rows = db.execute(query, (*params, limit)).fetchall()
            listed = [
                ListedJob(**dict(zip(COLUMNS, row, strict=True)) | {"state": JobState(row[3])})
                for row in rows
            ]
            reasons = _waiting(db, listed)
    except sqlite3.Error:  # locked past the timeout, not a store: the service says so plainly
        return None
    return [replace(job, reason=reasons[job.id]) if job.id in reasons else job for job in listed]


def _waiting(db: sqlite3.Connection, listed: list[ListedJob]) -> dict[str, str]:
    """Why the queued jobs wait, as the service says it (jobs/waiting.py), from the same rows."""
    if not any(job.state is JobState.QUEUED for job in listed):
        return {}
    paused = {name for (name,) in db.execute("SELECT name FROM queues WHERE paused")}
    lease = db.execute(
        f"SELECT holder, expires_at, {SQLITE_NOW} FROM leases WHERE name = ?", (SCHEDULER_LEASE,)
    ).fetchone()
    scheduled = lease is not None and holder_alive(*lease)
    return waiting_reasons(listed, paused=paused, scheduled=scheduled)


def _filters(state: str | None, queue: str | None, cursor: str | None) -> tuple[str, list[str]]:
    clauses, params = [], []
    for column, value, op in (("state", state, "="), ("queue", queue, "="), ("id", cursor, "<")):
        if value:
            clauses.append(f"{column} {op} ?")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
