"""/api/v1/pipelines/runs: start a pipeline run on the server, list and read runs, rerun, cancel.

The server owns the runs it starts: `PipelineRunner.start` submits the step jobs through this server's
JobService, then `freight.pipelines.background.Followers` records each step as its job ends, so a run
goes on when the client that started it goes away. The app's lifespan resumes the runs an earlier
process left running (`resume_runs`) and stops the followers at shutdown.

Files a pipeline names (SQL files, scripts, CSV globs) are read on the server: it is assumed to see
the same filesystem as the client (the same machine or a shared one); a path it cannot read is a 400
naming it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import select

from freight.db.schema import jobs
from freight.errors import NotFoundError, UserError
from freight.pipelines.background import Followers
from freight.pipelines.loader import Locator, Pipeline, validate
from freight.pipelines.store import Run, RunStore
from freight.server.api.common import check_input, reply
from freight.server.auth import Caller, check_queue
from freight.server.deps import ServerContext, request_ctx
from freight.server.tokens import Principal

router = APIRouter(tags=["pipelines"])
Ctx = Annotated[ServerContext, Depends(request_ctx)]
RunId = Annotated[str, PathParam(max_length=200, description="A pipeline run id")]

# --- schemas: a run is `freight.pipelines.store.Run` itself ----------------------------------------


class PipelineRunList(BaseModel):
    runs: list[Run]


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The pipeline document (what the YAML file holds), as JSON")
    spec_path: str | None = Field(
        default=None, max_length=4096, description="The pipeline file, absolute: a rerun reads it again"
    )
    base_dir: str | None = Field(
        default=None,
        max_length=4096,
        description="Where relative paths start, absolute (default: spec_path's folder)",
    )
    config_path: str | None = Field(
        default=None,
        max_length=4096,
        description="freight.toml with [connections], absolute (default: the server's FREIGHT_CONFIG)",
    )


class RerunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_failed: StrictBool = Field(
        default=True, description="Run only failed steps and what depends on them; false runs every step"
    )
    config_path: str | None = Field(
        default=None, max_length=4096, description="As for a new run (default: the server's FREIGHT_CONFIG)"
    )


RUN: dict[int | str, dict[str, Any]] = {200: {"model": Run}}
STARTED: dict[int | str, dict[str, Any]] = {201: {"model": Run, "description": "Started"}}


# --- followers ---------------------------------------------------------------------------------------


_create = threading.Lock()


def followers(app: FastAPI) -> Followers:
    """The app's followers (made on first use when the lifespan has not run, as in some tests)."""
    with _create:
        found: Followers | None = getattr(app.state, "pipeline_runs", None)
        if found is None:
            found = app.state.pipeline_runs = _followers(app.state.freight)
        return found


def resume_runs(app: FastAPI) -> Callable[[], None]:
    """For the app's lifespan: fresh followers that take up the runs left running; returns their stop."""
    runs = _followers(app.state.freight)
    with _create:
        app.state.pipeline_runs = runs
    runs.resume()
    return runs.stop


def start_planner(app: FastAPI) -> Callable[[], None]:
    """For the app's lifespan: run registered schedules (`freight pipeline schedule`) while this
    server holds the job scheduler's lease; returns the loop's stop."""
    from freight.pipelines.planner import Planner, PlannerLoop

    runs = followers(app)
    service = app.state.freight.service
    loop = PlannerLoop(
        Planner(runs.store, runs.runner, follow=runs.follow), lambda: service.scheduler is not None
    )
    loop.start()
    return loop.stop


def _followers(ctx: ServerContext) -> Followers:
    # the service's engine: closed with the service
    return Followers(ctx.service, RunStore(ctx.service.engine), ctx.settings)


def _get_followers(request: Request) -> Followers:
    return followers(request.app)


Runs = Annotated[Followers, Depends(_get_followers)]


# --- input -------------------------------------------------------------------------------------------


@dataclass
class FieldLocator(Locator):
    """Names a spec error by its field path in the request body ("spec.steps.1.type"), not a line."""

    def where(self, path: tuple[str | int, ...]) -> str:
        return ".".join(["spec", *(str(p) for p in path)])


