"""What every request handler needs: the server context (service, sampler, metrics) on app.state."""

from __future__ import annotations

import contextlib
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from freight.config import Settings
from freight.jobs.service import JobService

if TYPE_CHECKING:
    from freight.server.coalescer import SubmitCoalescer
    from freight.server.metrics import Metrics
    from freight.server.sampler import Sampler
    from freight.server.tokencache import TokenCache


@dataclass
class ServerContext:
    settings: Settings
    service: JobService
    sampler: Sampler
    metrics: Metrics
    #: token lookups, cached briefly (see server/tokencache.py)
    tokens: TokenCache
    #: API submissions, group-committed (see server/coalescer.py)
    submits: SubmitCoalescer
    #: where the UI and API are served from, for links in logs ("http://127.0.0.1:8321")
    base_url: str | None = None
    #: held around submissions (see `write_gate`)
    writes: AbstractContextManager[object] = field(default_factory=contextlib.nullcontext)


def write_gate(service: JobService) -> AbstractContextManager[object]:
    """SQLite has one writer at a time, and a writer that finds the database locked sleeps in steps
    of up to 100 ms (busy_timeout) before it tries again. Many API threads submitting at once would
    mostly sleep; queueing them on a lock in this process instead hands the database from one to the
    next at once. PostgreSQL takes concurrent inserts, so it gets no gate."""
    if service.engine.dialect.name == "sqlite":
        return threading.Lock()
    return contextlib.nullcontext()


def get_ctx(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.freight
    return ctx


async def request_ctx(request: Request) -> ServerContext:
    """`get_ctx` as a FastAPI dependency. Async so FastAPI calls it on the event loop: a plain `def`
    dependency is run in a worker thread, one hand-off per request for a dict lookup."""
    return get_ctx(request)
