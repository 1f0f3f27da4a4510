"""Build state in the state store (SQLAlchemy Core): runs, task inputs, releases, routes, deployments.

Tables are prefixed `build_` and created by Alembic migration 0003 (freight.db.migrations), run when
the store opens. What is current per app and environment lives in `build_current`; a deploy or
rollback is one transaction that compare-and-sets that row on its version and appends to
`build_deployments`, so readers see the old release or the new one, never a mix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from freight.builds.config import check_deploy_env
from freight.config import Settings
from freight.db import claims
from freight.db.engine import make_engine, migrate
from freight.db.schema import (
    build_apps,
    build_current,
    build_deployments,
    build_releases,
    build_runs,
    build_task_runs,
)
from freight.errors import ConflictError, NotFoundError

TABLES = [
    t.name
    for t in (build_runs, build_task_runs, build_releases, build_apps, build_current, build_deployments)
]


@dataclass(frozen=True)
class Release:
    app: str
    id: str
    created_at: float
    manifest_key: str
    task_hash: str | None
    commit: str | None
    files: int
    bytes: int
    #: REGISTRY/NAME@sha256:... of the image built beside it (apps with `image = {...}`)
    image: str | None = None


@dataclass(frozen=True)
class Route:
    app: str
    hosts: tuple[str, ...]
    prefix: str
    spa: bool


def _claim(route: Route) -> claims.Owner:
    return claims.Owner(claims.APP, route.app, tuple(host.lower() for host in route.hosts), route.prefix)


@dataclass(frozen=True)
class Deployment:
    id: int
    app: str
    env: str
    release_id: str
    previous_release_id: str | None
    action: str
    actor: str | None
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class BuildStore:
    def __init__(self, engine: Engine, *, now: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.now = now
        migrate(engine)  # the tables come from Alembic migration 0003

    @classmethod
    def open(cls, settings: Settings, *, now: Callable[[], float] = time.time) -> BuildStore:
        return cls(make_engine(settings.database_url), now=now)

    def close(self) -> None:
        self.engine.dispose()

    # runs ------------------------------------------------------------------------------------------

    def record_run(
        self,
        run: dict[str, Any],
        tasks: Iterable[dict[str, Any]],
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(build_runs).values(
                    id=run["id"],
                    workspace=run["workspace"],
                    started_at=run["started_at"],
                    ended_at=run.get("ended_at"),
                    status=run["status"],
                    trigger=run.get("trigger", "cli"),
                    commit=run.get("commit"),
                    summary=json.dumps(run["summary"], sort_keys=True),
                )
            )
            rows = [
                {
                    "run_id": run["id"],
                    "workspace": run["workspace"],
                    "task": t["task"],
                    "hash": t["hash"],
                    "status": t["status"],
                    "duration": t.get("duration"),
                    "inputs": json.dumps(t["inputs"], sort_keys=True),
                    "created_at": self.now(),
                }
                for t in tasks
            ]
            if rows:
                conn.execute(insert(build_task_runs), rows)

    def last_task(self, workspace: str, task: str, before_hash: str | None = None) -> dict[str, Any] | None:
        """The latest recorded run of `task` (optionally: with a hash other than `before_hash`)."""
        query = select(build_task_runs).where(
            and_(build_task_runs.c.workspace == workspace, build_task_runs.c.task == task)
        )
        if before_hash is not None:
            query = query.where(build_task_runs.c.hash != before_hash)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(build_task_runs.c.id.desc()).limit(1)).mappings().first()
        if row is None:
            return None
        return {**row, "inputs": json.loads(row["inputs"])}

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        query = select(build_runs).order_by(build_runs.c.started_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [{**r, "summary": json.loads(r["summary"])} for r in conn.execute(query).mappings()]

    def run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(build_runs).where(build_runs.c.id == run_id)).mappings().first()
        return {**row, "summary": json.loads(row["summary"])} if row else None

    # releases --------------------------------------------------------------------------------------

    def add_release(self, release: Release) -> bool:
        """Record a release; False when it was already recorded (releases are immutable)."""
        known = select(build_releases.c.id).where(
            and_(build_releases.c.app == release.app, build_releases.c.id == release.id)
        )
        with self.engine.connect() as conn:  # a read first: a cached build re-publishes every app
            if conn.execute(known).first() is not None:
                return False
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(build_releases).values(**release.__dict__))
        except IntegrityError:
            return False
        return True

    def set_release_image(self, app: str, release_id: str, image: str) -> None:
        """Record the image built beside a release (the latest build of the same outputs wins)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(build_releases)
                .where(and_(build_releases.c.app == app, build_releases.c.id == release_id))
                .values(image=image)
            )

    def release_files(self) -> dict[tuple[str, str], int]:
        """(app, release id) -> number of files, of every recorded release."""
        query = select(build_releases.c.app, build_releases.c.id, build_releases.c.files)
        with self.engine.connect() as conn:
            return {(r.app, r.id): r.files for r in conn.execute(query)}

    def releases(self, app: str) -> list[Release]:
        query = (
            select(build_releases)
            .where(build_releases.c.app == app)
            .order_by(build_releases.c.created_at.desc(), build_releases.c.id)
        )
        with self.engine.connect() as conn:
            return [Release(**r) for r in conn.execute(query).mappings()]

    def release(self, app: str, release_id: str) -> Release:
        query = select(build_releases).where(
            and_(build_releases.c.app == app, build_releases.c.id.startswith(release_id, autoescape=True))
        )
        with self.engine.connect() as conn:
            rows = list(conn.execute(query).mappings())
        if not rows:
            raise NotFoundError(
                f"app {app!r} has no release {release_id!r}", hint=f"see `freight releases {app}`"
            )
        if len(rows) > 1:
            raise NotFoundError(
                f"{release_id!r} matches several releases of {app}", hint="give more characters"
            )
        return Release(**rows[0])

    # routes ----------------------------------------------------------------------------------------

    def check_route(self, route: Route) -> None:
        """ConflictError when a service holds one of the route's hosts or its prefix (the gateway's
        claim rule, db/claims.py). A read: set_route checks again as it writes."""
        with self.engine.connect() as conn:
            claims.check(conn, _claim(route))

    def set_route(self, route: Route) -> None:
        """Store an app's route; ConflictError (nothing written) when a service holds part of it."""
        values = {"hosts": json.dumps(list(route.hosts)), "prefix": route.prefix, "spa": route.spa}
        with claims.claiming(self.engine) as conn:
            claims.check(conn, _claim(route))
            done = conn.execute(
                update(build_apps)
                .where(build_apps.c.app == route.app)
                .values(**values, updated_at=self.now())
            )
            if done.rowcount == 0:
                conn.execute(insert(build_apps).values(app=route.app, **values, updated_at=self.now()))

    def routes(self) -> list[Route]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(build_apps).order_by(build_apps.c.app)).mappings()
            return [Route(r["app"], tuple(json.loads(r["hosts"])), r["prefix"], bool(r["spa"])) for r in rows]

    # deployments -----------------------------------------------------------------------------------

    def current(self, env: str) -> dict[str, str]:
        """app -> current release id in `env`."""
        query = select(build_current.c.app, build_current.c.release_id).where(build_current.c.env == env)
        with self.engine.connect() as conn:
            return {r.app: r.release_id for r in conn.execute(query)}

    def current_everywhere(self) -> dict[str, dict[str, str]]:
        """app -> env -> current release id, for every app deployed anywhere."""
        query = select(build_current.c.app, build_current.c.env, build_current.c.release_id)
        out: dict[str, dict[str, str]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query.order_by(build_current.c.app, build_current.c.env)):
                out.setdefault(row.app, {})[row.env] = row.release_id
        return out

    def current_release(self, app: str, env: str) -> str | None:
        return self.current(env).get(app)

    def deploy(self, app: str, env: str, release_id: str, *, actor: str | None = None) -> Deployment | None:
        """Make `release_id` current; None when it already is (nothing changes, no history row)."""
        check_deploy_env(env)
        release = self.release(app, release_id)
        return self._switch(app, env, release.id, "deploy", actor)

    def rollback(self, app: str, env: str, *, actor: str | None = None) -> Deployment:
        """Re-point to the release that the current one replaced when it was deployed."""
        check_deploy_env(env)
        with self.engine.connect() as conn:
            current = self._current_row(conn, app, env)
            if current is None:
                raise NotFoundError(
                    f"{app} has never been deployed to {env}", hint=f"run `freight deploy {app}`"
                )
            origin = (
                conn.execute(
                    select(build_deployments)
                    .where(
                        and_(
                            build_deployments.c.app == app,
                            build_deployments.c.env == env,
                            build_deployments.c.release_id == current["release_id"],
                            build_deployments.c.action == "deploy",
                        )
                    )
                    .order_by(build_deployments.c.id.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        if origin is None or origin["previous_release_id"] is None:
            raise ConflictError(
                f"{app} in {env} has no earlier release to roll back to",
                hint=f"deploy a specific release with `freight deploy {app} RELEASE --env {env}`",
            )
        done = self._switch(app, env, origin["previous_release_id"], "rollback", actor)
        if done is None:
            raise ConflictError(
                f"{app} in {env} changed while rolling back; look at `freight releases {app}`"
            )
        return done

    def history(self, app: str, env: str | None = None, limit: int = 50) -> list[Deployment]:
        query = select(build_deployments).where(build_deployments.c.app == app)
        if env is not None:
            query = query.where(build_deployments.c.env == env)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(build_deployments.c.id.desc()).limit(limit)).mappings()
            return [Deployment(**r) for r in rows]

    def _current_row(
        self, conn: Connection, app: str, env: str, *, lock: bool = False
    ) -> dict[str, Any] | None:
        query = select(build_current).where(and_(build_current.c.app == app, build_current.c.env == env))
        if lock:
            # PostgreSQL: writers queue on the row instead of failing the compare-and-set; SQLite
            # already holds the database write lock (BEGIN IMMEDIATE) and ignores FOR UPDATE.
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    def _switch(
        self, app: str, env: str, release_id: str, action: str, actor: str | None
    ) -> Deployment | None:
        for attempt in range(10):
            try:
                return self._try_switch(app, env, release_id, action, actor)
            except _Raced:
                time.sleep(0.005 * (attempt + 1))
        raise ConflictError(f"{app} in {env} kept changing under us; try again")

    def _try_switch(
        self, app: str, env: str, release_id: str, action: str, actor: str | None
    ) -> Deployment | None:
        with self.engine.begin() as conn:
            row = self._current_row(conn, app, env, lock=True)
            previous = row["release_id"] if row else None
            if previous == release_id:
                return None
            now = self.now()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(build_current).values(
                                app=app, env=env, release_id=release_id, version=1, updated_at=now
                            )
                        )
                except IntegrityError:
                    raise _Raced() from None
            else:
                done = conn.execute(
                    update(build_current)
                    .where(
                        and_(
                            build_current.c.app == app,
                            build_current.c.env == env,
                            build_current.c.version == row["version"],
                        )
                    )
                    .values(release_id=release_id, version=row["version"] + 1, updated_at=now)
                )
                if done.rowcount != 1:
                    raise _Raced()
            result = conn.execute(
                insert(build_deployments).values(
                    app=app,
                    env=env,
                    release_id=release_id,
                    previous_release_id=previous,
                    action=action,
                    actor=actor,
                    created_at=now,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return Deployment(int(key[0]), app, env, release_id, previous, action, actor, now)


class _Raced(Exception):
    """Another writer moved the pointer between our read and our write."""
