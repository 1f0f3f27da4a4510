"""/api/v1/queues: list, create or change (weight, priority, policy), pause and resume.

A queue-scoped token sees and may pause or resume its own queues; creating queues and changing
weights or priorities (which take capacity from other queues) needs an admin token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from freight.errors import NotFoundError, PermissionDeniedError
from freight.server.api.common import QueuePath, reply
from freight.server.auth import Caller, check_queue
from freight.server.deps import ServerContext, request_ctx
from freight.server.schemas import QueueIn, QueueOut
from freight.server.tokens import Principal

router = APIRouter(tags=["queues"])
Ctx = Annotated[ServerContext, Depends(request_ctx)]


def _find(ctx: ServerContext, principal: Principal, name: str) -> dict[str, Any] | None:
    if not principal.may_use(name):
        return None
    return next((q for q in ctx.service.queues() if q["name"] == name), None)


@router.get(
    "/queues",
    response_model=None,
    responses={200: {"model": list[QueueOut]}},
    summary="Queues with job counts",
)
def list_queues(ctx: Ctx, principal: Caller) -> JSONResponse:
    return reply([q for q in ctx.service.queues() if principal.may_use(q["name"])])


@router.get("/queues/{name}", response_model=None, responses={200: {"model": QueueOut}}, summary="One queue")
def get_queue(ctx: Ctx, principal: Caller, name: QueuePath) -> JSONResponse:
    row = _find(ctx, principal, name)
    if row is None:
        raise NotFoundError(f"no queue {name!r}", where="name")
    return reply(row)


@router.put(
    "/queues/{name}",
    response_model=None,
    responses={200: {"model": QueueOut}},
    summary="Create or change a queue",
)
def put_queue(ctx: Ctx, principal: Caller, name: QueuePath, body: QueueIn) -> JSONResponse:
    check_queue(principal, name, where="name")
    exists = _find(ctx, principal, name) is not None
    policy = body.policy()
    if not principal.admin and (not exists or body.weight is not None or body.priority is not None or policy):
        raise PermissionDeniedError(
            "creating queues and changing weights, priorities or limits needs an admin token",
            where="name"
            if not exists
            else "weight"
            if body.weight is not None
            else "priority"
            if body.priority is not None
            else next(iter(policy)),
        )
    return reply(
        ctx.service.set_queue(
            name, weight=body.weight, priority=body.priority, paused=body.paused, policy=policy
        )
    )


def _pause(ctx: ServerContext, principal: Principal, name: str, paused: bool) -> JSONResponse:
    check_queue(principal, name, where="name")
    if _find(ctx, principal, name) is None:
        raise NotFoundError(f"no queue {name!r}", where="name")
    return reply(ctx.service.set_queue(name, paused=paused))


@router.post(
    "/queues/{name}/pause",
    response_model=None,
    responses={200: {"model": QueueOut}},
    summary="Stop starting jobs from a queue",
)
def pause(ctx: Ctx, principal: Caller, name: QueuePath) -> JSONResponse:
    """Running jobs go on; queued ones wait until the queue is resumed."""
    return _pause(ctx, principal, name, True)


@router.post(
    "/queues/{name}/resume",
    response_model=None,
    responses={200: {"model": QueueOut}},
    summary="Start jobs from a queue again",
)
def resume(ctx: Ctx, principal: Caller, name: QueuePath) -> JSONResponse:
    return _pause(ctx, principal, name, False)
