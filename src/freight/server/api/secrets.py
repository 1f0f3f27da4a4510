"""/api/v1/secrets (admin): store, list (names only) and delete named secrets. No call returns a value."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from freight.server.api.common import reply
from freight.server.auth import Admin
from freight.server.deps import ServerContext, request_ctx

router = APIRouter(tags=["secrets"])
Ctx = Annotated[ServerContext, Depends(request_ctx)]
SecretPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class SecretIn(BaseModel):
    model_config = {"extra": "forbid"}
    value: str = Field(min_length=1, max_length=64 * 1024)


class SecretOut(BaseModel):
    name: str
    created_at: float
    updated_at: float


class SecretSet(BaseModel):
    name: str
    replaced: bool


@router.get(
    "/secrets", response_model=None, responses={200: {"model": list[SecretOut]}}, summary="Secrets (admin)"
)
def list_secrets(ctx: Ctx, _admin: Admin) -> JSONResponse:
    """Names and times; never values."""
    return reply(ctx.service.secrets.names())


@router.put(
    "/secrets/{name}",
    response_model=None,
    responses={200: {"model": SecretSet}},
    summary="Store a secret (admin)",
)
def put_secret(ctx: Ctx, _admin: Admin, name: SecretPath, body: SecretIn) -> JSONResponse:
    replaced = ctx.service.secrets.set(name, body.value)
    return reply({"name": name, "replaced": replaced})


@router.delete("/secrets/{name}", response_model=None, summary="Delete a secret (admin)")
def delete_secret(ctx: Ctx, _admin: Admin, name: SecretPath) -> JSONResponse:
    ctx.service.secrets.remove(name)
    return reply({"name": name, "removed": True})
