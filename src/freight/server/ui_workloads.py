"""The workload stores the UI reads: pipeline runs (RunStore) and build releases (Builds).

They are opened once per app, on first use, over the server's own engine (the JobService's, on
`settings.database_url`): no second connection pool, and nothing extra to close at shutdown — the
engine belongs to the service.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from freight.server.deps import ServerContext

if TYPE_CHECKING:
    from freight.builds.api import Builds
    from freight.pipelines.store import RunStore

_ATTR = "freight_workloads"
_opening = threading.Lock()


@dataclass(frozen=True)
class Workloads:
    runs: RunStore
    builds: Builds


def workloads(request: Request) -> Workloads:
    state = request.app.state
    found: Workloads | None = getattr(state, _ATTR, None)
    if found is None:
        with _opening:
            found = getattr(state, _ATTR, None)
            if found is None:
                found = _open(state.freight)
                setattr(state, _ATTR, found)
    return found


def _open(ctx: ServerContext) -> Workloads:
    # Imported here: the builds workload pulls in its runner and gateway, which the job pages and the
    # API never need; a server that nobody asks about builds does not pay for them at start.
    from freight.builds.api import Builds
    from freight.builds.store import BuildStore
    from freight.pipelines.store import RunStore
    from freight.storage.objectstore import ObjectStore

    engine = ctx.service.engine
    builds = Builds(ctx.settings, ObjectStore(ctx.settings.object_store_url), BuildStore(engine))
    return Workloads(RunStore(engine), builds)
