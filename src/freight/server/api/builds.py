"""/api/v1/apps (releases, history, deploy, rollback) and /api/v1/builds (build a workspace here).

Reads take a token that may use the queue build tasks run in (`default`). Deploying, rolling back and
starting a build need an admin token: a build runs the workspace's own scripts on this server. The
actor written to the deploy history is the token's name. Builds run in the background on this server's
job platform, through the same machinery (and the same one-at-a-time-per-folder rule) as the git hook
(`freight.builds.background`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from freight.builds import memo
from freight.builds.api import Builds
from freight.builds.background import WorkspaceBuild, start_build, start_cached_build
from freight.builds.config import DEPLOY_ENV, deploy_env
from freight.builds.fastpath import FastBuild
from freight.builds.fastpath import Options as FastOptions
from freight.builds.files import hand_over, take_back
from freight.builds.hooks import GitBuildTrigger
from freight.builds.plan import Plan, PlanOptions
from freight.builds.runner import RunOptions, cancel_jobs
from freight.builds.store import Deployment, Release
from freight.errors import ConflictError, NotFoundError, UserError
from freight.server.api.common import check_input, reply
from freight.server.auth import Admin, Caller, check_queue
from freight.server.deps import ServerContext, request_ctx
from freight.server.tokens import Principal

router = APIRouter(tags=["builds"])

#: Build tasks are jobs in the default queue (the builds runner names none), so builds and apps are
#: visible to the tokens that may use it.
BUILD_QUEUE = "default"


def builds_reader(principal: Caller) -> Principal:
    check_queue(principal, BUILD_QUEUE, where="Authorization")
    return principal


Reader = Annotated[Principal, Depends(builds_reader)]
Ctx = Annotated[ServerContext, Depends(request_ctx)]

_ENV = DEPLOY_ENV
AppPath = Annotated[str, Path(min_length=1, max_length=100, description="An app's short name")]
EnvName = Annotated[
    str, AfterValidator(deploy_env), Field(description="An environment, e.g. prod or staging")
]


class DeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    release: str | None = Field(
        None, min_length=1, max_length=40, description="Release id or prefix (default: the newest)"
    )
    env: EnvName = "prod"


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: EnvName = "prod"


class PlanIn(BaseModel):
    """What `freight build --dry` and `--why` plan: the workspace and the filters."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    workspace: str = Field(
        min_length=1, max_length=4096, description="Absolute path (on this server) inside the workspace"
    )
    packages: list[Annotated[str, Field(min_length=1, max_length=214)]] = Field(
        default_factory=list, max_length=1000, description="Only these packages (and what they need)"
    )
    tasks: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=lambda: ["build"], min_length=1, max_length=100
    )
    affected_since: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        pattern=r"^[^-]",
        description="Only what changed since this git ref",
    )


class WhyIn(PlanIn):
    app: str = Field(min_length=1, max_length=214, description="The package whose cache miss to explain")


class BuildIn(PlanIn):
    continue_: StrictBool = Field(False, alias="continue", description="Go on past a failure where possible")
    force: StrictBool = Field(False, description="Ignore cache hits")
    publish: StrictBool | None = Field(None, description="Publish releases (default: as freight.toml says)")


class AppOut(BaseModel):
    app: str
    prefix: str | None
    hosts: list[str]
    spa: bool | None
    current: dict[str, str] = Field(description="env -> current release id")


@dataclass(frozen=True)
class ReleaseOut(Release):
    """A release (the store's row) and the envs where it is current."""

    current_in: tuple[str, ...] = ()


class DeployOut(BaseModel):
    app: str
    env: str
    release: str
    changed: bool
    deployment: Deployment | None = Field(description="None when the release already was current")


class BuildOut(BaseModel):
    id: str
    state: str = Field(description="queued | running | succeeded | failed | cancelled")
    workspace: str
    run_id: str | None
    error: str | None
    started_at: float | None
    ended_at: float | None
    summary: dict[str, Any] | None = Field(description="The run summary, once the build is over")


