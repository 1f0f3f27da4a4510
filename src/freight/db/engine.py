"""Open the store: an Engine for the configured URL, migrated to the latest schema."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from freight.db.revisions import MIGRATIONS as _MIGRATIONS
from freight.db.revisions import SQLITE_BUSY_TIMEOUT as SQLITE_BUSY_TIMEOUT
from freight.db.revisions import head_revisions as head_revisions
from freight.errors import UserError

_migrate_lock = threading.Lock()


class _SqliteConnection(Connection):
    """Tells the "begin" listener how a transaction began: `engine.begin()` / `conn.begin()` ask for
    one to write in; a transaction that begins by itself on the first statement of an
    `engine.connect()` block is a read (freight writes only in begin() blocks)."""

    reading = False

    def _autobegin(self) -> None:
        self.reading = True
        try:
            super()._autobegin()
        finally:
            self.reading = False


def _sqlite_begin(conn: Connection) -> None:
    # Writes take the write lock up front (BEGIN IMMEDIATE), so two writers queue on the busy
    # timeout instead of one failing when it upgrades a read lock. Reads begin DEFERRED: in WAL mode
    # they never wait for a writer, nor a writer for them. A connection that writes without begin()
    # (Alembic's) says so with the execution option `writes=True`.
    reading = isinstance(conn, _SqliteConnection) and conn.reading
    if reading and not conn.get_execution_options().get("writes"):
        conn.exec_driver_sql("BEGIN DEFERRED")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


#: seconds an HTTP client is told to wait (Retry-After) when the store is busy or unreachable
STORE_RETRY_AFTER = 5
#: what SQLite says when the write lock was not had within the busy timeout
_LOCKED = ("database is locked", "database is busy")


#: engine -> when a write last found the store locked past its busy timeout (cleared by a commit)
_locked_at: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()


def _note_error(engine: Engine, context: ExceptionContext) -> None:
    text = str(context.original_exception).lower()
    if any(word in text for word in _LOCKED):
        _locked_at.setdefault(engine, time.monotonic())


def store_problem(engine: Engine) -> str | None:
    """Why the store cannot serve now (None: it can): a write found it locked past the busy timeout
    and none has committed since, or it cannot be read at all."""
    if engine in _locked_at:
        return f"locked: a write waited more than {SQLITE_BUSY_TIMEOUT:g}s for another writer"
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except DBAPIError as exc:
        return f"cannot be read ({str(exc.orig).strip() or type(exc.orig).__name__})"
    return None


def make_engine(url: str) -> Engine:
    """An Engine with the settings freight relies on. SQLite: WAL, a busy timeout, NORMAL sync,
    reads that never take the write lock."""
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1].split("?", 1)[0]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            connect_args: dict[str, Any] = {"check_same_thread": False}
            if "timeout=" not in url:  # `sqlite:///x.db?timeout=1` sets a shorter wait for the lock
                connect_args["timeout"] = SQLITE_BUSY_TIMEOUT
            engine = create_engine(url, connect_args=connect_args)
            engine._connection_cls = _SqliteConnection
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
            event.listen(engine, "handle_error", lambda ctx: _note_error(engine, ctx))
            event.listen(engine, "commit", lambda _conn: _locked_at.pop(engine, None))
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


def _at_head(engine: Engine) -> bool:
    """Whether the store already has every migration (the common case: one cheap read)."""
    heads = head_revisions()
    if heads is None:
        return False
    try:
        with engine.connect() as conn:
            found = {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
    except DBAPIError:  # no table yet (a new store), or no server: Alembic says which
        return False
    return found == heads


#: the PostgreSQL advisory-lock key servers migrate under (any constant both sides agree on: "freight1")
MIGRATE_LOCK_KEY = 0x66726569676874_31


def migrate(engine: Engine) -> bool:
    """Bring the schema to the latest Alembic revision (idempotent; safe to call on every start);
    True when this call ran Alembic. A store already there costs one read: Alembic is imported only
    when there is work to do. On PostgreSQL, servers that start together migrate once: each takes a
    session advisory lock around Alembic and looks again once it has it (the first did the work)."""
    if _at_head(engine):
        return False
    with _migrate_lock, _store_migrate_lock(engine):
        if _at_head(engine):  # another server migrated while this one waited for the lock
            return False
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.attributes["engine"] = engine
        command.upgrade(cfg, "head")
        return True


@contextlib.contextmanager
def _store_migrate_lock(engine: Engine) -> Iterator[None]:
    """PostgreSQL: hold the migration advisory lock on a connection of its own (a session lock, so
    Alembic's own transactions are free to commit); it goes with the connection should this process
    die. Other stores: nothing (SQLite's writers already queue on the write lock)."""
    try:
        if engine.dialect.name != "postgresql":
            yield
            return
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATE_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATE_LOCK_KEY})
                conn.commit()
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
        word in text for word in (*_LOCKED, "connection", "could not connect")
    )
