"""Build pages: one recorded build (/builds/{id}) with its task graph — each task in its status's
colour, the critical path drawn bold — above the table of its tasks, their jobs and times. Read-only;
builds start with `freight build` (or the API). A build's id is printed when it starts and is in
`freight build --json`'s summary."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from freight.server.ui import graph
from freight.server.ui.render import Pages
from freight.server.ui.session import User
from freight.server.ui.workloads import workloads
from freight.units import format_duration

#: a task's status -> the badges' tone
TONE = {
    "built": "ok",
    "cached": "ok",
    "failed": "bad",
    "cancelled": "muted",
    "skipped": "wait",
    "noop": "muted",
}


def build_pages(page: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/builds/{build_id}", response_class=HTMLResponse)
    def build_page(request: Request, user: User, build_id: str) -> HTMLResponse:
        run = workloads(request).builds.store.run(build_id)
        if run is None:
            return page.not_found(request, user, f"build {build_id}", "/apps", "apps")
        summary = run["summary"]
        return page(request, "builds/build.html", user, build=summary, graph=task_graph(summary))

    return router


def task_graph(summary: dict[str, Any]) -> Markup:
    """The build's tasks (those with a script) and what each waited for, the critical path bold."""
    tasks = [t for t in summary.get("tasks", []) if t["status"] != "noop"]
    names = {t["task"] for t in tasks}
    edges = {name: [d for d in deps if d in names] for name, deps in (summary.get("graph") or {}).items()}
    nodes = [
        graph.Node(
            t["task"],
            f"{t['status']} · {format_duration(t.get('duration'))}"
            if t["status"] in ("built", "failed")
            else t["status"],
            TONE.get(t["status"], "muted"),
            f"/jobs/{t['job_id']}" if t.get("job_id") else None,
        )
        for t in tasks
    ]
    critical = list(summary.get("critical_path", {}).get("tasks", []))
    return graph.render(nodes, edges, critical=critical, title=f"tasks of build {summary.get('id')}")
