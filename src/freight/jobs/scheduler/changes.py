"""What other processes changed in the store since the scheduler last looked, read from the events table.

Every state change is written with an event (store.apply_batch, service._move), so following the
events table from a cursor finds new submissions, manual retries and cancellations of waiting jobs
at a cost that grows with what changed, not with how many jobs wait. Reading an event twice is
harmless (a job already held is skipped), so on PostgreSQL, where a sequence hands out ids before
their transactions commit (a lower id can become visible after a higher one), each read looks back a
window of ids; a full rescan every `FULL_EVERY` seconds is the safety net for anything older.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from freight.db.schema import events

#: seconds between full rescans of the waiting jobs
FULL_EVERY = 15.0
#: event ids a read looks back on PostgreSQL, for transactions that committed out of id order
LOOKBACK = 128
#: events per read of the feed (a read after a burst takes as many as it needs)
READ_BATCH = 2000


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
        self.lookback = 0
        self._last_full = -math.inf

    def full_due(self, now: float) -> bool:
        return now - self._last_full >= self.full_every

    def restart(self, conn: Any, now: float) -> None:
        """Follow from the newest event; call before a full scan (what commits after the scan's read
        is then read from the feed, never lost between the two)."""
        self.cursor = int(conn.execute(select(func.max(events.c.id))).scalar() or 0)
        self.lookback = LOOKBACK if conn.dialect.name == "postgresql" else 0
        self._last_full = now

    def read(self, conn: Any) -> list[Change]:
        """Each job's last change since the previous read (in event order), and move the cursor."""
        last: dict[str, str] = {}
        after = self.cursor - self.lookback
        while True:
            # ordered and limited: the primary key's index serves it whatever the planner's
            # statistics say (right after a bulk submit they can make PostgreSQL scan the table)
            rows = conn.execute(
                select(events.c.id, events.c.job_id, events.c.to_state)
                .where(events.c.id > after, events.c.to_state.not_in(_OWN_MOVES))
                .order_by(events.c.id)
                .limit(READ_BATCH)
            ).all()
            for row in rows:
                last.pop(row.job_id, None)  # keep the dict in the order of each job's last event
                last[row.job_id] = row.to_state
            if rows:
                self.cursor = max(self.cursor, int(rows[-1].id))
            if len(rows) < READ_BATCH:
                break
            after = int(rows[-1].id)
        return [Change(job_id, state) for job_id, state in last.items()]
