"""Incremental cursors, kept in the warehouse and committed in the same transaction as the load.

An incremental extract reads rows in the half-open range (last committed cursor, new cursor]. The
load that takes those rows commits them and moves the cursor from `last` to `new` in ONE warehouse
transaction, as a compare-and-set: if the cursor is no longer `last` (a rerun of a load that already
committed, or two loads racing), the transaction rolls back and the load is reported as already done.
So a run killed anywhere — mid-extract, mid-load, after the commit but before anyone heard of it —
neither loses rows (the cursor did not move) nor repeats them (the cursor moved with the rows).

The table, `freight_cursors`, has one row per cursor: its value as text and the kind of value
(int, float, decimal, timestamp, date, string), so it can be written back as a SQL literal.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from freight.errors import TerminalError

STATE_TABLE = "freight_cursors"


@dataclass(frozen=True)
class Cursor:
    value: str
    kind: str

    def literal(self) -> str:
        """The value as a SQL literal both source dialects and both warehouses read."""
        if self.kind in ("int", "float", "decimal"):
            return self.value
        return "'" + self.value.replace("'", "''") + "'"


def cursor_of(value: Any) -> Cursor | None:
    """A cursor from a value read out of a source (a Python value from an Arrow scalar)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TerminalError("a boolean column cannot be an incremental cursor")
    if isinstance(value, int):
        return Cursor(str(value), "int")
    if isinstance(value, float):
        return Cursor(repr(value), "float")
    if isinstance(value, decimal.Decimal):
        return Cursor(str(value), "decimal")
    if isinstance(value, dt.datetime):
        return Cursor(value.isoformat(sep=" "), "timestamp")
    if isinstance(value, dt.date):
        return Cursor(value.isoformat(), "date")
    return Cursor(str(value), "string")


def initial_cursor(value: str | int | None) -> Cursor | None:
    if value is None:
        return None
    if isinstance(value, int):
        return Cursor(str(value), "int")
    return Cursor(value, "string")


class AlreadyCommitted(Exception):
    """The cursor moved since the extract read it: these rows are loaded already."""


class Tx(Protocol):
    def run(self, sql: str) -> None: ...

    def count(self, sql: str) -> int:
        """Run a DML statement and return the number of rows it touched."""
        ...

    def scalar(self, sql: str) -> Any: ...


class _PgTx:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def run(self, sql: str) -> None:
        self.conn.execute(sql.encode())

    def count(self, sql: str) -> int:
        return int(self.conn.execute(sql.encode()).rowcount)

    def scalar(self, sql: str) -> Any:
        row = self.conn.execute(sql.encode()).fetchone()
        return row[0] if row else None


class _DuckTx:
    def __init__(self, con: Any) -> None:
        self.con = con

    def run(self, sql: str) -> None:
        self.con.execute(sql)

    def count(self, sql: str) -> int:
        row = self.con.execute(sql).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def scalar(self, sql: str) -> Any:
        row = self.con.execute(sql).fetchone()
        return row[0] if row else None


@contextmanager
def transaction(warehouse: Any) -> Iterator[Tx]:
    """One transaction on a PostgreSQL or DuckDB warehouse: committed when the block ends, rolled
    back when it raises."""
    if warehouse.kind in ("postgres", "redshift"):
        with warehouse.conn.transaction():
            yield _PgTx(warehouse.conn)
        return
    if warehouse.kind == "duckdb":
        con = warehouse.con
        con.begin()
        try:
            yield _DuckTx(con)
            con.commit()
        except BaseException:
            con.rollback()
            raise
        return
    raise TerminalError(f"incremental loads do not support {warehouse.kind} warehouses yet")


def ensure_state_table(warehouse: Any) -> None:
    if warehouse.columns(STATE_TABLE) is not None:
        return
    warehouse.execute(
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (name VARCHAR PRIMARY KEY, cursor_value VARCHAR, "
        "cursor_kind VARCHAR, run_id VARCHAR, committed_at TIMESTAMP)"
    )


def read_cursor(warehouse: Any, name: str) -> Cursor | None:
    if warehouse.columns(STATE_TABLE) is None:
        return None
    rows = warehouse.query(
        f"SELECT cursor_value, cursor_kind FROM {STATE_TABLE} WHERE name = {_text(name)}"
    ).to_pylist()
    if not rows or rows[0]["cursor_value"] is None:
        return None
    return Cursor(str(rows[0]["cursor_value"]), str(rows[0]["cursor_kind"]))


def advance(tx: Tx, name: str, old: Cursor | None, new: Cursor, *, run_id: str, now: dt.datetime) -> None:
    """Move the cursor from `old` to `new` inside `tx`, or raise AlreadyCommitted if it is not at
    `old` any more (PostgreSQL's row lock makes a racing load wait here, then see the new value)."""
    stamp = f"TIMESTAMP '{now.replace(tzinfo=None).isoformat(sep=' ')}'"
    values = f"{_text(new.value)}, {_text(new.kind)}, {_text(run_id)}, {stamp}"
    if old is None:
        touched = tx.count(
            # NOT EXISTS rather than ON CONFLICT, which Redshift lacks; a racing insert on PostgreSQL
            # then fails on the key (the step fails; its retry finds the cursor moved).
            f"INSERT INTO {STATE_TABLE} (name, cursor_value, cursor_kind, run_id, committed_at) "
            f"SELECT {_text(name)}, {values} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {STATE_TABLE} WHERE name = {_text(name)})"
        )
    else:
        touched = tx.count(
            f"UPDATE {STATE_TABLE} SET cursor_value = {_text(new.value)}, cursor_kind = {_text(new.kind)}, "
            f"run_id = {_text(run_id)}, committed_at = {stamp} "
            f"WHERE name = {_text(name)} AND cursor_value = {_text(old.value)}"
        )
    if touched != 1:
        raise AlreadyCommitted(name)


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