class BuildCancelOut(BaseModel):
    id: str
    state: str = Field(description="The build's state when asked; it ends `cancelled` soon after")
    cancelled_jobs: list[str] = Field(description="The unfinished jobs of the build that were cancelled")


class BuildEventsOut(BaseModel):
    state: str
    events: list[dict[str, Any]]
    next: int = Field(description="Pass as `after` to get only newer events")


def _trigger(request: Request) -> GitBuildTrigger:
    """The server's build machinery (mounted with the git hook in `freight.server.app`)."""
    trigger: GitBuildTrigger | None = getattr(request.app.state, "build_trigger", None)
    if trigger is None:
        raise HTTPException(503, "this server does not run builds")
    return trigger


Trigger = Annotated[GitBuildTrigger, Depends(_trigger)]


def _builds(trigger: Trigger) -> Builds:
    return trigger.builds


BuildsDep = Annotated[Builds, Depends(_builds)]


# apps, releases, history ---------------------------------------------------------------------------


@router.get("/apps", response_model=None, responses={200: {"model": list[AppOut]}}, summary="Apps")
def list_apps(builds: BuildsDep, _caller: Reader) -> JSONResponse:
    """Every published or deployed app, its gateway route and its current release per environment."""
    return reply(builds.apps())


@router.get(
    "/apps/{app}/releases",
    response_model=None,
    responses={200: {"model": list[ReleaseOut]}},
    summary="An app's releases, newest first",
)
def list_releases(builds: BuildsDep, _caller: Reader, app: AppPath) -> JSONResponse:
    check_input(app, "app")
    return reply([row.to_dict() for row in builds.releases(app)])


