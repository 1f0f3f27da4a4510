"""The jobs this process's scheduler ended, commit by commit, for waiters in the same process.

`JobService.wait` is woken by every commit that ended a job. Reading which jobs those were from the
events table cost a query per wake-up (on a busy run, about as much of the interpreter as the
scheduler's own commits). The scheduler already knows: it appends each commit's ended jobs here,
numbered by its `settled` count, and a waiter takes what came after the count it last saw. A waiter
that fell behind the window (or waits on another process's scheduler) reads the store as before.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

#: commits kept: a waiter more than this many commits behind reads the events table instead
KEPT = 4096


class EndLog:
    def __init__(self, kept: int = KEPT) -> None:
        self._lock = threading.Lock()
        self._kept = kept
        #: (settled count after the commit, the jobs it ended)
        self._commits: deque[tuple[int, tuple[str, ...]]] = deque()
        #: the newest count that is no longer in the window
        self._floor = 0
        #: commits that ended or re-queued a job so far
        self.settled = 0

    def record(self, ended: Iterable[str]) -> int:
        """Count one settling commit and the jobs it ended; returns the new count."""
        ids = tuple(ended)
        with self._lock:
            self.settled += 1
            if ids:
                self._commits.append((self.settled, ids))
                if len(self._commits) > self._kept:
                    self._floor = self._commits.popleft()[0]
            return self.settled

    def since(self, seen: int) -> tuple[int, list[str] | None]:
        """The count now and the jobs ended after count `seen`; None in place of the jobs when some
        of those commits have left the window (read the store)."""
        with self._lock:
            if seen < self._floor:
                return self.settled, None
            out: list[str] = []
            for count, ids in reversed(self._commits):
                if count <= seen:
                    break
                out.extend(ids)
            return self.settled, out
