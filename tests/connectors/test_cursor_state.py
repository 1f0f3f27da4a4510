"""Cursor values and the compare-and-set that commits them, on DuckDB and the real PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import threading
import time
from pathlib import Path

import psycopg
import pytest

from freight.connectors.cursor_state import (
    AlreadyCommitted,
    Cursor,
    advance,
    cursor_of,
    ensure_state_table,
    read_cursor,
    transaction,
)
from freight.connectors.duckdb_warehouse import DuckDBWarehouse
from freight.connectors.postgres_warehouse import PostgresWarehouse

NOW = dt.datetime(2026, 1, 2, 3, 4, 5)


def test_values_become_cursors_and_literals() -> None:
    assert cursor_of(7) == Cursor("7", "int") and Cursor("7", "int").literal() == "7"
    assert cursor_of(dt.datetime(2026, 1, 1, 0, 0, 1, 5)) == Cursor("2026-01-01 00:00:01.000005", "timestamp")
    assert cursor_of(dt.date(2026, 1, 1)) == Cursor("2026-01-01", "date")
    assert cursor_of(decimal.Decimal("1.50")) == Cursor("1.50", "decimal")
    assert cursor_of("o'k").literal() == "'o''k'"  # type: ignore[union-attr]
    assert cursor_of(None) is None


def test_the_cursor_moves_only_from_where_the_load_found_it(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(str(tmp_path / "wh.duckdb"))
    try:
        ensure_state_table(wh)
        with transaction(wh) as tx:
            advance(tx, "p.x", None, Cursor("5", "int"), run_id="r1", now=NOW)
        with pytest.raises(AlreadyCommitted), transaction(wh) as tx:
            advance(tx, "p.x", None, Cursor("6", "int"), run_id="r2", now=NOW)
        with pytest.raises(AlreadyCommitted), transaction(wh) as tx:
            advance(tx, "p.x", Cursor("4", "int"), Cursor("6", "int"), run_id="r2", now=NOW)
        with transaction(wh) as tx:
            advance(tx, "p.x", Cursor("5", "int"), Cursor("9", "int"), run_id="r3", now=NOW)
        assert read_cursor(wh, "p.x") == Cursor("9", "int")
    finally:
        wh.close()


def test_a_racing_commit_on_postgresql_waits_then_finds_the_cursor_moved(pg_url: str) -> None:
    first, second = PostgresWarehouse(pg_url), PostgresWarehouse(pg_url)
    outcome: list[str] = []
    try:
        ensure_state_table(first)
        with transaction(first) as tx:
            advance(tx, "p.x", None, Cursor("5", "int"), run_id="r0", now=NOW)
        old, new = Cursor("5", "int"), Cursor("10", "int")

        def race() -> None:
            try:
                with transaction(second) as tx:
                    advance(tx, "p.x", old, new, run_id="r2", now=NOW)
                outcome.append("committed")
            except AlreadyCommitted:
                outcome.append("already")

        with contextlib.ExitStack() as stack:
            tx = stack.enter_context(transaction(first))
            advance(tx, "p.x", old, new, run_id="r1", now=NOW)  # holds the row lock until the exit
            racer = threading.Thread(target=race)
            racer.start()
            with psycopg.connect(pg_url, autocommit=True) as watch:
                deadline = time.monotonic() + 60
                while not watch.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                ).fetchone():
                    assert time.monotonic() < deadline, "the second commit never waited on the lock"
                    time.sleep(0.01)
        racer.join()
        assert outcome == ["already"]
        assert read_cursor(first, "p.x") == new
    finally:
        first.close()
        second.close()
