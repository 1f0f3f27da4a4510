"""Every error leaves the API as JSON: {"status", "message", "where", "hint"}.

Bad input (UserError, request validation) is a 4xx naming the field path; anything else is a logged
500 whose body says only that it was our fault, never a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from freight.db.engine import STORE_RETRY_AFTER, store_unavailable
from freight.errors import TransientError, UserError
from freight.server.auth import authenticate_first

log = logging.getLogger("freight.server")


class Problem(BaseModel):
    where: str | None
    message: str


class ErrorBody(BaseModel):
    status: int
    message: str
    where: str | None = None
    hint: str | None = None
    problems: list[Problem] | None = None


#: documented on every API route, so clients (and schemathesis) know the error shape
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad input"},
    401: {"model": ErrorBody, "description": "No token, or an unknown or revoked one"},
    403: {"model": ErrorBody, "description": "The token may not do this"},
    404: {"model": ErrorBody, "description": "No such thing (or not visible to this token)"},
    409: {"model": ErrorBody, "description": "Clashes with the current state"},
    422: {"model": ErrorBody, "description": "The request does not match the schema"},
    503: {"model": ErrorBody, "description": "The store is busy (locked) or unreachable; nothing changed"},
}


def error_response(
    status: int,
    message: str,
    *,
    where: str | None = None,
    hint: str | None = None,
    problems: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"status": status, "message": message, "where": where, "hint": hint}
    if problems:
        body["problems"] = problems
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _loc_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        kind = parts.pop(0)
        if not parts:
            return "body" if kind == "body" else kind
        if kind in ("query", "path", "header"):
            return ".".join(str(p) for p in parts)
    return ".".join(str(p) for p in parts) or "body"


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown field; check its spelling"
    if error.get("type") == "json_invalid":
        return "the body is not valid JSON"
    return str(error.get("msg", "invalid value")).removeprefix("Value error, ")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UserError)
    async def _user_error(_request: Request, exc: UserError) -> JSONResponse:
        return error_response(exc.status_code, exc.message, where=exc.where, hint=exc.hint)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.url.path.startswith("/api/") and not _signed_by_hook(request):
            try:
                await authenticate_first(request)
            except UserError as denied:
                return error_response(
                    denied.status_code, denied.message, where=denied.where, hint=denied.hint
                )
        errors = list(exc.errors())
        problems = [{"where": _loc_path(e.get("loc", ())), "message": _message(e)} for e in errors]
        first = problems[0] if problems else {"where": None, "message": "invalid request"}
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
        return error_response(422, f"{first['message']}{suffix}", where=first["where"], problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(exc.status_code, message)

    @app.exception_handler(TransientError)
    async def _transient(_request: Request, exc: TransientError) -> JSONResponse:
        # may succeed if retried (a store that failed one submission of a group commit)
        response = error_response(503, str(exc), hint="try again shortly")
        response.headers["Retry-After"] = str(STORE_RETRY_AFTER)
        return response

    @app.exception_handler(OperationalError)
    async def _store_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        # a store locked past its busy timeout, or a database server gone: nothing was changed (the
        # transaction did not commit), and a retry may succeed. The details (hosts, ports) stay in the
        # server's log. Any other OperationalError (a missing table) is a bug: a 500.
        if not store_unavailable(exc):
            return await _bug(request, exc)
        first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else "unavailable"
        log.warning("store unavailable on %s %s: %s", request.method, request.url.path, first)
        response = error_response(
            503, "the store is busy or unreachable; nothing was changed", hint="try again shortly"
        )
        response.headers["Retry-After"] = str(STORE_RETRY_AFTER)
        return response

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; the server log has the details")


def _signed_by_hook(request: Request) -> bool:
    """The git hook authenticates by signature, not by token; its own checks come before validation."""
    return request.url.path.startswith("/api/v1/hooks/")
