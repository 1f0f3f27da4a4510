"""Request authentication: a bearer token (API, CLI) or the sign-in cookie (web UI).

A cookie-authenticated request that changes state must also carry the `X-Freight-UI` header. Browsers
only send custom headers from pages of the same origin, so another site cannot make a signed-in
browser cancel jobs (CSRF); the cookie is also SameSite=Strict and HttpOnly.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from freight.errors import PermissionDeniedError, UserError
from freight.server.deps import get_ctx
from freight.server.tokens import Principal, authenticate

COOKIE = "freight_token"
UI_HEADER = "x-freight-ui"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class Unauthorized(UserError):
    status_code = 401


def token_from(request: Request) -> tuple[str | None, bool]:
    """The token text and whether it came from the cookie."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("the Authorization header must be `Bearer <token>`", where="Authorization")
        return value.strip(), False
    cookie = request.cookies.get(COOKIE)
    return (cookie, True) if cookie else (None, False)


async def current_principal(request: Request) -> Principal:
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    text, from_cookie = token_from(request)
    if text is None:
        raise Unauthorized(
            "this needs an API token",
            where="Authorization",
            hint="send `Authorization: Bearer <token>`; create one with `freight tokens create`",
        )
    if from_cookie and request.method not in _SAFE and request.headers.get(UI_HEADER) != "1":
        raise PermissionDeniedError(
            "a signed-in browser must send the X-Freight-UI header to change anything", where=UI_HEADER
        )
    ctx = get_ctx(request)
    principal = await run_in_threadpool(authenticate, ctx.service.engine, text)
    if principal is None:
        raise Unauthorized("the token is unknown or was revoked", where="Authorization")
    request.state.principal = principal
    return principal


async def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.admin:
        raise PermissionDeniedError("this needs an admin token", hint="create one with --admin")
    return principal


Caller = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(admin_principal)]


def check_queue(principal: Principal, queue: str, where: str = "queue") -> None:
    if not principal.may_use(queue):
        raise PermissionDeniedError(
            f"this token may not use queue {queue!r}",
            where=where,
            hint=f"it is limited to: {principal.scope}",
        )
