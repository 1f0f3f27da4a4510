"""Services pages: every service with its status and replicas (/services), and one service's spec,
revision and live replicas (/services/{name}). Read-only: deploy, roll back, scale and remove with
`freight service ...` or /api/v1/services. A signed-in token sees the services of its queues only.
Both refresh live like the jobs pages: app.js re-fetches their fragments (/ui/services/rows,
/ui/services/{name}/panel) into the elements that name them in data-refresh."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from freight.errors import NotFoundError
from freight.server.deps import get_ctx
from freight.server.ui.render import Pages
from freight.server.ui.session import User
from freight.services.deploy import describe
from freight.services.spec import LABEL
from freight.services.store import ServiceStore

#: status -> the badge tone the stylesheet knows
TONES = {"ready": "ok", "deploying": "run", "rolled_back": "warn", "failing": "bad", "removing": "muted"}


def service_pages(page: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def service_rows(request: Request, user: User) -> dict[str, Any]:
        ctx = get_ctx(request)
        rows = [row for row in ServiceStore(ctx.service.engine).all() if user.may_use(row.spec.queue)]
        live = {
            row.name: describe(row, ctx.service.list_jobs(label={LABEL: row.name}, limit=200))["replicas"]
            for row in rows
        }
        return {"services": rows, "live": live, "tones": TONES}

    def service_view(request: Request, user: User, name: str, template: str) -> HTMLResponse:
        ctx = get_ctx(request)
        try:
            row = ServiceStore(ctx.service.engine).get(name)
            if not user.may_use(row.spec.queue):
                raise NotFoundError(name)
        except NotFoundError:
            return page.not_found(request, user, f"service {name}", "/services", "services")
        data = describe(row, ctx.service.list_jobs(label={LABEL: name}, limit=200))
        return page(request, template, user, service=row, data=data, tones=TONES)

    @router.get("/services", response_class=HTMLResponse)
    def services_page(request: Request, user: User) -> HTMLResponse:
        return page(request, "services/services.html", user, **service_rows(request, user))

    @router.get("/ui/services/rows", response_class=HTMLResponse)
    def services_fragment(request: Request, user: User) -> HTMLResponse:
        return page(request, "services/_service_rows.html", user, **service_rows(request, user))

    @router.get("/services/{name}", response_class=HTMLResponse)
    def service_page(request: Request, user: User, name: str) -> HTMLResponse:
        return service_view(request, user, name, "services/service.html")

    @router.get("/ui/services/{name}/panel", response_class=HTMLResponse)
    def service_panel(request: Request, user: User, name: str) -> HTMLResponse:
        return service_view(request, user, name, "services/_service_panel.html")

    return router
