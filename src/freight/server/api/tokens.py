"""/api/v1/tokens (admin) and /api/v1/whoami."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from freight.server.api.common import check_input, reply
from freight.server.auth import Admin, Caller
from freight.server.deps import ServerContext, request_ctx
from freight.server.schemas import TokenCreated, TokenIn, WhoAmI
from freight.server.tokens import TokenInfo, create_token, list_tokens, revoke_token

router = APIRouter(tags=["tokens"])
Ctx = Annotated[ServerContext, Depends(request_ctx)]


@router.get("/whoami", response_model=None, responses={200: {"model": WhoAmI}}, summary="The calling token")
def whoami(principal: Caller) -> JSONResponse:
    queues = sorted(principal.queues) if principal.queues is not None else None
    return reply(
        {"token_id": principal.token_id, "name": principal.name, "admin": principal.admin, "queues": queues}
    )


@router.get(
    "/tokens", response_model=None, responses={200: {"model": list[TokenInfo]}}, summary="API tokens (admin)"
)
def tokens_ls(
    ctx: Ctx, _admin: Admin, include_revoked: Annotated[bool, Query(alias="all")] = False
) -> JSONResponse:
    return reply([t.to_dict() for t in list_tokens(ctx.service.engine, include_revoked=include_revoked)])


@router.post(
    "/tokens",
    status_code=201,
    response_model=None,
    responses={201: {"model": TokenCreated}},
    summary="Create a token (admin)",
)
def tokens_create(ctx: Ctx, _admin: Admin, body: TokenIn) -> JSONResponse:
    check_input(body.name, "name")
    info, text = create_token(ctx.service.engine, body.name, queues=body.queues, admin=body.admin)
    return reply(info.to_dict() | {"token": text}, 201)


@router.delete(
    "/tokens/{ref}",
    response_model=None,
    responses={200: {"model": TokenInfo}},
    summary="Revoke a token by id or name (admin)",
)
def tokens_revoke(ctx: Ctx, _admin: Admin, ref: Annotated[str, Path(max_length=128)]) -> JSONResponse:
    check_input(ref, "token")
    info = revoke_token(ctx.service.engine, ref)
    ctx.tokens.evict(info.id)  # revoked through this server: refused from the next request on
    return reply(info.to_dict())