def _absolute(value: str | None, where: str, roots: PathRoots, *, folder: bool = False) -> Path | None:
    """A path the request names, checked against the allowed roots before anything looks at it, so
    the answer for a path outside them is the same whether it exists or not."""
    if value is None:
        return None
    path = Path(value)
    if not path.is_absolute():
        raise UserError(f"must be an absolute path, got {value!r}", where=where)
    if not roots.allows(path):
        raise UserError(
            f"{value!r} is not under a folder this server takes pipelines from", where=where, hint=roots.hint
        )
    # os.path answers False for any path the server cannot stat (missing, unreadable, too long)
    if not (os.path.isdir(path) if folder else os.path.isfile(path)):
        kind = "folder" if folder else "file"
        raise UserError(
            f"the server cannot read the {kind} {value!r}",
            where=where,
            hint="the server reads the pipeline's files itself: it must see the same filesystem",
        )
    return path


@dataclass(frozen=True)
class PathRoots:
    """Where a caller may point the server: under FREIGHT_PIPELINE_ROOTS; anywhere for an admin
    token when none are set; nowhere for other tokens then."""

    roots: tuple[Path, ...]
    anywhere: bool

    @classmethod
    def for_caller(cls, ctx: ServerContext, principal: Principal) -> PathRoots:
        roots = ctx.settings.pipeline_roots
        return cls(roots, anywhere=not roots and principal.admin)

    def allows(self, path: Path) -> bool:
        if self.anywhere:
            return True
        real = os.path.realpath(path)  # no file is opened; `..` and links are resolved
        return any(os.path.commonpath([str(root), real]) == str(root) for root in self.roots)

    @property
    def hint(self) -> str:
        if self.roots:
            return "allowed: " + ", ".join(str(r) for r in self.roots)
        return "set FREIGHT_PIPELINE_ROOTS on the server, or use an admin token"

    def default_base(self) -> Path:
        """Where relative paths start when the request names no folder."""
        if self.anywhere:
            return Path.cwd()
        if self.roots:
            return self.roots[0]
        raise UserError("give base_dir or spec_path", where="base_dir", hint=self.hint)


@contextlib.contextmanager
def _reading_files() -> Iterator[None]:
    """A file the pipeline names that the server cannot read is bad input that names the file."""
    try:
        yield
    except OSError as exc:
        raise UserError(
            f"the server cannot read {exc.filename!r}: {exc.strerror}",
            where="spec",
            hint="the server reads the pipeline's files itself: it must see the same filesystem",
        ) from None


def _check_queues(principal: Principal, queues: set[str], where: str = "spec.steps") -> None:
    """A run submits jobs to every queue its steps use; the token must cover all of them."""
    for queue in sorted(queues):
        check_queue(principal, queue, where=where)


def visible_runs(ctx: ServerContext, store: RunStore, principal: Principal, found: list[Run]) -> list[Run]:
    """The runs this token may see: every run for an admin or an unscoped token, else the runs whose
    step jobs all ran in its queues (a run with no job yet: the default queue its steps go to)."""
    if principal.admin or principal.queues is None:
        return found
    by_run = store.step_jobs([run.id for run in found])
    ids = sorted({job_id for job_ids in by_run.values() for job_id in job_ids})
    with ctx.service.engine.connect() as conn:
        queue_of = dict(conn.execute(select(jobs.c.id, jobs.c.queue).where(jobs.c.id.in_(ids))).all())
    allowed = principal.queues
    return [
        run
        for run in found
        if {queue_of.get(job_id, "default") for job_id in by_run[run.id]} <= allowed
        and (by_run[run.id] or "default" in allowed)
    ]


def visible_run(ctx: ServerContext, store: RunStore, principal: Principal, run_id: str) -> Run:
    """One run, if this token may see it; a run of other queues looks like no run at all."""
    run = store.get(run_id)
    if not visible_runs(ctx, store, principal, [run]):
        raise NotFoundError(f"no pipeline run {run_id!r}", hint="list runs with `freight pipeline runs`")
    return run


def _parse(body: RunIn, roots: PathRoots) -> tuple[Pipeline, Path | None, Path | None]:
    check_input(body.model_dump(), "")
    spec_path = _absolute(body.spec_path, "spec_path", roots)
    base_dir = _absolute(body.base_dir, "base_dir", roots, folder=True)
    config = _absolute(body.config_path, "config_path", roots)
    base = base_dir or (spec_path.parent if spec_path else roots.default_base())
    return validate(body.spec, FieldLocator("spec"), base), spec_path, config


