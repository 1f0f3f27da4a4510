"""Open the store: an Engine for the configured URL, migrated to the latest schema."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import ArgumentError, OperationalError

from freight.errors import UserError

_MIGRATIONS = Path(__file__).parent / "migrations"
_migrate_lock = threading.Lock()


def make_engine(url: str) -> Engine:
    """An Engine with the settings freight relies on. SQLite: WAL, a busy timeout, NORMAL sync."""
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1].split("?", 1)[0]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            connect_args: dict[str, Any] = {"check_same_thread": False}
            if "timeout=" not in url:  # `sqlite:///x.db?timeout=1` sets a shorter wait for the lock
                connect_args["timeout"] = 30
            engine = create_engine(url, connect_args=connect_args)
            event.listen(engine, "connect", _sqlite_pragmas)
            # SQLite's own transaction handling defers BEGIN; take the write lock up front instead so
            # two writers queue on busy_timeout rather than failing with "database is locked".
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
            return engine
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except ArgumentError as exc:
        raise UserError(f"cannot use database URL: {exc}", where="FREIGHT_DATABASE_URL") from None


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let the "begin" listener issue BEGIN IMMEDIATE
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision (idempotent; safe to call on every start)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["engine"] = engine
    with _migrate_lock:
        try:
            command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise UserError(
                f"cannot reach the store: {exc.orig}", where="FREIGHT_DATABASE_URL", hint="is the server up?"
            ) from None


def open_engine(url: str) -> Engine:
    engine = make_engine(url)
    migrate(engine)
    return engine


def table_names(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())


def store_unavailable(exc: OperationalError) -> bool:
    """Whether a database error means the store is busy (SQLite locked past its busy timeout) or
    unreachable (a lost or refused connection), rather than a bug: nothing committed, a retry may do."""
    text = str(exc.orig).lower()
    return exc.connection_invalidated or any(
        word in text for word in ("database is locked", "database is busy", "connection", "could not connect")
    )
