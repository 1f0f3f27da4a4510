"""/api/v1/services: deploy, list, show, roll back, scale and remove long-running services.

A service lives in a queue (its replicas run there); a token sees and changes only the services of
its queues, and one of another queue looks like no service at all. Gateway routes (`hosts`,
`prefix`) are the operator's to hand out: only an admin token or one for every queue may add a host
or set a prefix; a token limited to queues may redeploy, scale or roll back a service keeping (or
dropping) the routes it has. A host or prefix someone else holds is refused either way (409). The
controller beside the scheduler does the work; these calls write the desired state and return at once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from freight.errors import ConflictError, NotFoundError, PermissionDeniedError
from freight.server.api.common import check_input, reply
from freight.server.auth import Caller, check_queue
from freight.server.deps import ServerContext, request_ctx
from freight.server.tokens import Principal
from freight.services.deploy import describe, make_spec
from freight.services.spec import LABEL, ServiceSpec
from freight.services.store import ServiceRow, ServiceStore

router = APIRouter(tags=["services"])
Ctx = Annotated[ServerContext, Depends(request_ctx)]
ServiceName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="A service name")]


class ServiceIn(BaseModel):
    model_config = {"extra": "forbid"}
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    image: str = Field(min_length=1, max_length=1000, description="NAME[:TAG] or NAME@sha256:...")
    port: int = Field(ge=1, le=65535, description="Port on the server's 127.0.0.1 routed to replicas")
    command: list[str] | None = Field(default=None, description="Default: the image's command")
    replicas: int = Field(default=1, ge=0, le=50)
    health: str = "/healthz"
    health_timeout: float = Field(default=30.0, gt=0, le=3600)
    env: dict[str, str] = Field(default_factory=dict)
    memory: str | int | None = Field(default=None, description="Per replica, e.g. 128M")
    cpus: str | float | None = Field(default=None, description="Per replica, e.g. 0.5")
    queue: str = "default"
    hosts: list[str] = Field(default_factory=list, description="The gateway routes these host names here")
    prefix: str | None = Field(default=None, description="... and this path prefix (stripped)")


class ScaleIn(BaseModel):
    model_config = {"extra": "forbid"}
    replicas: int = Field(ge=0, le=50)


def _visible(store: ServiceStore, principal: Principal, name: str) -> ServiceRow:
    row = store.get(name)
    if not principal.may_use(row.spec.queue):
        raise NotFoundError(f"no service {name!r}", where="name", hint="GET /api/v1/services lists them")
    return row


def _store(ctx: ServerContext) -> ServiceStore:
    return ServiceStore(ctx.service.engine)


@router.get("/services", response_model=None, summary="Services")
def list_services(ctx: Ctx, principal: Caller) -> JSONResponse:
    """Every service this token may see: spec, revision, status and message."""
    rows = [row for row in _store(ctx).all() if principal.may_use(row.spec.queue)]
    return reply([row.to_dict() for row in rows])


@router.post("/services", response_model=None, status_code=202, summary="Deploy a service")
async def deploy_service(ctx: Ctx, principal: Caller, body: ServiceIn) -> JSONResponse:
    """A new revision (the service is created if new): the image is pinned to a digest, and the
    replicas are replaced one at a time, rolled back by themselves if a new one never gets healthy."""
    check_input(body.model_dump(), "")
    check_queue(principal, body.queue)
    return await run_in_threadpool(_deploy, ctx, principal, body)


def _deploy(ctx: ServerContext, principal: Principal, body: ServiceIn) -> JSONResponse:
    store = _store(ctx)
    try:
        existing: ServiceRow | None = store.get(body.name)
    except NotFoundError:
        existing = None
    if existing is not None and not principal.may_use(existing.spec.queue):
        raise ConflictError(f"the service name {body.name!r} is taken", where="name")
    spec = make_spec(
        ctx.settings,
        image=body.image,
        port=body.port,
        command=body.command,
        replicas=body.replicas,
        health=body.health,
        health_timeout=body.health_timeout,
        env=body.env,
        memory=body.memory,
        cpus=body.cpus,
        queue=body.queue,
        hosts=body.hosts,
        prefix=body.prefix,
    )
    check_routes(principal, spec, existing.spec if existing else None)
    return reply(store.deploy(body.name, spec).to_dict(), status=202)


def check_routes(principal: Principal, spec: ServiceSpec, held: ServiceSpec | None) -> None:
    """PermissionDeniedError when a token limited to queues would give a service a host or prefix it
    does not hold now (`held`: its current spec)."""
    if principal.admin or principal.queues is None:
        return
    added = sorted(set(spec.hosts) - set(held.hosts if held else ()))
    if added:
        raise PermissionDeniedError(
            f"adding host {added[0]} to a service needs an admin token or one for every queue",
            where="hosts",
            hint=f"this token is limited to: {principal.scope}; ask an admin to route it",
        )
    if spec.prefix is not None and spec.prefix != (held.prefix if held else None):
        raise PermissionDeniedError(
            f"setting prefix {spec.prefix} needs an admin token or one for every queue",
            where="prefix",
            hint=f"this token is limited to: {principal.scope}; ask an admin to route it",
        )


@router.get("/services/{name}", response_model=None, summary="One service and its replicas")
def get_service(ctx: Ctx, principal: Caller, name: ServiceName) -> JSONResponse:
    row = _visible(_store(ctx), principal, name)
    jobs = ctx.service.list_jobs(label={LABEL: name}, limit=200)
    return reply(describe(row, jobs))


@router.post("/services/{name}/rollback", response_model=None, status_code=202, summary="Roll back")
def rollback_service(ctx: Ctx, principal: Caller, name: ServiceName) -> JSONResponse:
    """Back to the revision before the last deploy, rolled like a deploy."""
    store = _store(ctx)
    row = _visible(store, principal, name)
    if row.previous is not None:
        check_routes(principal, row.previous, row.spec)
    return reply(store.rollback(name).to_dict(), status=202)


@router.post("/services/{name}/scale", response_model=None, status_code=202, summary="Scale")
def scale_service(ctx: Ctx, principal: Caller, name: ServiceName, body: ScaleIn) -> JSONResponse:
    store = _store(ctx)
    _visible(store, principal, name)
    return reply(store.scale(name, body.replicas).to_dict(), status=202)


@router.delete("/services/{name}", response_model=None, status_code=202, summary="Remove a service")
def delete_service(ctx: Ctx, principal: Caller, name: ServiceName) -> JSONResponse:
    """Every replica is stopped and the service forgotten (by the controller, a moment later)."""
    store = _store(ctx)
    _visible(store, principal, name)
    store.mark_removing(name)
    return reply({"name": name, "removing": True}, status=202)
