"""/api/v1/events: the audit trail of state transitions, as a page or as a live SSE feed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import ColumnElement, Engine, and_, select

from freight.db.schema import events, jobs
from freight.jobs.eventfeed import EventFollower
from freight.server.api.common import check_input, reply, visible_job
from freight.server.auth import Caller
from freight.server.deps import ServerContext, request_ctx
from freight.server.schemas import EventOut
from freight.server.streams import follow_events
from freight.server.tokens import Principal

router = APIRouter(tags=["events"])
#: event ids are a 32-bit integer column on PostgreSQL; larger ones cannot exist (and cannot be bound)
MAX_ID = 2**31 - 1
Ctx = Annotated[ServerContext, Depends(request_ctx)]


def _rows(
    ctx: ServerContext, principal: Principal, *, after_id: int | None, limit: int, newest_first: bool
) -> list[dict[str, Any]]:
    query = select(events)
    if principal.queues is not None and not principal.admin:
        query = query.join(jobs, jobs.c.id == events.c.job_id).where(
            jobs.c.queue.in_(sorted(principal.queues))
        )
    if after_id is not None:
        query = query.where(events.c.id > after_id)
    query = query.order_by(events.c.id.desc() if newest_first else events.c.id).limit(limit)
    with ctx.service.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def event_reader(
    engine: Engine, principal: Principal, job_id: str | None, start: int | None
) -> Callable[[], list[dict[str, Any]]]:
    """What the live feed sends next: the visible events (of `job_id`, if given) that became
    visible since the last call, oldest first, past `start` (default: the newest event). One
    follower (jobs/eventfeed.py) keeps the cursor, so an event that commits late on PostgreSQL,
    after later ids were sent, is still sent."""
    follower = EventFollower()
    conditions: list[ColumnElement[bool]] = []
    if principal.queues is not None and not principal.admin:
        conditions.append(jobs.c.queue.in_(sorted(principal.queues)))
    if job_id is not None:
        conditions.append(events.c.job_id == job_id)
    match = and_(*conditions) if conditions else None
    source = events.outerjoin(jobs, jobs.c.id == events.c.job_id)

    def fetch() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            if not follower.started:
                follower.start(conn, time.monotonic(), start)
            rows = follower.read(conn, time.monotonic(), list(events.c), match=match, select_from=source)
        return [{c.name: row._mapping[c.name] for c in events.c} for row in rows]

    return fetch


@router.get(
    "/events",
    response_model=None,
    responses={
        200: {
            "description": "Events newest first; with `follow`, SSE `event` events, oldest first",
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/EventOut"}}
                },
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }
    },
    summary="State transitions of all visible jobs",
)
def list_events(
    ctx: Ctx,
    principal: Caller,
    job_id: Annotated[str | None, Query(max_length=64)] = None,
    after_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    follow: bool = False,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
) -> JSONResponse | StreamingResponse:
    if job_id is not None:
        check_input(job_id, "job_id")
        job_id = visible_job(ctx.service, principal, job_id).id
    if follow:
        start = after_id
        if last_event_id and last_event_id.isdigit() and int(last_event_id) <= MAX_ID:
            start = int(last_event_id)
        return StreamingResponse(
            follow_events(event_reader(ctx.service.engine, principal, job_id, start)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    if job_id is not None:
        rows = ctx.service.events(job_id, limit)
        return reply([r for r in rows if after_id is None or r["id"] > after_id])
    return reply(_rows(ctx, principal, after_id=after_id, limit=limit, newest_first=True))


_ = EventOut  # referenced by name in the schema above
