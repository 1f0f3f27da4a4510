"""Pipeline pages: recent runs (/pipelines) and one run (/pipelines/runs/{id}) with its steps, their
jobs and the QA results. Both stay live: the script re-fetches their fragments (/ui/pipelines/...)
while a run is running. Read-only; runs are started with `freight pipeline run`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from freight.errors import NotFoundError
from freight.server import views
from freight.server.api.pipelines import visible_run, visible_runs
from freight.server.deps import get_ctx
from freight.server.tokens import Principal
from freight.server.ui import graph
from freight.server.ui.render import Pages
from freight.server.ui.session import User
from freight.server.ui.workloads import workloads

if TYPE_CHECKING:
    from freight.pipelines.store import Run

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

Pipeline = Annotated[str | None, Query(max_length=100)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def pipeline_pages(page: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def run_rows(request: Request, user: Principal, pipeline: str | None, limit: int) -> dict[str, Any]:
        store = workloads(request).runs.store
        scoped = not user.admin and user.queues is not None
        found = store.list(pipeline or None, MAX_LIMIT if scoped else limit)
        runs = visible_runs(get_ctx(request), store, user, found)[:limit]
        more = min(limit * 4, MAX_LIMIT) if len(runs) == limit and limit < MAX_LIMIT else None
        query = views.filters_query(
            {"pipeline": pipeline, "limit": limit if limit != DEFAULT_LIMIT else None}
        )
        return {"runs": runs, "more": more, "query": query, "pipeline": pipeline or ""}

    @router.get("/pipelines", response_class=HTMLResponse)
    def runs_page(
        request: Request, user: User, pipeline: Pipeline = None, limit: Limit = DEFAULT_LIMIT
    ) -> HTMLResponse:
        data = run_rows(request, user, pipeline, limit)
        names = workloads(request).runs.store.pipelines()
        return page(request, "pipelines/runs.html", user, **data, pipelines=names)

    @router.get("/ui/pipelines/rows", response_class=HTMLResponse)
    def runs_fragment(
        request: Request, user: User, pipeline: Pipeline = None, limit: Limit = DEFAULT_LIMIT
    ) -> HTMLResponse:
        return page(request, "pipelines/_run_rows.html", user, **run_rows(request, user, pipeline, limit))

    def run_context(request: Request, user: Principal, run_id: str) -> dict[str, Any]:
        runs = workloads(request).runs
        run = visible_run(get_ctx(request), runs.store, user, run_id)
        if run.state == "running":
            runs.follow(run_id)  # as the API's GET does: a run whose runner went away still ends
        edges = upstream(run)
        return {"run": run, "outcome": outcome(run), "upstream": edges, "graph": step_graph(run, edges)}

    def run_view(request: Request, user: Principal, run_id: str, template: str) -> HTMLResponse:
        try:
            data = run_context(request, user, run_id)
        except NotFoundError:
            return page.not_found(request, user, f"pipeline run {run_id}", "/pipelines", "pipeline runs")
        return page(request, template, user, **data)

    @router.get("/pipelines/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, user: User, run_id: str) -> HTMLResponse:
        return run_view(request, user, run_id, "pipelines/run.html")

    @router.get("/ui/pipelines/runs/{run_id}/panel", response_class=HTMLResponse)
    def run_panel(request: Request, user: User, run_id: str) -> HTMLResponse:
        return run_view(request, user, run_id, "pipelines/_run_panel.html")

    return router


def upstream(run: Run) -> dict[str, list[str]]:
    """step -> the steps it waits for (its inputs, then what it depends on), from the run's spec."""
    found: dict[str, list[str]] = {}
    for step in run.spec.get("steps", []):
        after = [*step.get("inputs", []), *step.get("depends_on", [])]
        found[step["name"]] = list(dict.fromkeys(after))
    return found


def step_graph(run: Run, edges: dict[str, list[str]]) -> Markup:
    """The run's steps as a graph, each box in its state's colour and leading to its job."""
    nodes = [
        graph.Node(
            s.step,
            f"{s.type} · {views.run_label(s.state)}",
            views.run_tone(s.state),
            f"/jobs/{s.job_id}" if s.job_id else None,
        )
        for s in run.steps
    ]
    return graph.render(nodes, edges, title=f"steps of pipeline run {run.id}")


def outcome(run: Run) -> views.Outcome:
    """One banner: how the run ended, or how far it has got."""
    steps = run.steps
    done = sum(1 for s in steps if s.state in ("succeeded", "reused"))
    reused = sum(1 for s in steps if s.state == "reused")
    counted = f"{done} of {len(steps)} steps done" + (f" ({reused} reused)" if reused else "")
    took = views.elapsed(run.created_at, run.ended_at)
    if run.state == "running":
        running = [s.step for s in steps if s.state == "running"]
        now = f"; running {', '.join(running)}" if running else ""
        return views.Outcome("run", "Running", f"{counted}{now}, for {took} so far.")
    if run.state == "waiting":
        what = ", ".join(w.get("pipeline", "?") for w in run.spec.get("wait_for", []))
        detail = f"for pipeline(s) {what}" if what else "for its preconditions"
        return views.Outcome("wait", "Waiting", f"Waiting {detail} for {took} so far; no step has started.")
    if run.state == "succeeded":
        return views.Outcome("ok", "Succeeded", f"{counted} in {took}.")
    if run.state == "cancelled":
        return views.Outcome("muted", "Cancelled", f"{counted}; cancelled after {took}.")
    hint = f"Fix it, then `freight pipeline rerun {run.id}` runs the failed steps and what depends on them."
    detail = views.sentence(run.error) or f"{counted}."
    return views.Outcome(views.run_tone(run.state), views.run_label(run.state).capitalize(), detail, hint)
