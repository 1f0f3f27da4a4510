"""/api/v1/jobs: submit (with idempotency), list (filters, cursor pages), get, wait, cancel, retry,
logs (plain chunked stream or Server-Sent Events, optionally following), events and live usage."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select

from freight.db.schema import jobs
from freight.errors import NotFoundError, UserError
from freight.jobs.client import JobView, check_attempt
from freight.jobs.spec import JobSpec, parse_spec
from freight.jobs.states import JobState
from freight.server.api.common import (
    JobId,
    check_input,
    check_units,
    job_usage,
    list_visible,
    reply,
    visible_job,
)
from freight.server.auth import Admin, Caller, check_queue
from freight.server.deps import ServerContext, request_ctx
from freight.server.schemas import (
    BatchIn,
    EventOut,
    GcIn,
    GcOut,
    JobList,
    JobPage,
    UsageOut,
    WaitIn,
)
from freight.server.streams import follow_log, parse_last_event_id, raw_chunks, sse_log
from freight.server.tokens import Principal
from freight.units import parse_duration

router = APIRouter(tags=["jobs"])
Ctx = Annotated[ServerContext, Depends(request_ctx)]

SPEC_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSpecIn"}}},
    }
}
SUBMITTED: dict[int | str, dict[str, Any]] = {
    201: {"model": JobView, "description": "Queued"},
    200: {"model": JobView, "description": "An earlier submission with this idempotency key"},
}
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", max_length=200, description="Same key, same job: a retry never duplicates"
    ),
]


def _check_key(key: object, where: str) -> None:
    # The store treats "" as a key like any other but the lookup skips it, so a second "" would
    # collide on the unique index; say so plainly instead.
    if key == "":
        raise UserError(
            "an idempotency key cannot be empty", where=where, hint="leave it out, or use a real key"
        )


async def _pinned(
    ctx: ServerContext, items: list[tuple[JobSpec, str | None]]
) -> list[tuple[JobSpec, str | None]]:
    """Image jobs' images pinned to digests before the submission joins a group commit: pinning asks
    podman or the registry, which must never happen on the commit's thread, under the write lock."""
    if all(spec.image is None for spec, _ in items):
        return items
    return await run_in_threadpool(ctx.service.pin_images, items)


async def submit_job(
    ctx: ServerContext,
    principal: Principal,
    body: dict[str, Any],
    *,
    definition: str | None = None,
    idempotency_key: str | None = None,
) -> JSONResponse:
    """Validate (applying the definition's template, if any), check the token's queue, store.
    201 for a new job; 200 with the earlier job when its idempotency key was seen before. Validation
    runs on the event loop (it is pure); the write joins the next group commit (server/coalescer.py)."""
    check_input(body, "")
    check_units(body, "spec")
    _check_key(body.get("idempotency_key"), "idempotency_key")
    svc = ctx.service
    if idempotency_key is not None:
        _check_key(idempotency_key, "Idempotency-Key")
        check_input(idempotency_key, "Idempotency-Key")
        given = body.get("idempotency_key")
        if given is not None and given != idempotency_key:
            raise UserError(
                "the body's idempotency_key differs from the Idempotency-Key header", where="Idempotency-Key"
            )
        body = {**body, "idempotency_key": idempotency_key}
    started = time.time()
    if definition is None:
        spec, ref = svc.resolve(body)
    else:  # reads the definition from the store
        spec, ref = await run_in_threadpool(svc.resolve, body, definition)
    check_queue(principal, spec.queue)
    # Submitting the pinned NAME:VERSION keeps the definition on record and cannot race a new version.
    (view,) = await ctx.submits.submit(await _pinned(ctx, [(spec, ref)]))
    replay = view.submitted_at < started
    return reply(view.to_dict(), 200 if replay else 201)


