"""Record a build run in an SQLite store with the standard library (no SQLAlchemy, no Alembic).

The fast path of a cached build (`builds.fastpath`) records its run here: the same two tables, the
same columns and values as `BuildStore.record_run`, written in one `BEGIN IMMEDIATE` transaction (as
every SQLite writer of freight takes the write lock). It is used only when the store is a local SQLite
file already at the migrations' head; anything else (PostgreSQL, a new or older store) is left to the
full path, which migrates.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from freight.db.revisions import SQLITE_BUSY_TIMEOUT, at_head, sqlite_file


class RunRecorder:
    """An open SQLite store at head, ready to record build runs."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @classmethod
    def open(cls, database_url: str) -> RunRecorder | None:
        """None when the store is not a local SQLite file at the migrations' head."""
        path = sqlite_file(database_url)
        if path is None or not path.is_file():
            return None
        try:
            conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None)
        except sqlite3.Error:
            return None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            current = at_head(conn)
        except sqlite3.Error:
            current = False
        if not current:
            conn.close()
            return None
        return cls(conn)

    def close(self) -> None:
        self.conn.close()

    def record_run(
        self, run: dict[str, Any], tasks: Iterable[dict[str, Any]], now: float | None = None
    ) -> None:
        """As `BuildStore.record_run`: the run's row and one row per task, in one transaction."""
        created = time.time() if now is None else now
        rows = [
            (
                run["id"],
                run["workspace"],
                t["task"],
                t["hash"],
                t["status"],
                t.get("duration"),
                json.dumps(t["inputs"], sort_keys=True),
                created,
            )
            for t in tasks
        ]
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute(
                'INSERT INTO build_runs (id, workspace, started_at, ended_at, status, trigger, "commit", '
                "summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run["id"],
                    run["workspace"],
                    run["started_at"],
                    run.get("ended_at"),
                    run["status"],
                    run.get("trigger", "cli"),
                    run.get("commit"),
                    json.dumps(run["summary"], sort_keys=True),
                ),
            )
            if rows:
                self.conn.executemany(
                    "INSERT INTO build_task_runs (run_id, workspace, task, hash, status, duration, inputs, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
