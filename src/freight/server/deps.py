"""What every request handler needs: the server context (service, sampler, metrics) on app.state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from freight.config import Settings
from freight.jobs.service import JobService

if TYPE_CHECKING:
    from freight.server.metrics import Metrics
    from freight.server.sampler import Sampler


@dataclass
class ServerContext:
    settings: Settings
    service: JobService
    sampler: Sampler
    metrics: Metrics
    #: where the UI and API are served from, for links in logs ("http://127.0.0.1:8321")
    base_url: str | None = None
    extras: dict[str, str] = field(default_factory=dict)


def get_ctx(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.freight
    return ctx
