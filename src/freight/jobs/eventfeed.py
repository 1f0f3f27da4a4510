"""Follow the events table from a cursor without missing a late commit: the one follower every
reader of new events uses (the scheduler's change feed, JobService.wait, the SSE event feed and the
server's sampler).

On SQLite ids are handed out under the write lock, so they become visible in id order and a plain
cursor is enough. On PostgreSQL a sequence hands them out before their transactions commit: a lower
id can become visible after a higher one, however many ids lie between (a group commit takes
hundreds). So there the follower reads every id past its cursor and remembers the ids it found
missing below the newest one it saw (the *gaps*: ids of transactions still in flight, or rolled
back). Each read asks for the gaps again by primary key, until each is seen or `GAP_HOLD` seconds
pass (a rolled-back id never shows). Starting, it takes the ids missing among the last
`START_LOOKBACK` below its cursor for gaps too (transactions in flight when it starts).

A reader narrows what it wants with `match` (an SQL condition). In id order it filters in SQL; out of
order every event past the cursor must be read to tell a gap from an event it does not want, so the
condition comes back as a column and the rows are filtered here. Its `select_from` must therefore
keep every event (outer joins only).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, FromClause, func, select

from freight.db.schema import events

#: events per statement of a read (a read after a burst takes as many as it needs)
READ_BATCH = 2000
#: seconds an id missing below the cursor is asked for again (longer than the scheduler's full
#: rescan: a transaction that commits after a rescan's read is caught by the feed)
GAP_HOLD = 30.0
#: missing ids remembered at most (the oldest go first)
MAX_GAPS = 10_000
#: ids below the cursor a start looks at on PostgreSQL, for transactions in flight at start
START_LOOKBACK = 128
#: gaps asked for per statement
_GAP_CHUNK = 1000
_MATCH = "_eventfeed_match"


class EventFollower:
    """A cursor over the events table plus, out of order (PostgreSQL), the ids missing below it."""

    def __init__(self) -> None:
        self.cursor = 0
        #: ids missing below the cursor -> when to stop asking for them (out-of-order dialects only)
        self.gaps: dict[int, float] = {}
        self.started = False

    def start(self, conn: Any, now: float, cursor: int | None = None) -> None:
        """Follow from `cursor` (default: the newest event). Out of order, the ids missing among
        the last START_LOOKBACK below it are gaps (transactions in flight now)."""
        top = newest(conn) if cursor is None else cursor
        self.cursor = top
        self.gaps = {}
        self.started = True
        if not in_order(conn) and top > 0:
            low = max(0, top - START_LOOKBACK)
            seen = conn.execute(
                select(events.c.id)
                .where(events.c.id > low, events.c.id <= top)
                .order_by(events.c.id)
                .limit(START_LOOKBACK)
            ).scalars()
            self._note_gaps(low, [int(i) for i in seen] + [top + 1], now)

    def read(
        self,
        conn: Any,
        now: float,
        columns: list[Any],
        *,
        match: ColumnElement[bool] | None = None,
        select_from: FromClause = events,
    ) -> list[Any]:
        """The rows (`columns`, which include events.c.id) of events that became visible since the
        last read and satisfy `match`, in id order; moves the cursor and keeps the gaps."""
        if not self.started:
            self.start(conn, now)
        ordered = in_order(conn)
        wanted = list(columns)
        if match is not None and not ordered:
            wanted.append(match.label(_MATCH))
        base = select(*wanted).select_from(select_from)
        rows = [] if ordered else self._gap_rows(conn, now, base)
        rows += self._new_rows(conn, now, base, match if ordered else None, ordered)
        rows.sort(key=lambda row: int(row.id))
        if match is not None and not ordered:
            rows = [row for row in rows if getattr(row, _MATCH)]
        return rows

    def _new_rows(
        self, conn: Any, now: float, base: Any, match: ColumnElement[bool] | None, ordered: bool
    ) -> list[Any]:
        out: list[Any] = []
        after = self.cursor
        while True:
            # ordered and limited: the primary key's index serves it whatever the planner's
            # statistics say (right after a bulk submit they can make PostgreSQL scan the table)
            query = base.where(events.c.id > after)
            if match is not None:
                query = query.where(match)
            rows = conn.execute(query.order_by(events.c.id).limit(READ_BATCH)).all()
            if not ordered:
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

    def _gap_rows(self, conn: Any, now: float, base: Any) -> list[Any]:
        """The events of ids missing before that have committed since, and forget expired gaps."""
        if not self.gaps:
            return []
        for ident in [i for i, until in self.gaps.items() if until <= now]:
            del self.gaps[ident]
        wanted = sorted(self.gaps)
        found: list[Any] = []
        for start in range(0, len(wanted), _GAP_CHUNK):
            found += conn.execute(base.where(events.c.id.in_(wanted[start : start + _GAP_CHUNK]))).all()
        for row in found:
            self.gaps.pop(int(row.id), None)
        return found


def in_order(conn: Any) -> bool:
    """Whether event ids become visible in id order on this connection's database."""
    return bool(conn.dialect.name == "sqlite")


def newest(conn: Any) -> int:
    return int(conn.execute(select(func.max(events.c.id))).scalar() or 0)
