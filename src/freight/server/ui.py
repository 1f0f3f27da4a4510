"""The web UI: server-rendered pages (Jinja2) that a little hand-written JS keeps live.

Pages render complete HTML; the JS refreshes the live parts by fetching HTML fragments from /ui/...
(rendered by the same templates, so there is one source of markup), tails logs over SSE, and calls
the JSON API for actions. Sign-in takes an API token and keeps it in an HttpOnly cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from freight.errors import NotFoundError, UserError
from freight.jobs.states import JobState
from freight.server import views
from freight.server.api.common import job_usage, list_visible, visible_job
from freight.server.auth import COOKIE
from freight.server.deps import ServerContext
from freight.server.tokens import Principal, authenticate
from freight.server.ui_apps import app_pages
from freight.server.ui_pipelines import pipeline_pages
from freight.server.ui_render import Pages
from freight.server.ui_session import Ctx, SignInRequired, User, cookie_principal

PAGE_SIZE = 50


@dataclass(frozen=True)
class JobFilter:
    """The jobs list's filters and page, from the query string (the page and its live rows alike)."""

    state: Annotated[str | None, Query(max_length=32)] = None
    queue: Annotated[str | None, Query(max_length=64)] = None
    label: Annotated[str | None, Query(max_length=400)] = None
    cursor: Annotated[str | None, Query(max_length=64)] = None

    def form(self) -> dict[str, str]:
        """The filters as the page's form shows them (and links carry them)."""
        return {"state": self.state or "", "queue": self.queue or "", "label": self.label or ""}


Filter = Annotated[JobFilter, Depends()]


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

    # --- jobs ---------------------------------------------------------------------------------------

    def job_rows(ctx: ServerContext, user: Principal, filters: JobFilter) -> dict[str, Any]:
        labels = None
        if filters.label:
            key, sep, value = filters.label.partition("=")
            if not sep or not key:
                raise UserError("write a label filter as KEY=VALUE", where="label")
            labels = {key: value}
        state_value = filters.state if filters.state in {s.value for s in JobState} else None
        views_ = list_visible(
            ctx.service,
            user,
            state=state_value,
            queue=filters.queue or None,
            label=labels,
            limit=PAGE_SIZE,
            cursor=filters.cursor or None,
        )
        next_cursor = views_[-1].id if len(views_) == PAGE_SIZE else None
        return {"jobs": views_, "next_cursor": next_cursor}

    @router.get("/jobs", response_class=HTMLResponse)
    def jobs_page(request: Request, ctx: Ctx, user: User, filters: Filter) -> HTMLResponse:
        error = None
        try:
            data = job_rows(ctx, user, filters)
        except UserError as exc:
            data, error = {"jobs": [], "next_cursor": None}, str(exc)
        queues = [q["name"] for q in ctx.service.queues() if user.may_use(q["name"])]
        return page(
            request,
            "jobs.html",
            user,
            **data,
            error=error,
            filters=filters.form(),
            query=views.filters_query(filters.form()),
            cursor=filters.cursor or "",
            queues=queues,
        )

    @router.get("/ui/jobs/rows", response_class=HTMLResponse)
    def jobs_rows(request: Request, ctx: Ctx, user: User, filters: Filter) -> HTMLResponse:
        data = job_rows(ctx, user, filters)
        return page(request, "_job_rows.html", user, **data, query=views.filters_query(filters.form()))

    def job_context(ctx: ServerContext, user: Principal, job_id: str) -> dict[str, Any]:
        view = visible_job(ctx.service, user, job_id)
        queue = next((q for q in ctx.service.queues() if q["name"] == view.queue), None)
        holder = ctx.service.scheduler_holder() if view.state is JobState.QUEUED else "?"
        return {
            "job": view,
            "outcome": views.outcome(
                view, queue_paused=bool(queue and queue["paused"]), scheduler_up=holder is not None
            ),
            "usage": job_usage(ctx.service, view),
            "events": list(reversed(ctx.service.events(job_id, 100))),
            "command": " ".join(view.spec.argv()),
        }

    @router.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, ctx: Ctx, user: User, job_id: str) -> HTMLResponse:
        try:
            data = job_context(ctx, user, job_id)
        except NotFoundError:
            return page.not_found(request, user, f"job {job_id}", "/jobs", "jobs")
        return page(request, "job.html", user, **data)

    @router.get("/ui/jobs/{job_id}/panel", response_class=HTMLResponse)
    def job_panel(request: Request, ctx: Ctx, user: User, job_id: str) -> HTMLResponse:
        return page(request, "_job_panel.html", user, **job_context(ctx, user, job_id))

    # --- queues, capacity, definitions --------------------------------------------------------------

    def queue_rows(ctx: ServerContext, user: Principal) -> list[dict[str, Any]]:
        return [q for q in ctx.service.queues() if user.may_use(q["name"])]

    @router.get("/queues", response_class=HTMLResponse)
    def queues_page(request: Request, ctx: Ctx, user: User) -> HTMLResponse:
        return page(request, "queues.html", user, queues=queue_rows(ctx, user))

    @router.get("/ui/queues/table", response_class=HTMLResponse)
    def queues_table(request: Request, ctx: Ctx, user: User) -> HTMLResponse:
        return page(request, "_queues_table.html", user, queues=queue_rows(ctx, user))

    @router.get("/capacity", response_class=HTMLResponse)
    def capacity_page(request: Request, ctx: Ctx, user: User) -> HTMLResponse:
        sample = ctx.sampler.current()
        scheduler = ctx.service.scheduler
        return page(
            request,
            "capacity.html",
            user,
            sample=sample,
            interval=ctx.sampler.interval,
            holder=ctx.service.scheduler_holder(),
            isolation=scheduler.runtime.description if scheduler is not None else None,
        )

    @router.get("/definitions", response_class=HTMLResponse)
    def definitions_page(request: Request, ctx: Ctx, user: User) -> HTMLResponse:
        rows = ctx.service.definitions()
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            latest.setdefault(row["name"], row)
        return page(request, "definitions.html", user, definitions=list(latest.values()), all=rows)

    router.include_router(pipeline_pages(page))
    router.include_router(app_pages(page))
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
