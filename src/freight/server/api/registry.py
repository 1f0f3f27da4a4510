"""/api/v1/registry/token: the token endpoint of the local registry's token auth (the Docker token
flow; runtime/registry_auth.py has the grants). podman and freight's registry client call it with
Basic auth, a freight API token as the password; a bearer token works too."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from freight.errors import UserError
from freight.runtime.registry_auth import SERVICE, ensure_key, grant, mint, parse_scope
from freight.server.deps import ServerContext, get_ctx
from freight.server.tokens import authenticate

router = APIRouter(tags=["registry"])
Ctx = Annotated[ServerContext, Depends(get_ctx)]


class RegistryUnauthorized(UserError):
    status_code = 401


def _password(request: Request) -> str | None:
    header = request.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() != "basic":
        return None
    try:
        _, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return password or None


@router.get("/registry/token", response_model=None, summary="A registry token (Docker token auth)")
async def registry_token(
    request: Request,
    ctx: Ctx,
    service: Annotated[str, Query(max_length=200)] = SERVICE,
    scope: Annotated[list[str] | None, Query(max_length=20)] = None,
) -> JSONResponse:
    """A JWT granting what the caller's freight token may do of `scope` (pull: any token; push: an
    admin or unscoped token; delete: admin). Actions it may not have are left out of the grant."""
    if service != SERVICE:
        raise UserError(f"unknown service {service!r}", where="service", hint=f"this realm is for {SERVICE}")
    text = _password(request)
    principal = await run_in_threadpool(authenticate, ctx.service.engine, text) if text else None
    if principal is None:
        return JSONResponse(
            {
                "status": 401,
                "message": "the registry needs a freight API token as the password",
                "where": "Authorization",
                "hint": "podman login -u freight --password-stdin REGISTRY",
            },
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="freight registry"'},
        )
    requested = []
    for index, item in enumerate(scope or []):
        for part in item.split(" "):
            access = parse_scope(part) if part else None
            if part and access is None:
                raise UserError(f"scope {part!r} is not TYPE:NAME:ACTIONS", where=f"scope.{index}")
            if access is not None:
                requested.append(access)
    granted = grant(requested, admin=principal.admin, all_queues=principal.queues is None)
    key, _ = await run_in_threadpool(ensure_key, ctx.settings.home)
    return JSONResponse(mint(key, principal.name, granted))
