"""The REST API under /api/v1, one router per noun."""

from __future__ import annotations

from fastapi import APIRouter

from freight.server.api import (
    builds,
    cluster,
    definitions,
    events,
    jobs,
    pipeline_schedules,
    pipelines,
    queues,
    registry,
    secrets,
    services,
    tokens,
)
from freight.server.errors import ERROR_RESPONSES

PREFIX = "/api/v1"


def api_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, responses=ERROR_RESPONSES)
    modules = (
        jobs,
        queues,
        definitions,
        cluster,
        events,
        tokens,
        secrets,
        builds,
        pipelines,
        pipeline_schedules,
        services,
        registry,
    )
    for module in modules:
        router.include_router(module.router)
    return router
