"""The fast path's sqlite3 recorder: the rows BuildStore writes, and only on a store at head."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from freight.builds.sqlitestore import RunRecorder
from freight.builds.store import BuildStore
from freight.config import Settings
from freight.db.revisions import sqlite_file


def test_records_what_the_build_store_reads(settings: Settings) -> None:
    store = BuildStore.open(settings)  # migrates to head
    try:
        recorder = RunRecorder.open(settings.database_url)
        assert recorder is not None
        run = {"id": "r1", "workspace": "/ws", "started_at": 1.0, "ended_at": 2.0, "status": "ok"}
        task = {"task": "a#build", "hash": "h1", "status": "cached", "duration": 0.5, "inputs": {"files": {}}}
        recorder.record_run({**run, "commit": None, "summary": {"id": "r1"}}, [task], now=3.0)
        recorder.close()
        found = store.run("r1")
        assert found is not None and found["summary"] == {"id": "r1"} and found["trigger"] == "cli"
        last = store.last_task("/ws", "a#build")
        assert last is not None and last["hash"] == "h1" and last["inputs"] == {"files": {}}
    finally:
        store.close()


def test_leaves_other_stores_to_the_full_path(tmp_path: Path) -> None:
    assert sqlite_file("postgresql://x/y") is None
    assert sqlite_file("sqlite:///x.db?timeout=1") is None
    assert RunRecorder.open(f"sqlite:///{tmp_path / 'absent.db'}") is None
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        conn.execute("INSERT INTO alembic_version VALUES ('0001')")
    assert RunRecorder.open(f"sqlite:///{old}") is None
