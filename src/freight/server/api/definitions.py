"""/api/v1/definitions: named, versioned job templates, and running jobs from them
(`POST /api/v1/definitions/NAME[:VERSION]/jobs` with the fields to override).

Registering or deleting a version changes what every later submission of NAME runs, so it needs a
token that is not limited to queues. A token limited to queues sees only the definitions whose template
runs in one of them (a template carries its env, which may say more than its owner meant to share).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from fastapi.responses import JSONResponse

from freight.errors import NotFoundError, PermissionDeniedError
from freight.server.api.common import check_input, check_units, reply, visible_definitions
from freight.server.api.jobs import SUBMITTED, IdempotencyKey, submit_job
from freight.server.auth import Caller
from freight.server.deps import ServerContext, request_ctx
from freight.server.schemas import DefinitionCreated, DefinitionDeleted, DefinitionIn, DefinitionOut
from freight.server.tokens import Principal

router = APIRouter(tags=["definitions"])
Ctx = Annotated[ServerContext, Depends(request_ctx)]
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
Ref = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_.-]{1,128}(:[0-9]{1,9})?$", description="NAME or NAME:VERSION")
]


@router.get(
    "/definitions",
    response_model=None,
    responses={200: {"model": list[DefinitionOut]}},
    summary="All definitions, newest version first",
)
def list_definitions(ctx: Ctx, principal: Caller) -> JSONResponse:
    return reply(_visible(ctx, principal))


def _visible(ctx: ServerContext, principal: Principal) -> list[dict[str, Any]]:
    return visible_definitions(ctx.service.definitions(), principal)


def _check_writer(principal: Principal, what: str) -> None:
    if not principal.admin and principal.queues is not None:
        raise PermissionDeniedError(f"a token limited to queues may not {what} definitions")


@router.get(
    "/definitions/{name}",
    response_model=None,
    responses={200: {"model": list[DefinitionOut]}},
    summary="The versions of one definition",
)
def get_definition(ctx: Ctx, principal: Caller, name: Name) -> JSONResponse:
    rows = [d for d in _visible(ctx, principal) if d["name"] == name]
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
    _check_writer(principal, "register")
    check_input(body.name, "name")
    check_input(body.spec, "spec")
    check_units(body.spec, f"definition {body.name}")
    if body.description is not None:
        check_input(body.description, "description")
    version = ctx.service.register_definition(body.name, body.spec, body.description)
    return reply({"name": body.name, "version": version}, 201)


@router.delete(
    "/definitions/{ref}",
    response_model=None,
    responses={200: {"model": DefinitionDeleted}},
    summary="Delete one version (NAME:VERSION) or every version (NAME) of a definition",
)
def delete_definition(ctx: Ctx, principal: Caller, ref: Ref) -> JSONResponse:
    """Jobs already submitted from it are unchanged (each keeps its own spec)."""
    _check_writer(principal, "delete")
    name, _, version = ref.partition(":")
    deleted = ctx.service.delete_definition(name, int(version) if version else None)
    return reply({"name": name, "deleted": deleted})


@router.post(
    "/definitions/{ref}/jobs",
    status_code=201,
    response_model=None,
    responses=SUBMITTED,
    summary="Run a job from a definition",
)
async def run_definition(
    ctx: Ctx,
    principal: Caller,
    ref: Ref,
    body: Annotated[dict[str, Any], Body(description="Spec fields that override the template's")],
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """The latest version unless the ref pins one; the body's fields override the template's."""
    return await submit_job(ctx, principal, body, definition=ref, idempotency_key=idempotency_key)
