"""/api/v1/nodes and /api/v1/capacity: what the scheduler has to place jobs on, and how full it is."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from freight.server.api.common import reply
from freight.server.auth import Caller
from freight.server.deps import ServerContext, request_ctx
from freight.server.schemas import CapacityOut, NodesOut

router = APIRouter(tags=["cluster"])
Ctx = Annotated[ServerContext, Depends(request_ctx)]


@router.get(
    "/nodes", response_model=None, responses={200: {"model": NodesOut}}, summary="Nodes and the scheduler"
)
def nodes(ctx: Ctx, _principal: Caller) -> JSONResponse:
    return reply(node_rows(ctx))


def node_rows(ctx: ServerContext) -> dict[str, Any]:
    """Who schedules, and every node: id, name, address, cpus, memory, what is in use, labels, state
    (alive | dead). Embedded, the one node's figures are the capacity sampler's (with the store's
    queue depth); on a Ray cluster, as the scheduler last saw each node."""
    svc = ctx.service
    scheduler = svc.scheduler
    isolation = scheduler.runtime.description if scheduler is not None else None
    rows = svc.nodes()
    for row in rows:
        row.update(isolation=isolation, queued=None)
    if not svc.settings.ray_address and len(rows) == 1:
        sample = ctx.sampler.current()
        rows[0].update(
            cpus=sample.cpus,
            memory=sample.memory,
            used_cpus=sample.used_cpus,
            used_memory=sample.used_memory,
            running=sample.running,
            queued=sample.queued,
        )
    return {"scheduler": svc.scheduler_holder(), "nodes": rows}


@router.get(
    "/capacity",
    response_model=None,
    responses={200: {"model": CapacityOut}},
    summary="CPUs and memory in use over time; nodes, demand and scaling events",
)
def capacity(
    ctx: Ctx,
    _principal: Caller,
    since: Annotated[
        float | None, Query(ge=0, le=1e11, description="Only samples after this epoch time")
    ] = None,
) -> JSONResponse:
    sampler = ctx.sampler
    return reply(
        {
            "interval": sampler.interval,
            "now": sampler.current().to_dict(),
            "series": [s.to_dict() for s in sampler.series(since)],
            **ctx.service.capacity(),
        }
    )
