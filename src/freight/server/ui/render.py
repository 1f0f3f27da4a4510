"""Render the UI's Jinja2 templates: whole pages and the fragments the script swaps in.

Every template gets the signed-in user, the navigation entry to mark (the template's folder or name:
`pipelines/run.html` marks "pipelines"), the time of rendering and the server's base URL, plus the
filters that put jobs, runs and releases into words.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from freight.jobs.placement import node_name
from freight.jobs.states import TERMINAL, JobState
from freight.server import views
from freight.server.deps import ServerContext
from freight.server.tokens import Principal
from freight.units import format_bytes, format_duration

TEMPLATES = Path(__file__).parent.parent / "templates"


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES)
    env = templates.env
    env.filters.update(
        bytes=views.bytes_text,
        iso=views.iso,
        clock=views.clock,
        ago=views.ago,
        tone=views.tone,
        node_name=node_name,
        state_label=views.state_label,
        run_tone=views.run_tone,
        run_label=views.run_label,
        duration=lambda s: "-" if s is None else format_duration(s),
    )
    env.globals.update(
        run_time=views.run_time,
        elapsed=views.elapsed,
        format_bytes=format_bytes,
        states=[s.value for s in JobState],
        terminal=[s.value for s in TERMINAL],
    )
    return templates


class Pages:
    """`pages(request, "jobs.html", user, jobs=...)` renders a template into a response."""

    def __init__(self) -> None:
        self.templates = _templates()

    def __call__(
        self, request: Request, name: str, principal: Principal | None, status: int = 200, **data: Any
    ) -> HTMLResponse:
        ctx: ServerContext = request.app.state.freight
        context = {
            "user": principal,
            "nav": name.split("/")[0].split(".")[0],
            "now": time.time(),
            "base": ctx.base_url,
            **data,
        }
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    def not_found(
        self, request: Request, principal: Principal, what: str, back: str, where: str
    ) -> HTMLResponse:
        """The 404 page: `what` was not found; a link `back` to the list it belongs to (`where`)."""
        return self(request, "notfound.html", principal, status=404, what=what, back=back, where=where)