@router.post(
    "/jobs",
    status_code=201,
    response_model=None,
    responses=SUBMITTED,
    openapi_extra=SPEC_BODY,
    summary="Submit a job",
)
async def submit(
    ctx: Ctx,
    principal: Caller,
    body: Annotated[dict[str, Any], Body()],
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Run a job from a definition with `POST /api/v1/definitions/{ref}/jobs`."""
    return await submit_job(ctx, principal, body, idempotency_key=idempotency_key)


@router.post(
    "/jobs/batch",
    status_code=201,
    response_model=None,
    responses={201: {"model": JobList}},
    summary="Submit several jobs in one transaction",
)
async def submit_batch(ctx: Ctx, principal: Caller, body: BatchIn) -> JSONResponse:
    """All of them or none; what the remote client's `submit_many` sends."""
    specs: list[JobSpec] = []
    for index, item in enumerate(body.jobs):
        check_input(item, f"jobs.{index}")
        check_units(item, f"jobs.{index}")
        _check_key(item.get("idempotency_key"), f"jobs.{index}.idempotency_key")
        spec = parse_spec(item, source=f"jobs.{index}")
        check_queue(principal, spec.queue, where=f"jobs.{index}.queue")
        specs.append(spec)
    views = await ctx.submits.submit(await _pinned(ctx, [(spec, None) for spec in specs]))
    return reply({"jobs": [v.to_dict() for v in views]}, 201)


def _parse_labels(items: list[str]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"expected KEY=VALUE, got {item!r}", where="label")
        out[key] = value
    return out or None


@router.get(
    "/jobs", response_model=None, responses={200: {"model": JobPage}}, summary="List jobs, newest first"
)
def list_jobs(
    ctx: Ctx,
    principal: Caller,
    state: Annotated[
        str | None, Query(max_length=32, json_schema_extra={"enum": [s.value for s in JobState]})
    ] = None,
    queue: Annotated[str | None, Query(max_length=64)] = None,
    label: Annotated[list[str], Query(description="KEY=VALUE; repeat for several")] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=64, description="`next_cursor` of the previous page")
    ] = None,
) -> JSONResponse:
    for index, item in enumerate(label):
        check_input(item, f"label.{index}")
    if queue is not None:
        check_input(queue, "queue")
    if cursor is not None:
        check_input(cursor, "cursor")
    views = list_visible(
        ctx.service,
        principal,
        state=state or None,
        queue=queue,
        label=_parse_labels(label),
        limit=limit,
        cursor=cursor,
    )
    next_cursor = views[-1].id if len(views) == limit else None
    return reply({"jobs": [v.to_dict() for v in views], "next_cursor": next_cursor})


@router.post(
    "/jobs/wait",
    response_model=None,
    responses={200: {"model": JobList}},
    summary="Wait for jobs to end (long poll)",
)
async def wait(ctx: Ctx, principal: Caller, body: WaitIn) -> JSONResponse:
    """Returns when every job has ended or after `timeout` seconds (at most 30), with their views."""
    ids = list(dict.fromkeys(body.ids))
    for index, job_id in enumerate(ids):
        check_input(job_id, f"ids.{index}")
    deadline = time.monotonic() + body.timeout
    engine = ctx.service.engine

    def states() -> dict[str, tuple[str, str]]:
        with engine.connect() as conn:
            rows = conn.execute(select(jobs.c.id, jobs.c.state, jobs.c.queue).where(jobs.c.id.in_(ids))).all()
        return {r.id: (r.state, r.queue) for r in rows}

    while True:
        found = await run_in_threadpool(states)
        for job_id in ids:
            if job_id not in found or not principal.may_use(found[job_id][1]):
                raise NotFoundError(f"no job {job_id!r}", where="ids")
        pending = [j for j in ids if not JobState(found[j][0]).terminal]
        if not pending or time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    views = await run_in_threadpool(lambda: [ctx.service.get(j) for j in body.ids])
    return reply({"jobs": [v.to_dict() for v in views]})


