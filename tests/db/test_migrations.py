"""Migrations 0005 (attempts.log_archived_at) and 0011 (pipeline schedules) go down and up again on
SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, Float, inspect

from freight.config import Settings
from freight.db import engine as db_engine
from freight.db.engine import open_engine


def archived_column(engine: Engine) -> dict[str, Any] | None:
    found = [c for c in inspect(engine).get_columns("attempts") if c["name"] == "log_archived_at"]
    return dict(found[0]) if found else None


def test_log_archived_at_migrates_down_and_up(store_settings: Settings) -> None:
    engine = open_engine(store_settings.database_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(db_engine.__file__).parent / "migrations"))
        cfg.attributes["engine"] = engine
        command.downgrade(cfg, "0004")
        assert archived_column(engine) is None
        command.upgrade(cfg, "head")
        column = archived_column(engine)
        assert column is not None and column["nullable"] and isinstance(column["type"], Float)
    finally:
        engine.dispose()


def test_pipeline_schedules_migrate_down_and_up(store_settings: Settings) -> None:
    """0011: pipeline_runs' interval columns and pipeline_schedules come and go with the revision."""
    engine = open_engine(store_settings.database_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(db_engine.__file__).parent / "migrations"))
        cfg.attributes["engine"] = engine
        command.downgrade(cfg, "0005")
        run_columns = {c["name"] for c in inspect(engine).get_columns("pipeline_runs")}
        assert "interval_start" not in run_columns
        assert "pipeline_schedules" not in inspect(engine).get_table_names()
        command.upgrade(cfg, "head")
        run_columns = {c["name"] for c in inspect(engine).get_columns("pipeline_runs")}
        assert {"interval_start", "interval_end", "trigger", "notified"} <= run_columns
        assert "pipeline_schedules" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_a_store_at_head_opens_without_alembic_and_one_behind_is_migrated(settings: Settings) -> None:
    heads = db_engine.head_revisions()
    assert heads is not None and len(heads) == 1  # read from the files: what Alembic calls head
    engine = open_engine(settings.database_url)
    try:
        assert db_engine._at_head(engine)
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(db_engine.__file__).parent / "migrations"))
        cfg.attributes["engine"] = engine
        command.downgrade(cfg, "-1")
        assert not db_engine._at_head(engine)
        db_engine.migrate(engine)  # behind: Alembic runs
        assert db_engine._at_head(engine)
    finally:
        engine.dispose()


def _migrate_in_a_process(url: str, barrier: Any, results: Any) -> None:
    engine = db_engine.make_engine(url)
    try:
        barrier.wait()  # every process reaches migrate() together, as servers started together do
        results.put(("ran" if db_engine.migrate(engine) else "skipped", None))
    except Exception as exc:  # reported to the test, not lost in a child's stderr
        results.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        engine.dispose()


def test_four_servers_starting_together_migrate_a_postgresql_store_once(pg_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_migrate_in_a_process, args=(pg_url, barrier, results)) for _ in range(4)]
    for proc in procs:
        proc.start()
    found = sorted(results.get(timeout=300) for _ in procs)
    for proc in procs:
        proc.join()
    assert found == [("ran", None), ("skipped", None), ("skipped", None), ("skipped", None)], found
    engine = open_engine(pg_url)
    try:
        assert db_engine._at_head(engine)
    finally:
        engine.dispose()


def _events_sql(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'events'").scalar())


def test_events_ids_are_never_reused_on_sqlite_after_0018(settings: Settings) -> None:
    """0018 rebuilds events with AUTOINCREMENT keeping its rows, and the ids go on past the largest
    one even once every event is deleted (a purge); down again, the plain table comes back."""
    engine = open_engine(settings.database_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(db_engine.__file__).parent / "migrations"))
        cfg.attributes["engine"] = engine
        command.downgrade(cfg, "-1")
        assert "AUTOINCREMENT" not in _events_sql(engine)
        with engine.begin() as conn:
            for n in range(1, 11):
                conn.exec_driver_sql(
                    "INSERT INTO events (id, job_id, to_state, at) VALUES (?, 'j', 'queued', 0)", (n,)
                )
        command.upgrade(cfg, "head")
        assert "AUTOINCREMENT" in _events_sql(engine)
        assert "ix_events_job" in {i["name"] for i in inspect(engine).get_indexes("events")}
        with engine.begin() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM events").scalar() == 10
            conn.exec_driver_sql("DELETE FROM events")
            conn.exec_driver_sql("INSERT INTO events (job_id, to_state, at) VALUES ('k', 'queued', 0)")
            assert conn.exec_driver_sql("SELECT id FROM events").scalar() == 11
        command.downgrade(cfg, "-1")
        assert "AUTOINCREMENT" not in _events_sql(engine)
        command.upgrade(cfg, "head")
    finally:
        engine.dispose()
