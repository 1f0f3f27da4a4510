"""What other processes changed in the store since the scheduler last looked, read from the events table.

Every state change is written with an event (store.apply_batch, service._move), so following the
events table from a cursor finds new submissions, manual retries and cancellations of waiting jobs
at a cost that grows with what changed, not with how many jobs wait. Reading an event twice is
harmless (a job already held is skipped).

On SQLite ids are handed out under the write lock, so they become visible in id order. On
PostgreSQL a sequence hands them out before their transactions commit: a lower id can become
visible after a higher one, however many ids lie between (a group commit takes hundreds). So there
the feed reads every id past its cursor and remembers the ids it found missing below the newest one
it saw (the *gaps*: ids of transactions still in flight, or rolled back). Each read asks for the gaps
again by primary key, until each is seen or `GAP_HOLD` seconds pass (a rolled-back id never shows).
A full rescan every `FULL_EVERY` seconds is the safety net for a transaction that stays open longer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from freight.db.schema import events

#: seconds between full rescans of the waiting jobs
FULL_EVERY = 15.0
#: events per read of the feed (a read after a burst takes as many as it needs)
READ_BATCH = 2000
#: seconds an id missing below the cursor is asked for again (longer than FULL_EVERY: a transaction
#: that commits after a rescan's read is caught by the feed, not by the next rescan)
GAP_HOLD = 30.0
#: missing ids remembered at most (the oldest go first; the rescan still finds their jobs)
MAX_GAPS = 10_000
#: ids below the newest a first look reads on PostgreSQL, for transactions in flight at start
START_LOOKBACK = 128
#: how far behind the newest event a kept cursor may be on a rescan (further, and it jumps)
KEEP_BEHIND = 10 * READ_BATCH
#: gaps asked for per statement
_GAP_CHUNK = 1000

#: states only the scheduler (the lease holder) moves jobs into: never another process's change
_OWN_MOVES = ("starting", "running")


@dataclass(frozen=True)
class Change:
    """A job's last state change in the events read."""

    job_id: str
    to_state: str


class ChangeFeed:
    def __init__(self, *, full_every: float = FULL_EVERY) -> None:
        self.full_every = full_every
        self.cursor = 0
        #: ids missing below the cursor -> when to stop asking for them (out-of-order dialects only)
        self.gaps: dict[int, float] = {}
        self._ordered = True
        self._started = False
        self._last_full = -math.inf

    def full_due(self, now: float) -> bool:
        return now - self._last_full >= self.full_every

    def restart(self, conn: Any, now: float) -> None:
        """Call before a full scan. The feed keeps its cursor and gaps (what commits after the
        scan's read is then read from the feed, never lost between the two); a first look, or a
        cursor far behind, follows from the newest event instead."""
        self._ordered = conn.dialect.name == "sqlite"
        newest = int(conn.execute(select(func.max(events.c.id))).scalar() or 0)
        if not self._started or newest - self.cursor > KEEP_BEHIND:
            self.cursor = newest if self._ordered else max(0, newest - START_LOOKBACK)
            self._started = True
        self._last_full = now

    def read(self, conn: Any, now: float) -> list[Change]:
        """Each job's last change since the previous read (in event order), and move the cursor."""
        self._ordered = conn.dialect.name == "sqlite"
        rows = self._gap_rows(conn, now) + self._new_rows(conn, now)
        rows.sort(key=lambda row: int(row.id))
        last: dict[str, str] = {}
        for row in rows:
            if row.to_state in _OWN_MOVES:
                continue
            last.pop(row.job_id, None)  # keep the dict in the order of each job's last event
            last[row.job_id] = row.to_state
        return [Change(job_id, state) for job_id, state in last.items()]

    def _new_rows(self, conn: Any, now: float) -> list[Any]:
        out: list[Any] = []
        after = self.cursor
        while True:
            # ordered and limited: the primary key's index serves it whatever the planner's
            # statistics say (right after a bulk submit they can make PostgreSQL scan the table)
            query = select(events.c.id, events.c.job_id, events.c.to_state).where(events.c.id > after)
            if self._ordered:  # no gaps to find: the scheduler's own moves need not be read
                query = query.where(events.c.to_state.not_in(_OWN_MOVES))
            rows = conn.execute(query.order_by(events.c.id).limit(READ_BATCH)).all()
            if not self._ordered:
                self._note_gaps(after, [int(r.id) for r in rows], now)
            out += rows
            if rows:
                self.cursor = max(self.cursor, int(rows[-1].id))
            if len(rows) < READ_BATCH:
                return out
            after = int(rows[-1].id)

    def _note_gaps(self, after: int, ids: list[int], now: float) -> None:
        """Remember the ids missing between `after` and each id read (`ids` ascending)."""
        until = now + GAP_HOLD
        previous = after
        for ident in ids:
            if ident > previous + 1:
                # a jump past MAX_GAPS ids (a sequence moved by hand) keeps only its newest ids
                for missing in range(max(previous + 1, ident - MAX_GAPS), ident):
                    self.gaps[missing] = until
            previous = ident
        if len(self.gaps) > MAX_GAPS:
            self.gaps = {i: self.gaps[i] for i in sorted(self.gaps)[-MAX_GAPS:]}

    def _gap_rows(self, conn: Any, now: float) -> list[Any]:
        """The events of ids missing before that have committed since, and forget expired gaps."""
        if not self.gaps:
            return []
        for ident in [i for i, until in self.gaps.items() if until <= now]:
            del self.gaps[ident]
        wanted = sorted(self.gaps)
        found: list[Any] = []
        for start in range(0, len(wanted), _GAP_CHUNK):
            found += conn.execute(
                select(events.c.id, events.c.job_id, events.c.to_state).where(
                    events.c.id.in_(wanted[start : start + _GAP_CHUNK])
                )
            ).all()
        for row in found:
            self.gaps.pop(int(row.id), None)
        return found
