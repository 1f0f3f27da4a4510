"""Who is signed in to the web UI: the API token in the sign-in cookie, as a FastAPI dependency.

A page without a valid cookie raises `SignInRequired`, which `ui.install_ui_redirects` turns into a
redirect to /login (or a plain 401 for the /ui/ fragments the script fetches).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from freight.server.auth import COOKIE, resolve_token
from freight.server.deps import ServerContext, request_ctx
from freight.server.tokens import Principal

Ctx = Annotated[ServerContext, Depends(request_ctx)]


class SignInRequired(Exception):
    pass


async def cookie_principal(request: Request, ctx: ServerContext) -> Principal | None:
    text = request.cookies.get(COOKIE)
    if not text:
        return None
    return await resolve_token(ctx, text)


async def signed_in(request: Request, ctx: Ctx) -> Principal:
    principal = await cookie_principal(request, ctx)
    if principal is None:
        raise SignInRequired()
    request.state.principal = principal
    return principal


User = Annotated[Principal, Depends(signed_in)]
