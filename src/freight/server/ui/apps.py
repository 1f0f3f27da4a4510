"""Apps pages (the builds workload): every app with what is live in each environment (/apps), and one
app's releases and its deploy/rollback history (/apps/{app}). Read-only: deploy and roll back with
`freight deploy` and `freight rollback`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from freight.errors import NotFoundError
from freight.server.api.builds import BUILD_QUEUE
from freight.server.ui.render import Pages
from freight.server.ui.session import User
from freight.server.ui.workloads import workloads

if TYPE_CHECKING:
    from freight.builds.api import Builds

#: environments shown first, in this order; others follow by name
USUAL_ENVS = ("prod", "production", "staging")


@dataclass(frozen=True)
class Live:
    """The release current in one environment, and when it became current (its deploy or rollback)."""

    env: str
    release_id: str
    since: float | None
    action: str | None
    actor: str | None


def app_pages(page: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/apps", response_class=HTMLResponse)
    def apps_page(request: Request, user: User) -> HTMLResponse:
        if not user.may_use(BUILD_QUEUE):
            return page(request, "apps/apps.html", user, apps=[], envs=[])
        builds = workloads(request).builds
        apps = [
            {
                **item,
                "live": {env: live(builds, item["app"], env, rid) for env, rid in item["current"].items()},
            }
            for item in builds.apps()
        ]
        envs = env_order({env for item in apps for env in item["current"]})
        recent = [run["summary"] for run in builds.store.runs(limit=10)]
        return page(request, "apps/apps.html", user, apps=apps, envs=envs, builds=recent)

    @router.get("/apps/{app}", response_class=HTMLResponse)
    def app_page(request: Request, user: User, app: str) -> HTMLResponse:
        try:
            if not user.may_use(BUILD_QUEUE):
                raise NotFoundError(app)
            data = app_context(workloads(request).builds, app)
        except NotFoundError:
            return page.not_found(request, user, f"app {app}", "/apps", "apps")
        return page(request, "apps/app.html", user, **data)

    return router


def app_context(builds: Builds, app: str) -> dict[str, Any]:
    releases = builds.releases(app)  # NotFoundError when it has none
    current = {env: row.release.id for row in releases for env in row.current_in}
    envs = env_order(set(current))
    return {
        "app": app,
        "releases": releases,
        "live": [live(builds, app, env, current[env]) for env in envs],
        "history": builds.history(app, limit=100),
        "route": next((r for r in builds.store.routes() if r.app == app), None),
    }


def live(builds: Builds, app: str, env: str, release_id: str) -> Live:
    # Every switch of what is current appends a deployment row in the same transaction, so the
    # newest row of an environment says when (and by whom) its current release went live.
    last = builds.history(app, env, limit=1)
    if last and last[0].release_id == release_id:
        return Live(env, release_id, last[0].created_at, last[0].action, last[0].actor)
    return Live(env, release_id, None, None, None)


def env_order(envs: set[str]) -> list[str]:
    usual = [e for e in USUAL_ENVS if e in envs]
    return usual + sorted(envs - set(usual))