# --- routes ------------------------------------------------------------------------------------------


@router.post(
    "/pipelines/runs", status_code=201, response_model=None, responses=STARTED, summary="Start a pipeline run"
)
def start_run(ctx: Ctx, runs: Runs, principal: Caller, body: RunIn) -> JSONResponse:
    """Checks the spec as `freight pipeline validate` does (nothing is stored when it is wrong),
    submits the step jobs and follows them on the server; poll the run to see it progress."""
    pipeline, spec_path, config = _parse(body, PathRoots.for_caller(ctx, principal))
    runner = runs.runner(config)
    with _reading_files():
        _check_queues(principal, runner.queues(pipeline))
        with ctx.writes:
            run_id = runner.start(pipeline, spec_path=str(spec_path) if spec_path else None)
    runs.follow(run_id)
    return reply(runs.store.get(run_id).to_dict(), 201)


@router.get(
    "/pipelines/runs",
    response_model=None,
    responses={200: {"model": PipelineRunList}},
    summary="List pipeline runs, newest first",
)
def list_runs(
    ctx: Ctx,
    runs: Runs,
    principal: Caller,
    pipeline: Annotated[str | None, Query(max_length=100, description="Only this pipeline")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> JSONResponse:
    check_input(pipeline, "pipeline")
    scoped = not principal.admin and principal.queues is not None
    found = runs.store.list(pipeline, 1000 if scoped else limit)
    shown = visible_runs(ctx, runs.store, principal, found)[:limit]
    return reply({"runs": [r.to_dict() for r in shown]})


@router.get(
    "/pipelines/runs/{run_id}",
    response_model=None,
    responses=RUN,
    summary="One pipeline run: steps, jobs, rows, times, QA results",
)
def get_run(ctx: Ctx, runs: Runs, principal: Caller, run_id: RunId) -> JSONResponse:
    """A run still running is followed here if nothing in this server follows it yet (its runner, a
    CLI in embedded mode, went away), so waiting on it through the API always ends."""
    check_input(run_id, "run_id")
    run = visible_run(ctx, runs.store, principal, run_id)
    if run.state == "running":
        runs.follow(run_id)
    return reply(run.to_dict())


@router.post(
    "/pipelines/runs/{run_id}/rerun",
    status_code=201,
    response_model=None,
    responses=STARTED,
    summary="Run a finished run again",
)
def rerun(
    ctx: Ctx, runs: Runs, principal: Caller, run_id: RunId, body: RerunIn | None = None
) -> JSONResponse:
    """A new run of the same pipeline (its file as it is now, else the stored spec). By default only
    the steps that did not succeed and what depends on them run; the others' outputs are kept."""
    body = body or RerunIn()
    check_input(run_id, "run_id")
    check_input(body.config_path, "config_path")
    visible_run(ctx, runs.store, principal, run_id)
    runner = runs.runner(_absolute(body.config_path, "config_path", PathRoots.for_caller(ctx, principal)))
    with _reading_files():
        plan = runner.plan_rerun(run_id, from_failed=body.from_failed)
        _check_queues(principal, runner.queues(plan.pipeline, reuse=plan.reuse))
        with ctx.writes:
            new_id = runner.start_rerun(plan)
    runs.follow(new_id)
    return reply(runs.store.get(new_id).to_dict(), 201)


@router.post(
    "/pipelines/runs/{run_id}/cancel", response_model=None, responses=RUN, summary="Cancel a pipeline run"
)
def cancel(ctx: Ctx, runs: Runs, principal: Caller, run_id: RunId) -> JSONResponse:
    """Cancels the step jobs that have not finished; the run ends (failed) once they have stopped."""
    check_input(run_id, "run_id")
    run = visible_run(ctx, runs.store, principal, run_id)
    step_jobs = [s.job_id for s in run.steps if s.job_id]
    _check_queues(principal, {view.queue for view in ctx.service.get_many(step_jobs)}, "run_id")
    runs.runner().cancel(run_id)
    if run.state == "running":
        runs.follow(run_id)
    return reply(runs.store.get(run_id).to_dict())