@router.post(
    "/jobs/gc",
    response_model=None,
    responses={200: {"model": GcOut}},
    summary="Delete finished jobs that ended before a cutoff (admin)",
)
def gc(ctx: Ctx, _admin: Admin, body: GcIn) -> JSONResponse:
    """Their rows, attempts, events and logs (local and archived), as `freight jobs gc` does."""
    try:
        seconds = parse_duration(body.older_than)
    except ValueError as exc:
        raise UserError(str(exc), where="older_than") from None
    with ctx.writes:
        ids = ctx.service.purge(older_than=seconds, dry_run=body.dry_run)
    return reply({"ids": ids, "dry_run": body.dry_run})


@router.get(
    "/jobs/{job_id}",
    response_model=None,
    responses={200: {"model": JobView}},
    summary="One job with its attempts",
)
def get_job(ctx: Ctx, principal: Caller, job_id: JobId) -> JSONResponse:
    return reply(visible_job(ctx.service, principal, job_id).to_dict())


@router.post(
    "/jobs/{job_id}/cancel", response_model=None, responses={200: {"model": JobView}}, summary="Cancel a job"
)
def cancel(ctx: Ctx, principal: Caller, job_id: JobId) -> JSONResponse:
    """A queued job never starts; a running one gets SIGTERM, then SIGKILL after its grace."""
    view = visible_job(ctx.service, principal, job_id)
    return reply(ctx.service.cancel(view.id).to_dict())


@router.post(
    "/jobs/{job_id}/retry",
    response_model=None,
    responses={200: {"model": JobView}},
    summary="Queue a finished job again",
)
def retry(ctx: Ctx, principal: Caller, job_id: JobId) -> JSONResponse:
    view = visible_job(ctx.service, principal, job_id)
    return reply(ctx.service.retry(view.id).to_dict())


@router.get(
    "/jobs/{job_id}/events",
    response_model=None,
    responses={200: {"model": list[EventOut]}},
    summary="A job's state transitions, newest first",
)
def job_events(
    ctx: Ctx, principal: Caller, job_id: JobId, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> JSONResponse:
    view = visible_job(ctx.service, principal, job_id)
    return reply(ctx.service.events(view.id, limit))


@router.get(
    "/jobs/{job_id}/usage",
    response_model=None,
    responses={200: {"model": UsageOut}},
    summary="Memory and CPU a job uses now (or used)",
)
def usage(ctx: Ctx, principal: Caller, job_id: JobId) -> JSONResponse:
    return reply(job_usage(ctx.service, visible_job(ctx.service, principal, job_id)))


LOG_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The log bytes (text/plain, chunked), or Server-Sent Events with `sse=true` or "
        "`Accept: text/event-stream`: `log` events {attempt, text} then one `end` event",
        "content": {
            "text/plain": {"schema": {"type": "string"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    }
}


@router.get(
    "/jobs/{job_id}/logs", response_class=StreamingResponse, responses=LOG_RESPONSES, summary="A job's output"
)
async def logs(
    request: Request,
    ctx: Ctx,
    principal: Caller,
    job_id: JobId,
    attempt: Annotated[int | None, Query(ge=1, le=100_000, description="Default: the latest")] = None,
    follow: Annotated[bool, Query(description="Keep streaming until the attempt ends")] = False,
    offset: Annotated[int, Query(ge=0, le=2**53, description="Start at this byte")] = 0,
    sse: Annotated[bool, Query(description="Server-Sent Events instead of raw bytes")] = False,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
) -> StreamingResponse:
    svc = ctx.service
    view = await run_in_threadpool(visible_job, svc, principal, job_id)
    check_attempt(view, attempt, follow=follow)
    job_id = view.id
    wants_sse = sse or "text/event-stream" in request.headers.get("accept", "")
    resumed, resumed_offset = parse_last_event_id(last_event_id)
    if resumed is not None:
        attempt, offset = resumed, resumed_offset
    stream = follow_log(svc, job_id, attempt, offset, follow=follow)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    if wants_sse:
        return StreamingResponse(
            sse_log(svc, job_id, stream), media_type="text/event-stream", headers=headers
        )
    return StreamingResponse(raw_chunks(stream), media_type="text/plain; charset=utf-8", headers=headers)
