"""Request authentication: a bearer token (API, CLI) or the sign-in cookie (web UI).

A cookie-authenticated request that changes state must also carry the `X-Freight-UI` header. Browsers
only send custom headers from pages of the same origin, so another site cannot make a signed-in
browser cancel jobs (CSRF); the cookie is also SameSite=Strict and HttpOnly.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from freight.errors import PermissionDeniedError, UserError
from freight.server.deps import ServerContext, get_ctx
from freight.server.tokens import Principal

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


async def resolve_token(ctx: ServerContext, text: str) -> Principal | None:
    """The principal of a token text: a fresh cache entry answers on the loop; the store is read in
    a thread."""
    return await ctx.tokens.lookup(text)


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
    principal = await resolve_token(get_ctx(request), text)
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


async def check_metrics_access(request: Request, metrics_token: str | None) -> None:
    """/metrics is open unless FREIGHT_METRICS_TOKEN is set; then it takes that token (what a
    Prometheus scrape config sends as its bearer token) or an admin API token."""
    if metrics_token is None:
        return
    text, _ = token_from(request)
    if text is None:
        raise Unauthorized(
            "/metrics needs a token", where="Authorization", hint="send `Authorization: Bearer <token>`"
        )
    if hmac.compare_digest(text.encode(), metrics_token.encode()):
        return
    principal = await resolve_token(get_ctx(request), text)
    if principal is None or not principal.admin:
        raise Unauthorized("the token may not read /metrics", where="Authorization")


async def authenticate_first(request: Request) -> None:
    """Raise Unauthorized when a request to the API has no valid token. The validation-error handler
    calls this so an unauthenticated request with a bad body is answered 401, not 422: no one learns
    what a valid body looks like, or anything else, without a token."""
    if getattr(request.state, "principal", None) is not None:
        return
    try:
        await current_principal(request)
    except PermissionDeniedError:
        return  # authenticated, just not allowed this way: the validation error is the better answer