@router.get(
    "/apps/{app}/history",
    response_model=None,
    responses={200: {"model": list[Deployment]}},
    summary="An app's deploys and rollbacks, newest first",
)
def history(
    builds: BuildsDep,
    _caller: Reader,
    app: AppPath,
    env: Annotated[str | None, Query(pattern=_ENV)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> JSONResponse:
    check_input(app, "app")
    events = builds.history(app, env, limit)
    if not events and not builds.store.releases(app):
        raise NotFoundError(f"no app {app!r}", where="app", hint="see GET /api/v1/apps")
    return reply([e.to_dict() for e in events])


@router.post(
    "/apps/{app}/deploy",
    response_model=None,
    responses={200: {"model": DeployOut}},
    summary="Make a release current (admin)",
)
def deploy(builds: BuildsDep, admin: Admin, app: AppPath, body: DeployIn) -> JSONResponse:
    check_input(app, "app")
    check_input(body.release, "release")
    release, done = builds.deploy(app, body.release, body.env, actor=admin.name)
    return reply(
        {
            "app": app,
            "env": body.env,
            "release": release,
            "changed": done is not None,
            "deployment": done.to_dict() if done else None,
        }
    )


@router.post(
    "/apps/{app}/rollback",
    response_model=None,
    responses={200: {"model": Deployment}},
    summary="Back to the release the current one replaced (admin)",
)
def rollback(builds: BuildsDep, admin: Admin, app: AppPath, body: RollbackIn | None = None) -> JSONResponse:
    check_input(app, "app")
    env = body.env if body else "prod"
    return reply(builds.rollback(app, env, actor=admin.name).to_dict())


# builds --------------------------------------------------------------------------------------------


def _workspace(text: str) -> FsPath:
    """The folder, when this server can read it; bad input names it."""
    check_input(text, "workspace")
    path = FsPath(text)
    if not path.is_absolute():
        raise UserError(f"{text!r} is not an absolute path", where="workspace")
    try:
        readable = path.is_dir() and os.access(path, os.R_OK | os.X_OK)
    except OSError:
        readable = False
    if not readable:
        raise UserError(
            f"the server cannot read the folder {text}",
            where="workspace",
            hint="a remote build reads the workspace from the server's filesystem: "
            "use the same machine or a shared volume",
        )
    return path


def _plan(
    trigger: GitBuildTrigger, body: PlanIn, listed: tuple[FsPath, dict[str, str]] | None = None
) -> Plan:
    """The plan of `body`; from the git listing the fast path made, if it made one."""
    root = _workspace(body.workspace)
    check_input(body.model_dump(), "")
    options = PlanOptions(
        tasks=tuple(body.tasks), only=tuple(body.packages), affected_since=body.affected_since
    )
    if listed is None:
        return trigger.builds.plan(root, options)
    hand_over(*listed)
    try:
        return trigger.builds.plan(root, options)
    finally:
        take_back(listed[0])  # not used (a bad freight.toml): a later plan must ask git again


@router.post(
    "/builds/dry",
    response_model=None,
    responses={200: {"model": dict[str, Any]}},
    summary="The plan of a build here, nothing runs (admin)",
)
def dry_build(trigger: Trigger, _admin: Admin, body: PlanIn) -> JSONResponse:
    """`freight build --dry --json` as this server would build: its cache, its env vars, its node."""
    return reply(trigger.builds.dry(_plan(trigger, body)))


@router.post(
    "/builds/why",
    response_model=None,
    responses={200: {"model": list[dict[str, Any]]}},
    summary="Why an app's build is a cache miss here (admin)",
)
def why_build(trigger: Trigger, _admin: Admin, body: WhyIn) -> JSONResponse:
    """`freight build --why APP --json` against the runs this server recorded."""
    check_input(body.app, "app")
    plan = _plan(trigger, body)
    return reply([e.to_dict() for e in trigger.builds.why(plan, body.app, task=body.tasks[0])])


@router.post(
    "/builds",
    status_code=202,
    response_model=None,
    responses={202: {"model": BuildOut}},
    summary="Build a workspace on this server (admin)",
)
def create_build(ctx: Ctx, trigger: Trigger, _admin: Admin, body: BuildIn) -> JSONResponse:
    """Plans at once (bad packages, tasks or refs are a 4xx), then builds in the background with this
    server's job platform; follow GET /builds/{id}/events?wait= and GET /builds/{id}.

    The default build (no packages, `--task` or `--affected-since`, no `force`) that publishes
    nothing first tries the fast path, as a local `freight build` does: when the plan memo holds and
    every task is in the local cache, it is answered without planning."""
    run = RunOptions(continue_on_error=body.continue_, force=body.force, publish=body.publish, trigger="api")
    default = not body.packages and tuple(body.tasks) == memo.TASKS and not body.affected_since
    listed = None
    if default and not body.force:
        root = _workspace(body.workspace)
        fast = FastBuild(trigger.settings, FastOptions(cwd=root), os.environ, publish=body.publish)
        found = fast.check()
        if found is not None:
            plan_options = PlanOptions()
            record = start_cached_build(
                trigger.runs,
                trigger.builds,
                ctx.service,
                fast,
                found,
                run,
                replan=lambda: trigger.builds.plan(root, plan_options),
            )
            return reply(record.to_dict(), 202)
        listed = fast.listed
    plan = _plan(trigger, body, listed)
    if default:
        # as a local build does: the next build of this folder may answer from the memo
        start = FsPath(body.workspace).resolve()
        made = memo.memo_of(plan, start, plan.ws.config.workspace.publish, os.environ)
        memo.save(trigger.settings.home, start, made)
    record = start_build(trigger.runs, trigger.builds, ctx.service, plan, run)
    return reply(record.to_dict(), 202)


_RECORDED_STATES = {"ok": "succeeded", "cancelled": "cancelled"}


def _recorded(row: dict[str, Any]) -> dict[str, Any]:
    """A run from the state store, shaped like a build record."""
    return {
        "id": row["id"],
        "state": _RECORDED_STATES.get(row["status"], "failed"),
        "workspace": row["workspace"],
        "run_id": row["id"],
        "error": None,
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "summary": row["summary"],
    }


@router.get(
    "/builds", response_model=None, responses={200: {"model": list[BuildOut]}}, summary="Builds, newest first"
)
def list_builds(
    trigger: Trigger, _caller: Reader, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> JSONResponse:
    """Builds still running on this server, then every recorded run (CLI, git hook or API)."""
    records = list(trigger.runs.records.values())
    active = [r.to_dict() for r in records if isinstance(r, WorkspaceBuild) and not r.done]
    recorded = [_recorded(row) for row in trigger.builds.store.runs(limit)]
    return reply([*sorted(active, key=lambda r: r["id"]), *recorded][:limit])


def _build(trigger: GitBuildTrigger, build_id: str) -> WorkspaceBuild | dict[str, Any]:
    check_input(build_id, "build_id")
    found = trigger.runs.get(build_id)
    if isinstance(found, WorkspaceBuild):
        return found
    row = trigger.builds.store.run(build_id)
    if row is None:
        raise NotFoundError(f"no build {build_id!r}", where="build_id", hint="see GET /api/v1/builds")
    return _recorded(row)


BuildId = Annotated[str, Path(max_length=64, description="A build (run) id")]


@router.get(
    "/builds/{build_id}", response_model=None, responses={200: {"model": BuildOut}}, summary="One build"
)
def get_build(trigger: Trigger, _caller: Reader, build_id: BuildId) -> JSONResponse:
    found = _build(trigger, build_id)
    return reply(found.to_dict() if isinstance(found, WorkspaceBuild) else found)


#: The longest a request for a build's events waits for news (clients ask again).
EVENTS_WAIT_MAX = 25.0


@router.get(
    "/builds/{build_id}/events",
    response_model=None,
    responses={200: {"model": BuildEventsOut}},
    summary="A build's progress: tasks started and finished, logs, warnings",
)
async def build_events(
    trigger: Trigger,
    _caller: Reader,
    build_id: BuildId,
    after: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=EVENTS_WAIT_MAX,
            description="Seconds to wait for an event past `after` or the build's end (a long poll)",
        ),
    ] = 0.0,
) -> JSONResponse:
    """The events past `after`. With `wait`, the answer comes as soon as there is one, or the build
    ended, or `wait` seconds passed (then `events` may be empty): no interval to poll at."""
    check_input(build_id, "build_id")
    found = trigger.runs.get(build_id)
    if not isinstance(found, WorkspaceBuild):
        # recorded before this server started (or forgotten): only the summary is left
        recorded = await run_in_threadpool(_build, trigger, build_id)
        state = recorded.state if isinstance(recorded, WorkspaceBuild) else recorded["state"]
        return reply({"state": state, "events": [], "next": after})
    await found.events.wait(after, wait)
    # read the state first: a build seen done has all its events in the feed already
    state = found.state
    events = found.events.since(after)
    return reply({"state": state, "events": events, "next": after + len(events)})


@router.post(
    "/builds/{build_id}/cancel",
    response_model=None,
    responses={200: {"model": BuildCancelOut}},
    summary="Cancel a build (admin)",
)
def cancel_build(ctx: Ctx, trigger: Trigger, _admin: Admin, build_id: BuildId) -> JSONResponse:
    """Nothing new starts and the build's unfinished jobs (labelled `build.run`) are cancelled; the
    run is recorded as cancelled once they have stopped. A build another server (or a local `freight
    build` on the same store) runs is cancelled through its jobs: its runner sees them end cancelled."""
    check_input(build_id, "build_id")
    found = trigger.runs.get(build_id)
    if isinstance(found, WorkspaceBuild):
        if found.done:
            raise ConflictError(f"build {build_id} already ended ({found.state})", where="build_id")
        state = found.state  # as it was when asked: the runner may record the end while we cancel
        jobs = found.cancel(ctx.service)
        return reply({"id": build_id, "state": state, "cancelled_jobs": jobs})
    row = trigger.builds.store.run(build_id)
    if row is not None:
        state = _RECORDED_STATES.get(row["status"], "failed")
        raise ConflictError(f"build {build_id} already ended ({state})", where="build_id")
    jobs = cancel_jobs(ctx.service, build_id)
    if not jobs:
        raise NotFoundError(f"no running build {build_id!r}", where="build_id", hint="see GET /api/v1/builds")
    return reply({"id": build_id, "state": "running", "cancelled_jobs": jobs})
