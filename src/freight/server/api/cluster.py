"""/api/v1/nodes and /api/v1/capacity: what the scheduler has to place jobs on, and how full it is."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from freight.server.api.common import reply
from freight.server.auth import Caller
from freight.server.deps import ServerContext, get_ctx
from freight.server.schemas import CapacityOut, NodesOut

router = APIRouter(tags=["cluster"])
Ctx = Annotated[ServerContext, Depends(get_ctx)]


@router.get(
    "/nodes", response_model=None, responses={200: {"model": NodesOut}}, summary="Nodes and the scheduler"
)
def nodes(ctx: Ctx, _principal: Caller) -> JSONResponse:
    svc = ctx.service
    sample = ctx.sampler.current()
    scheduler = svc.scheduler
    if scheduler is not None:
        name = str(scheduler.snapshot()["node"])
        isolation: str | None = scheduler.runtime.description
    else:
        import os

        name, isolation = os.uname().nodename, None
    node = {
        "name": name,
        "cpus": sample.cpus,
        "memory": sample.memory,
        "used_cpus": sample.used_cpus,
        "used_memory": sample.used_memory,
        "running": sample.running,
        "queued": sample.queued,
        "isolation": isolation,
    }
    return reply({"scheduler": svc.scheduler_holder(), "nodes": [node]})


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
