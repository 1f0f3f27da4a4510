"""/api/v1/definitions: named, versioned job templates, and running jobs from them
(`POST /api/v1/definitions/NAME[:VERSION]/jobs` with the fields to override).

Registering a version changes what every later submission of NAME runs, so it needs a token that is
not limited to queues.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from fastapi.responses import JSONResponse

from freight.errors import NotFoundError, PermissionDeniedError
from freight.server.api.common import check_input, check_units, reply
from freight.server.api.jobs import SUBMITTED, IdempotencyKey, submit_job
from freight.server.auth import Caller
from freight.server.deps import ServerContext, get_ctx
from freight.server.schemas import DefinitionCreated, DefinitionIn, DefinitionOut

router = APIRouter(tags=["definitions"])
Ctx = Annotated[ServerContext, Depends(get_ctx)]
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]


@router.get(
    "/definitions",
    response_model=None,
    responses={200: {"model": list[DefinitionOut]}},
    summary="All definitions, newest version first",
)
def list_definitions(ctx: Ctx, _principal: Caller) -> JSONResponse:
    return reply(ctx.service.definitions())


@router.get(
    "/definitions/{name}",
    response_model=None,
    responses={200: {"model": list[DefinitionOut]}},
    summary="The versions of one definition",
)
def get_definition(ctx: Ctx, _principal: Caller, name: Name) -> JSONResponse:
    rows = [d for d in ctx.service.definitions() if d["name"] == name]
    if not rows:
        raise NotFoundError(f"no job definition {name!r}", where="name", hint="see `freight definitions`")
    return reply(rows)


@router.post(
    "/definitions",
    status_code=201,
    response_model=None,
    responses={201: {"model": DefinitionCreated}},
    summary="Register the next version of a definition",
)
def register(ctx: Ctx, principal: Caller, body: DefinitionIn) -> JSONResponse:
    if not principal.admin and principal.queues is not None:
        raise PermissionDeniedError("a token limited to queues may not register definitions")
    check_input(body.name, "name")
    check_input(body.spec, "spec")
    check_units(body.spec, f"definition {body.name}")
    if body.description is not None:
        check_input(body.description, "description")
    version = ctx.service.register_definition(body.name, body.spec, body.description)
    return reply({"name": body.name, "version": version}, 201)


@router.post(
    "/definitions/{ref}/jobs",
    status_code=201,
    response_model=None,
    responses=SUBMITTED,
    summary="Run a job from a definition",
)
def run_definition(
    ctx: Ctx,
    principal: Caller,
    ref: Annotated[
        str, Path(pattern=r"^[A-Za-z0-9_.-]{1,128}(:[0-9]{1,9})?$", description="NAME or NAME:VERSION")
    ],
    body: Annotated[dict[str, Any], Body(description="Spec fields that override the template's")],
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """The latest version unless the ref pins one; the body's fields override the template's."""
    return submit_job(ctx, principal, body, definition=ref, idempotency_key=idempotency_key)
