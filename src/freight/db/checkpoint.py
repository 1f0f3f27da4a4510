"""WAL checkpoints off the commit path, for a long-running server on SQLite.

By default the connection whose commit takes the WAL past 1,000 pages copies the WAL into the
database there and then, fsync included (synchronous=NORMAL syncs at checkpoints). Under a stream of
submits that is one commit in every hundred or so paying tens of milliseconds: the p99 of the API.
`WalCheckpointer` turns automatic checkpoints off for this process's connections and checkpoints from
a thread of its own instead. PASSIVE checkpoints take no write lock, so commits go on meanwhile.
Other processes on the store (the CLI) keep SQLite's automatic checkpoints.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("freight.store")

#: seconds between checkpoints; the WAL holds at most about this long's worth of commits
INTERVAL = 1.0


def _no_autocheckpoint(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")


class WalCheckpointer:
    def __init__(self, engine: Engine, *, interval: float = INTERVAL) -> None:
        self.engine = engine
        self.interval = interval
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def applies(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def start(self) -> None:
        if not self.applies or self._thread is not None:
            return
        if not event.contains(self.engine, "connect", _no_autocheckpoint):
            event.listen(self.engine, "connect", _no_autocheckpoint)
        # connections opened before now still checkpoint by themselves: open new ones
        self.engine.dispose(close=False)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="freight-wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop checkpointing here; this process's connections checkpoint by themselves again."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=10)
        self._thread = None
        if event.contains(self.engine, "connect", _no_autocheckpoint):
            event.remove(self.engine, "connect", _no_autocheckpoint)
        self.engine.dispose(close=False)
        self.checkpoint()  # leave a short WAL behind

    def checkpoint(self) -> None:
        """One PASSIVE checkpoint: copies what no reader still needs, waits for no one."""
        try:
            raw = self.engine.raw_connection()
            try:  # outside any transaction (a checkpoint cannot run inside one)
                raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # type: ignore[union-attr]
            finally:
                raw.close()
            self.checkpoints += 1
        except (SQLAlchemyError, sqlite3.Error) as exc:  # a busy or failing store: the next round tries again
            log.debug("WAL checkpoint skipped: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):
                self.checkpoint()
