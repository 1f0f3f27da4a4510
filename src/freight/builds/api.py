"""The builds workload in one place, for the CLI, the git hook and the demo.

`Builds.open(settings)` wires the object store, the state store and the caches; building needs a
`JobClient` on top (the embedded JobService, or a remote client).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from freight.builds.explain import Explanation, explain
from freight.builds.plan import Plan, PlanOptions, make_plan
from freight.builds.progress import Reporter
from freight.builds.results import RunSummary
from freight.builds.runner import RELEASE_TASK, Builder, RunOptions, cache_status, make_cache
from freight.builds.store import BuildStore, Deployment, Release
from freight.config import Settings
from freight.errors import NotFoundError
from freight.jobs.client import JobClient
from freight.storage.objectstore import ObjectStore

if TYPE_CHECKING:
    from starlette.requests import Request

    from freight.builds.gateway import Gateway


@dataclass(frozen=True)
class ReleaseRow:
    release: Release
    #: environments where this release is current
    current_in: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**self.release.__dict__, "current_in": list(self.current_in)}


class Builds:
    def __init__(self, settings: Settings, objects: ObjectStore, store: BuildStore) -> None:
        self.settings = settings
        self.objects = objects
        self.store = store

    @classmethod
    def open(cls, settings: Settings) -> Builds:
        settings.home.mkdir(parents=True, exist_ok=True)
        return cls(settings, ObjectStore(settings.object_store_url), BuildStore.open(settings))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Builds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # building --------------------------------------------------------------------------------------

    def plan(self, root: Path, options: PlanOptions | None = None) -> Plan:
        return make_plan(root, options or PlanOptions())

    def builder(self, client: JobClient, reporter: Reporter | None = None) -> Builder:
        return Builder(self.settings, client, objects=self.objects, store=self.store, reporter=reporter)

    def build(
        self,
        client: JobClient,
        root: Path,
        plan_options: PlanOptions | None = None,
        run_options: RunOptions | None = None,
        reporter: Reporter | None = None,
    ) -> RunSummary:
        plan = self.plan(root, plan_options)
        return self.builder(client, reporter).run(plan, run_options)

    def dry(self, plan: Plan) -> dict[str, Any]:
        """`--dry`: the plan, every task's hash and where it would come from (cache status)."""
        return plan.to_dict(cache_status(make_cache(self.settings, self.objects), plan))

    def why(self, plan: Plan, name: str, task: str = RELEASE_TASK) -> list[Explanation]:
        """Explain the task of package `name`, then (recursively) every dependency whose hash moved."""
        pkg = plan.ws.find(name)
        start = f"{pkg.name}#{task}"
        if start not in plan.graph.tasks:
            raise NotFoundError(f"{pkg.name} has no {task} task in this plan")
        cache = make_cache(self.settings, self.objects)
        out: list[Explanation] = []
        stack = [start]
        seen: set[str] = set()
        while stack:
            tid = stack.pop(0)
            if tid in seen:
                continue
            seen.add(tid)
            inputs = plan.inputs[tid]
            cached = None
            for store in (cache.local, cache.shared):
                if store is not None and store.has(plan.hashes[tid]):
                    cached = store.name
                    break
            result = explain(tid, inputs, self.store.last_task(str(plan.ws.root), tid), cached)
            out.append(result)
            if result.changed and result.previous_hash is not None:
                stack.extend(
                    c.split(" ")[1]
                    for c in result.changes
                    if c.startswith("dependency ") and " changed (hash " in c
                )
        return out

    # releases --------------------------------------------------------------------------------------

    def releases(self, app: str) -> list[ReleaseRow]:
        rows = self.store.releases(app)
        if not rows:
            raise NotFoundError(f"no releases of {app!r}", hint="build it first: `freight build`")
        envs: dict[str, list[str]] = {}
        for dep in self.store.history(app, limit=1000):
            envs.setdefault(dep.env, [])
        current = {env: self.store.current_release(app, env) for env in envs}
        return [ReleaseRow(r, tuple(sorted(e for e, rid in current.items() if rid == r.id))) for r in rows]

    def history(self, app: str, env: str | None = None, limit: int = 50) -> list[Deployment]:
        """Deploys and rollbacks of `app`, newest first."""
        return self.store.history(app, env, limit)

    def apps(self) -> list[dict[str, Any]]:
        """Every published or deployed app: its gateway route and its current release per env."""
        routes = {r.app: r for r in self.store.routes()}
        current = self.store.current_everywhere()
        return [
            {
                "app": name,
                "prefix": routes[name].prefix if name in routes else None,
                "hosts": list(routes[name].hosts) if name in routes else [],
                "spa": routes[name].spa if name in routes else None,
                "current": current.get(name, {}),
            }
            for name in sorted(set(routes) | set(current))
        ]

    def deploy(
        self, app: str, release: str | None = None, env: str = "prod", actor: str | None = None
    ) -> tuple[str, Deployment | None]:
        """Make a release current (default: what the last build of `app` produced, else the newest
        release); (release id, deployment or None if it was)."""
        if release is None:
            rows = self.store.releases(app)
            if not rows:
                raise NotFoundError(f"no releases of {app!r}", hint="build it first: `freight build`")
            release_id = self.last_built_release(app) or rows[0].id
        else:
            release_id = self.store.release(app, release).id
        return release_id, self.store.deploy(app, env, release_id, actor=actor)

    def last_built_release(self, app: str, *, runs: int = 200) -> str | None:
        """The release the latest build of `app` produced (a cache hit produces the release it built
        before, which is not the newest one when the app changed back), among the last `runs` runs."""
        for run in self.store.runs(limit=runs):
            for item in run["summary"].get("releases", []):
                if item.get("app") == app:
                    return str(item["release"])
        return None

    def rollback(self, app: str, env: str = "prod", actor: str | None = None) -> Deployment:
        return self.store.rollback(app, env, actor=actor)

    def gateway(
        self, env: str = "prod", ttl: float = 1.0, may_preview: Callable[[Request], bool] | None = None
    ) -> Gateway:
        """The gateway; release previews need `may_preview` (see `server.tokens.request_checker`)."""
        from freight.builds.gateway import Gateway  # starlette: only for the commands that serve

        return Gateway(self.store, self.objects, env=env, ttl=ttl, may_preview=may_preview)


def write_summary(settings: Settings, summary: RunSummary | dict[str, Any]) -> Path:
    """`--summarize`: the run as JSON under FREIGHT_HOME/builds/runs/ (a dict: as a server sent it)."""
    data = summary.to_dict() if isinstance(summary, RunSummary) else summary
    folder = settings.home / "builds" / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['id']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)
    return path


def open_gateway(settings: Settings, env: str = "prod", ttl: float = 1.0) -> Gateway:
    """The gateway ASGI app for `freight serve` or for mounting inside `freight up`."""
    return Builds.open(settings).gateway(env=env, ttl=ttl)
