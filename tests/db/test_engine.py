"""SQLite transaction modes: reads never take the write lock; writes take it up front."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, insert, select

from freight.db.engine import SQLITE_BUSY_TIMEOUT, open_engine, store_problem
from freight.db.schema import queues
from freight.jobs.scheduler import LEASE_TTL


def engine_at(tmp_path: Path) -> Engine:
    return open_engine(f"sqlite:///{tmp_path / 'store.db'}")


def queue_row(name: str) -> dict[str, object]:
    return {"name": name, "priority": 0, "weight": 1.0, "paused": False, "created_at": 0.0}


def test_a_read_does_not_wait_for_a_writer_nor_a_writer_for_a_read(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    with engine.begin() as writer:
        writer.execute(insert(queues).values(**queue_row("a")))
        # the write lock is held: before, this read began IMMEDIATE and failed "database is locked"
        with engine.connect() as reader:
            assert reader.execute(select(queues.c.name)).all() == []  # the last committed state
    with engine.connect() as reader:
        assert [r.name for r in reader.execute(select(queues.c.name))] == ["a"]
        with engine.begin() as writer:  # a read transaction open meanwhile does not block it
            writer.execute(insert(queues).values(**queue_row("b")))
    assert store_problem(engine) is None


def test_a_store_locked_past_the_busy_timeout_is_reported_until_a_write_commits(tmp_path: Path) -> None:
    import pytest
    from sqlalchemy.exc import OperationalError

    engine = engine_at(tmp_path)
    other = open_engine(f"sqlite:///{tmp_path / 'store.db'}")  # another process, stuck mid-write
    with other.begin() as stuck:
        stuck.execute(insert(queues).values(**queue_row("x")))
        with pytest.raises(OperationalError, match="locked"), engine.begin() as conn:
            conn.execute(insert(queues).values(**queue_row("y")))
        assert "locked" in (store_problem(engine) or "")
    with engine.begin() as conn:
        conn.execute(insert(queues).values(**queue_row("y")))
    assert store_problem(engine) is None


def test_the_busy_timeout_leaves_the_lease_time_to_renew() -> None:
    assert SQLITE_BUSY_TIMEOUT <= LEASE_TTL / 3
