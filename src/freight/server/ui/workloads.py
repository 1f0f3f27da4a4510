"""The workload stores the UI reads: pipeline runs (RunStore) and build releases (Builds).

Both are opened once per app over the server's own engine (the JobService's, on
`settings.database_url`): no second connection pool, and nothing extra to close at shutdown — the
engine belongs to the service. The run store is the one the pipelines API follows runs with
(`api.pipelines.followers`: a `pipelines.background.Followers`), so the UI can ask it to follow a
run nobody follows, as the API does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from freight.pipelines.background import Followers
from freight.server.api.pipelines import followers
from freight.server.deps import ServerContext

if TYPE_CHECKING:
    from freight.builds.api import Builds

_ATTR = "freight_ui_builds"
_opening = threading.Lock()


@dataclass(frozen=True)
class Workloads:
    runs: Followers
    builds: Builds


def workloads(request: Request) -> Workloads:
    """The app's run followers (the lifespan makes them afresh, so they are looked up every time) and
    its Builds (opened on first use, then kept on the app)."""
    state = request.app.state
    builds: Builds | None = getattr(state, _ATTR, None)
    if builds is None:
        with _opening:
            builds = getattr(state, _ATTR, None)
            if builds is None:
                builds = _builds(state.freight)
                setattr(state, _ATTR, builds)
    return Workloads(followers(request.app), builds)


def _builds(ctx: ServerContext) -> Builds:
    # Imported here: the builds workload pulls in its runner and gateway, which the job pages never
    # need; a server that nobody asks about apps does not pay for them at start.
    from freight.builds.api import Builds
    from freight.builds.store import BuildStore
    from freight.storage.objectstore import ObjectStore

    store = BuildStore(ctx.service.engine)
    return Builds(ctx.settings, ObjectStore(ctx.settings.object_store_url), store)
