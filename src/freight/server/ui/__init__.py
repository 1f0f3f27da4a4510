"""The web UI: server-rendered pages (Jinja2) that a little hand-written JS keeps live.

Pages render complete HTML; the JS refreshes the live parts by fetching HTML fragments from /ui/...
(rendered by the same templates, so there is one source of markup), tails logs over SSE, and calls
the JSON API for actions. Sign-in takes an API token and keeps it in an HttpOnly cookie.

One module per room: `jobs` (jobs, queues, capacity, definitions), `pipelines`, `apps`, `services`; `render`
renders the templates, `session` reads the sign-in cookie, `workloads` opens the run and build stores.
"""

from __future__ import annotations

from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from freight.server.auth import COOKIE
from freight.server.tokens import authenticate
from freight.server.ui.apps import app_pages
from freight.server.ui.builds import build_pages
from freight.server.ui.jobs import job_pages
from freight.server.ui.pipeline_grid import grid_pages
from freight.server.ui.pipelines import pipeline_pages
from freight.server.ui.render import Pages
from freight.server.ui.services import service_pages
from freight.server.ui.session import Ctx, SignInRequired, cookie_principal


def ui_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    page = Pages()

    # --- sign in ------------------------------------------------------------------------------------

    @router.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse("/jobs", status_code=303)

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, ctx: Ctx, next: str = "/jobs") -> Response:
        if await cookie_principal(request, ctx) is not None:
            return RedirectResponse(_safe_next(next), status_code=303)
        return page(request, "login.html", None, next=_safe_next(next), error=None)

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request, ctx: Ctx) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        target = _safe_next((form.get("next") or ["/jobs"])[0])
        principal = await run_in_threadpool(authenticate, ctx.service.engine, token) if token else None
        if principal is None:
            error = "That token is unknown or was revoked." if token else "Paste an API token to sign in."
            return page(request, "login.html", None, status=401, next=target, error=error)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=30 * 86400,
        )
        return response

    @router.post("/logout")
    def logout() -> RedirectResponse:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    router.include_router(job_pages(page))
    router.include_router(pipeline_pages(page))
    router.include_router(grid_pages(page))
    router.include_router(app_pages(page))
    router.include_router(build_pages(page))
    router.include_router(service_pages(page))
    return router


def _safe_next(target: str) -> str:
    """Only same-site paths: never redirect a sign-in to another host."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/jobs"
    return target


async def _sign_in(request: Request, _exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.url.path.startswith("/ui/"):
        return Response("sign in again\n", status_code=401, media_type="text/plain")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def install_ui_redirects(app: FastAPI) -> None:
    """Pages without a sign-in cookie go to /login (the API answers 401 JSON instead)."""
    app.add_exception_handler(SignInRequired, _sign_in)
