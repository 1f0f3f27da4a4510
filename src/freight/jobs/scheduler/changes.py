"""What other processes changed in the store since the scheduler last looked, read from the events table.

Every state change is written with an event (store.apply_batch, service._move), so following the
events table from a cursor finds new submissions, manual retries and cancellations of waiting jobs
at a cost that grows with what changed, not with how many jobs wait. Reading an event twice is
harmless (a job already held is skipped).

Event ids can commit out of order on PostgreSQL: the feed follows the table with the one follower
every reader of new events shares (jobs/eventfeed.py), which remembers the ids missing below its
cursor and asks for them again. A full rescan every `FULL_EVERY` seconds is the safety net for a
transaction that stays open longer than the follower's GAP_HOLD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from freight.db.schema import events
from freight.jobs.eventfeed import READ_BATCH, EventFollower, newest

#: seconds between full rescans of the waiting jobs
FULL_EVERY = 15.0
#: how far behind the newest event a kept cursor may be on a rescan (further, and it jumps)
KEEP_BEHIND = 10 * READ_BATCH

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
        self.follower = EventFollower()
        self._last_full = -math.inf

    @property
    def cursor(self) -> int:
        return self.follower.cursor

    @property
    def gaps(self) -> dict[int, float]:
        return self.follower.gaps

    def full_due(self, now: float) -> bool:
        return now - self._last_full >= self.full_every

    def restart(self, conn: Any, now: float) -> None:
        """Call before a full scan. The feed keeps its cursor and gaps (what commits after the
        scan's read is then read from the feed, never lost between the two); a first look, or a
        cursor far behind, follows from the newest event instead."""
        top = newest(conn)
        if not self.follower.started or top - self.follower.cursor > KEEP_BEHIND:
            self.follower.start(conn, now, top)
        self._last_full = now

    def read(self, conn: Any, now: float) -> list[Change]:
        """Each job's last change since the previous read (in event order), and move the cursor."""
        rows = self.follower.read(
            conn,
            now,
            [events.c.id, events.c.job_id, events.c.to_state],
            # the scheduler's own moves are never another process's change
            match=events.c.to_state.not_in(_OWN_MOVES),
        )
        last: dict[str, str] = {}
        for row in rows:
            last.pop(row.job_id, None)  # keep the dict in the order of each job's last event
            last[row.job_id] = row.to_state
        return [Change(job_id, state) for job_id, state in last.items()]
