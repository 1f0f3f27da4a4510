"""The app factory: the REST API (/api/v1), the web UI, /metrics and /healthz in one FastAPI app.

`create_app(settings, scheduler=True)` is what `freight up` serves: the scheduler runs in this process
next to the API. Without `scheduler`, the app serves a store some other process schedules (or that no
one schedules yet: jobs wait). The builds git hook is mounted beside the API (see `_mount_git_hook`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from freight.builds.hooks import router_from_env
from freight.config import Settings, load_settings
from freight.db.checkpoint import WalCheckpointer
from freight.db.engine import STORE_RETRY_AFTER, store_problem
from freight.jobs.service import JobService
from freight.server.api import api_router
from freight.server.api.pipelines import resume_runs as resume_pipeline_runs
from freight.server.api.pipelines import start_planner as start_pipeline_planner
from freight.server.auth import check_metrics_access, current_principal
from freight.server.coalescer import SubmitCoalescer
from freight.server.deps import ServerContext, write_gate
from freight.server.errors import install_error_handlers
from freight.server.logconfig import AccessLog
from freight.server.metrics import CONTENT_TYPE, Metrics
from freight.server.openapi import build_openapi
from freight.server.sampler import Sampler
from freight.server.tokencache import TokenCache
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
    writes = write_gate(svc)
    ctx = ServerContext(
        settings=svc.settings,
        service=svc,
        sampler=sampler,
        metrics=metrics,
        tokens=TokenCache(svc.engine),
        submits=SubmitCoalescer(svc, writes=writes),
        writes=writes,
    )

    closers: list[Callable[[], None]] = [ctx.submits.close]
    checkpointer = WalCheckpointer(svc.engine)  # SQLite only: keeps checkpoints off the API's commits

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        started_scheduler = False
        checkpointer.start()
        if scheduler and svc.scheduler is None:
            running = svc.start_or_stand_by()
            if running is None:
                # Another server schedules this store (PostgreSQL, several servers): serve the API and
                # take over the scheduler if that server goes away.
                started_scheduler = True
                log.warning("another scheduler holds the lease on this store; standing by")
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
        closers.append(resume_pipeline_runs(_app))  # runs an earlier server process left running
        closers.insert(0, start_pipeline_planner(_app))  # registered schedules; stopped first
        try:
            yield
        finally:
            sampler.stop()
            for close in closers:
                close()
            if started_scheduler:
                svc.stop_scheduler()
            checkpointer.stop()
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
        problem = store_problem(ctx.service.engine)
        if problem is not None:
            headers = {"Retry-After": str(STORE_RETRY_AFTER)}
            return PlainTextResponse(f"store unavailable: {problem}\n", status_code=503, headers=headers)
        return PlainTextResponse("ok\n")

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response:
        await check_metrics_access(request, ctx.settings.metrics_token)
        return Response(await run_in_threadpool(metrics.render), media_type=CONTENT_TYPE)

    closers.append(_mount_git_hook(app, ctx))
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    app.add_middleware(AccessLog, metrics=metrics)
    return app


def _mount_git_hook(app: FastAPI, ctx: ServerContext) -> Callable[[], None]:
    """POST /api/v1/hooks/git; returns what to close on shutdown.

    The secret and repositories come from FREIGHT_GIT_HOOK_SECRET and FREIGHT_BUILD_REPOS (without a
    secret it refuses every request); builds submit through this server's JobService. The hook checks
    its callers itself (an HMAC signature, not an API token)."""
    router, trigger = router_from_env(
        ctx.settings, ctx.service, status_dependencies=[Depends(current_principal)]
    )
    app.state.build_trigger = trigger  # the builds API (server/api/builds.py) runs builds through it
    app.include_router(router)  # its paths are under /api/v1 already
    return trigger.builds.close
