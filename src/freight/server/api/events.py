"""/api/v1/events: the audit trail of state transitions, as a page or as a live SSE feed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select

from freight.db.schema import events, jobs
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
        if start is None:
            newest = _rows(ctx, principal, after_id=None, limit=1, newest_first=True)
            start = int(newest[0]["id"]) if newest else 0

        def fetch(after: int) -> list[dict[str, Any]]:
            rows = _rows(ctx, principal, after_id=after, limit=500, newest_first=False)
            return [r for r in rows if job_id is None or r["job_id"] == job_id]

        return StreamingResponse(
            follow_events(fetch, start),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    if job_id is not None:
        rows = ctx.service.events(job_id, limit)
        return reply([r for r in rows if after_id is None or r["id"] > after_id])
    return reply(_rows(ctx, principal, after_id=after_id, limit=limit, newest_first=True))


_ = EventOut  # referenced by name in the schema above
