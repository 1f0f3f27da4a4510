"""The log archive: finished attempts' logs in the object store, and the worker that puts them there.

A running attempt's shim writes its output to a file on the node that runs it (`Settings.log_path`).
When the attempt ends, the scheduler hands it to a LogArchiver, which copies the file to the object
store under the same relative key, `logs/<id[:8]>/<id>.<n>.log`, on a thread of its own (so no tick
waits on I/O) and then records `attempts.log_archived_at`. Readers take the local file when this node
has it, else the archived copy: the same bytes either way, from any server on the store.

The record is written after the upload and the local file is removed (FREIGHT_LOG_KEEP_LOCAL=false)
only after the record: a crash at any point leaves the log in one of the two places, and recovery
(`catch_up`) archives whatever ended on this node and is not recorded yet.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select, update

from freight.config import Settings, log_key
from freight.db.schema import attempts
from freight.errors import FreightError, NotFoundError, disk_full

if TYPE_CHECKING:  # fsspec loads when a log is archived or read from the store, not on every open
    from freight.storage.objectstore import ObjectStore

log = logging.getLogger("freight.logarchive")

#: rows per IN (...) list
_CHUNK = 500


def split_attempt_id(attempt_id: str) -> tuple[str, int]:
    job_id, _, number = attempt_id.rpartition("-")
    return job_id, int(number)


class LogArchive:
    """Where an attempt's log is: the local file first, then the object store."""

    def __init__(self, settings: Settings, store: ObjectStore | None = None) -> None:
        self.settings = settings
        self._store = store

    @property
    def store(self) -> ObjectStore:
        # opened on first use: most processes read local logs only and never need it
        if self._store is None:
            from freight.storage.objectstore import ObjectStore

            self._store = ObjectStore(self.settings.object_store_url)
        return self._store

    def archive(self, job_id: str, number: int) -> bool:
        """Copy the attempt's local log to the store (atomically); False if this node has none.
        A local store on the same filesystem hard-links it: the attempt ended, nobody writes to it."""
        try:
            self.store.put_file(log_key(job_id, number), self.settings.log_path(job_id, number), link=True)
        except FileNotFoundError:
            return False
        return True

    def read(
        self, job_id: str, number: int, offset: int = 0, size: int | None = None, *, archived: bool = True
    ) -> bytes:
        """Up to `size` bytes of the log from `offset` (all when None): from the local file when this
        node has it, else (with `archived`) from the archived copy; b"" when neither has them."""
        try:
            with self.settings.log_path(job_id, number).open("rb") as handle:
                handle.seek(offset)
                return handle.read(-1 if size is None else size)
        except FileNotFoundError:
            pass
        if not archived:
            return b""
        try:
            end = None if size is None else offset + size
            return self.store.get_range(log_key(job_id, number), offset, end)
        except NotFoundError:
            return b""

    def delete(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Remove archived copies (those that exist)."""
        self.store.delete_many(log_key(job_id, number) for job_id, number in pairs)


#: seconds the archiver lets ended attempts gather between two batches
BATCH_EVERY = 0.2


class LogArchiver:
    """Archives ended attempts' logs on one thread of its own. Whatever ends while it uploads goes in
    its next batch, and each batch is recorded in one transaction (not one per job)."""

    def __init__(
        self,
        engine: Engine,
        archive: LogArchive,
        node: str,
        *,
        clock: Callable[[], float] = time.time,
        batch_every: float = BATCH_EVERY,
    ) -> None:
        self.engine = engine
        #: seconds between batches, so that many short jobs make one write transaction, not one each
        #: (each would take the store's write lock from the scheduler)
        self.batch_every = batch_every
        self.archive = archive
        self.node = node
        self.clock = clock
        self._queue: deque[str] = deque()
        self._scan = False
        self._closing = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        #: the thread waits for work (not mid-batch, not pausing): only then must submit() wake it
        self._idle = False

    def submit(self, attempt_ids: Iterable[str]) -> None:
        """Archive these ended attempts' logs (thread-safe; returns at once)."""
        with self._cond:
            self._queue.extend(attempt_ids)
            if self._thread is None or self._idle:
                self._wake()

    def catch_up(self) -> None:
        """Also archive every ended attempt of this node that is not archived yet (its scheduler
        stopped between the attempt's end and the upload)."""
        with self._cond:
            self._scan = True
            self._wake()

    def close(self) -> None:
        """Finish what was handed over, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
        with self._cond:
            self._thread = None
            self._closing = False

    def _wake(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="freight-logarchive", daemon=True)
            self._thread.start()
        self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._scan and not self._closing:
                    self._idle = True
                    self._cond.wait()
                self._idle = False
                if not self._queue and not self._scan:
                    return
                ids = list(self._queue)
                self._queue.clear()
                scan, self._scan = self._scan, False
            try:
                self.run_once(ids, scan=scan)
            except Exception:  # the worker must outlive a bad batch; recovery tries those again
                log.exception("archiving %d attempt logs failed; the next start tries again", len(ids))
            with self._cond:  # let the next batch gather (close() cuts the pause short)
                self._cond.wait_for(lambda: self._closing, self.batch_every)

    def run_once(self, attempt_ids: Iterable[str], *, scan: bool = False) -> list[str]:
        """Archive these attempts' logs (and, with `scan`, every unarchived one of this node) now, in
        the calling thread; record them. Returns the attempt ids archived."""
        wanted = list(dict.fromkeys([*attempt_ids, *(self._unarchived() if scan else [])]))
        done = []
        for attempt_id in wanted:
            job_id, number = split_attempt_id(attempt_id)
            try:
                if self.archive.archive(job_id, number):
                    done.append(attempt_id)
            except (OSError, FreightError) as exc:
                if disk_full(exc):  # named, loudly: every log after this one fails the same way
                    log.error(
                        "could not archive the log of attempt %s: no space left in the object store "
                        "%s (ENOSPC); kept locally, archived again on the next start",
                        attempt_id,
                        self.archive.settings.object_store_url,
                    )
                    continue
                log.warning("could not archive the log of attempt %s (kept locally): %s", attempt_id, exc)
        if done:
            self._record(done)
        return done

    def _unarchived(self) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(attempts.c.id).where(
                    attempts.c.node == self.node,
                    attempts.c.ended_at.is_not(None),
                    attempts.c.log_archived_at.is_(None),
                )
            )
            return [r.id for r in rows]

    def _record(self, done: list[str]) -> None:
        now = self.clock()
        gone: set[str] = set()
        with self.engine.begin() as conn:
            for start in range(0, len(done), _CHUNK):
                chunk = done[start : start + _CHUNK]
                result = conn.execute(
                    update(attempts).where(attempts.c.id.in_(chunk)).values(log_archived_at=now)
                )
                if result.rowcount != len(chunk):
                    # purged (freight jobs gc) while it was uploaded: its copy must not outlive it
                    kept = {r.id for r in conn.execute(select(attempts.c.id).where(attempts.c.id.in_(chunk)))}
                    gone.update(set(chunk) - kept)
        if gone:
            self.archive.delete(split_attempt_id(a) for a in gone)
        if not self.archive.settings.keep_local_logs:
            for attempt_id in done:
                with contextlib.suppress(OSError):
                    self.archive.settings.log_path(*split_attempt_id(attempt_id)).unlink()
