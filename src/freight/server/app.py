"""The app factory: the REST API (/api/v1), the web UI, /metrics and /healthz in one FastAPI app.

`create_app(settings, scheduler=True)` is what `freight up` serves: the scheduler runs in this process
next to the API. Without `scheduler`, the app serves a store some other process schedules (or that no
one schedules yet: jobs wait). Workload routers plug in when their modules exist (see `_mount_extras`).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from freight.config import Settings, load_settings
from freight.jobs.scheduler import LeaseHeldError
from freight.jobs.service import JobService
from freight.server.api import PREFIX, api_router
from freight.server.deps import ServerContext, write_gate
from freight.server.errors import install_error_handlers
from freight.server.logconfig import AccessLog
from freight.server.metrics import CONTENT_TYPE, Metrics
from freight.server.openapi import build_openapi
from freight.server.sampler import Sampler
from freight.server.ui import install_ui_redirects, ui_router
from freight.units import format_bytes

log = logging.getLogger("freight.server")

HERE = Path(__file__).parent
VERSION = "0.1.0"


def create_app(
    settings: Settings | None = None,
    *,
    service: JobService | None = None,
    scheduler: bool = False,
    sample_interval: float = 2.0,
) -> FastAPI:
    """Build the app. With `service`, the caller owns it (and its scheduler); else the app opens one
    on `settings` and closes it on shutdown. `scheduler=True` starts the scheduler at startup."""
    owned = service is None
    svc = service or JobService.open(settings or load_settings())
    metrics = Metrics()
    sampler = Sampler(svc, interval=sample_interval, on_started=metrics.submit_to_start.observe)
    metrics.watch_store(svc, sampler)
    ctx = ServerContext(
        settings=svc.settings, service=svc, sampler=sampler, metrics=metrics, writes=write_gate(svc)
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        started_scheduler = False
        if scheduler and svc.scheduler is None:
            try:
                running = svc.start_scheduler()
            except LeaseHeldError:
                # Another server schedules this store (PostgreSQL, several servers): serve the API only.
                log.warning("another scheduler holds the lease on this store; serving the API only")
            else:
                started_scheduler = True
                snap = running.snapshot()
                log.info(
                    "scheduler up on %s with %g cpus, %s memory",
                    snap["node"],
                    snap["cpus"],
                    format_bytes(int(snap["memory"])),
                    extra={"isolation": running.runtime.description, "home": str(svc.settings.home)},
                )
        sampler.start()
        try:
            yield
        finally:
            sampler.stop()
            if started_scheduler:
                svc.stop_scheduler()
            if owned:
                svc.close()

    app = FastAPI(
        title="freight",
        version=VERSION,
        description="Isolated batch jobs with hard limits, queues and live logs.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI loads its assets from a CDN; the schema is at /openapi.json
        redoc_url=None,
    )
    app.state.freight = ctx
    install_error_handlers(app)
    install_ui_redirects(app)
    app.include_router(api_router())
    app.include_router(ui_router())
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/metrics", include_in_schema=False)
    def metrics_endpoint() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    _mount_extras(app, ctx)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    app.add_middleware(AccessLog, metrics=metrics)
    return app


def _mount_extras(app: FastAPI, ctx: ServerContext) -> None:
    """Workload routers, when their modules exist. `freight.builds.hooks` may offer either
    `create_router(settings, client) -> APIRouter | None` (preferred: it gets the settings and this
    server's JobService as its JobClient; None means "not configured") or a ready `router`. Paths are
    taken as they are when they already start with /api/v1, else put under it. The hook checks its
    callers itself (a signature, not an API token); handlers also find the ServerContext on
    `request.app.state.freight`."""
    try:
        hooks = importlib.import_module("freight.builds.hooks")
    except ModuleNotFoundError as exc:
        if exc.name not in ("freight.builds", "freight.builds.hooks"):
            raise
        return
    factory = getattr(hooks, "create_router", None)
    router = factory(ctx.settings, ctx.service) if callable(factory) else getattr(hooks, "router", None)
    if not isinstance(router, APIRouter):
        log.debug("freight.builds.hooks offers no router here; git hooks are not served")
        return
    paths = [str(getattr(route, "path", "")) for route in router.routes]
    prefixed = bool(paths) and all(p.startswith(PREFIX) for p in paths)
    app.include_router(router, prefix="" if prefixed else PREFIX)
    log.info("serving git hooks", extra={"paths": ",".join(paths)})
