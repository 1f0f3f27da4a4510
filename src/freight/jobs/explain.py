"""Why queued jobs wait, added to their views on reading: what the scheduler has not said (a paused
queue, no scheduler serving the store) and, for one job, how many wait before it in its queue."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import and_, func, or_, select

from freight.db.schema import jobs, queues
from freight.jobs.client import JobView
from freight.jobs.lease import lease_holder
from freight.jobs.scheduler import LEASE
from freight.jobs.states import JobState
from freight.jobs.waiting import waiting_reasons


def explained(conn: Any, views: list[JobView], *, count_ahead: bool = False) -> list[JobView]:
    """`views`, with the reason queued jobs wait where the scheduler has not said (or cannot): their
    queue is paused, or no scheduler serves the store; with `count_ahead` (one job), how many wait
    before it in its queue (the scheduler speaks for a queue's head only). Said on reading, never
    stored: it may change."""
    queued = [v for v in views if v.state is JobState.QUEUED]
    if not queued:
        return views
    paused = {r.name for r in conn.execute(select(queues.c.name).where(queues.c.paused.is_(True)))}
    scheduled = lease_holder(conn, LEASE) is not None
    reasons = waiting_reasons(queued, paused=paused, scheduled=scheduled)
    for view in queued:
        if (
            count_ahead
            and view.id not in reasons
            and view.reason is None
            and (ahead := _ahead_of(conn, view))
        ):
            reasons[view.id] = (
                f"waiting its turn: {ahead} job{'s' if ahead > 1 else ''} before it in queue {view.queue}"
            )
    return [replace(v, reason=reasons[v.id]) if v.id in reasons else v for v in views]


def _ahead_of(conn: Any, view: JobView) -> int:
    """Queued jobs its queue serves first: a higher priority, or the same one and submitted earlier."""
    first = or_(jobs.c.priority > view.priority, and_(jobs.c.priority == view.priority, jobs.c.id < view.id))
    query = select(func.count()).where(
        jobs.c.queue == view.queue, jobs.c.state == JobState.QUEUED.value, first
    )
    return int(conn.execute(query).scalar() or 0)
