"""Job pages: the jobs list (/jobs) and one job (/jobs/{id}), the queues (/queues), capacity
(/capacity) and definitions (/definitions). The jobs list, a job and the queues table stay live: the
script re-fetches their fragments (/ui/jobs/rows, /ui/jobs/{id}/panel, /ui/queues/table)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from freight.errors import NotFoundError, UserError
from freight.jobs.states import JobState
from freight.server import views
from freight.server.api.common import job_usage, list_visible, visible_definitions, visible_job
from freight.server.deps import ServerContext
from freight.server.tokens import Principal
from freight.server.ui.render import Pages
from freight.server.ui.session import Ctx, User

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


def job_pages(page: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

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
        # names only: queues() counts every job per queue and state, a scan of the whole table
        queues = [name for name in ctx.service.queue_names() if user.may_use(name)]
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
            cluster=ctx.service.capacity(),
        )

    @router.get("/nodes", response_class=HTMLResponse)
    def nodes_page(request: Request, ctx: Ctx, user: User) -> HTMLResponse:
        from freight.server.api.cluster import node_rows

        found = node_rows(ctx)
        return page(
            request,
            "nodes.html",
            user,
            nodes=found["nodes"],
            holder=found["scheduler"],
            cluster=ctx.service.settings.ray_address,
        )

    @router.get("/definitions", response_class=HTMLResponse)
    def definitions_page(request: Request, ctx: Ctx, user: User) -> HTMLResponse:
        rows = visible_definitions(ctx.service.definitions(), user)
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            latest.setdefault(row["name"], row)
        return page(request, "definitions.html", user, definitions=list(latest.values()), all=rows)

    return router
