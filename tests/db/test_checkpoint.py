"""WalCheckpointer: this process's connections stop checkpointing by themselves while it runs (it
checkpoints instead); stopped, SQLite's automatic checkpoints come back."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, insert

from freight.db.checkpoint import WalCheckpointer
from freight.db.engine import open_engine
from freight.db.schema import queues


def autocheckpoint(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def test_checkpoints_move_from_commits_to_the_checkpointer_and_back(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'store.db'}")
    assert autocheckpoint(engine) == 1000
    checkpointer = WalCheckpointer(engine, interval=3600)  # the test checkpoints by hand
    checkpointer.start()
    try:
        assert autocheckpoint(engine) == 0
        for i in range(50):
            with engine.begin() as conn:
                conn.execute(
                    insert(queues).values(name=f"q{i}", priority=0, weight=1.0, paused=False, created_at=0.0)
                )
        checkpointer.checkpoint()
        assert checkpointer.checkpoints == 1
    finally:
        checkpointer.stop()
    assert autocheckpoint(engine) == 1000


def test_postgres_engines_are_left_alone(pg_url: str) -> None:
    engine = open_engine(pg_url)
    checkpointer = WalCheckpointer(engine)
    checkpointer.start()
    assert not checkpointer.applies and checkpointer._thread is None
    checkpointer.stop()
    engine.dispose()
