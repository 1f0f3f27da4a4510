"""/api/v1/pipelines/runs: start a pipeline run on the server, list and read runs, rerun, cancel.

The server owns the runs it starts, as Airflow or Dagster do: `PipelineRunner.start` submits the step
jobs through this server's JobService, then a follower thread per run records each step as its job
ends (`PipelineRunner.follow`), so a run goes on when the client that started it goes away. At
startup the server follows again the runs an earlier process left running (`resume_runs`, called
from the app's lifespan), and stops its followers at shutdown.

Files a pipeline names (SQL files, scripts, CSV globs) are read on the server: it is assumed to see
the same filesystem as the client (the same machine or a shared one); a path it cannot read is a 400
naming it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from freight.errors import NotFoundError, UserError
from freight.pipelines.loader import Locator, Pipeline, validate
from freight.pipelines.runner import PipelineRunner
from freight.pipelines.store import RunStore
from freight.server.api.common import check_input, reply
from freight.server.auth import Caller, check_queue
from freight.server.deps import ServerContext, get_ctx
from freight.server.tokens import Principal

log = logging.getLogger("freight.server")

router = APIRouter(tags=["pipelines"])
Ctx = Annotated[ServerContext, Depends(get_ctx)]
RunId = Annotated[str, PathParam(max_length=200, description="A pipeline run id")]

#: how long one wait on a run's jobs lasts before the follower looks at its stop event again
FOLLOW_POLL = 0.25
FOLLOW_SLICE = 1.0


# --- schemas: the shape of `Run.to_dict()` ----------------------------------------------------------


class StepRunOut(BaseModel):
    step: str
    type: str
    state: str = Field(description="pending, queued, running, succeeded, failed, upstream_failed, …")
    job_id: str | None
    attempts: int | None
    started_at: float | None
    ended_at: float | None
    rows: int | None
    reused_from: str | None = Field(description="The run whose output this step kept (a rerun)")
    error: str | None
    metrics: dict[str, Any]


class CheckOut(BaseModel):
    id: int
    run_id: str
    step: str
    check_type: str
    status: str = Field(description="pass, fail or warn")
    on_fail: str
    observed: str | None
    expected: str | None
    message: str | None
    at: float


class PipelineRunOut(BaseModel):
    id: str
    pipeline: str
    state: str = Field(description="running, succeeded, failed or cancelled")
    rerun_of: str | None
    created_at: float
    ended_at: float | None
    error: str | None
    steps: list[StepRunOut] = Field(description="In the pipeline's order; empty in a list of runs")
    checks: list[CheckOut] = Field(description="QA results; empty in a list of runs")


class PipelineRunList(BaseModel):
    runs: list[PipelineRunOut]


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

    from_failed: bool = Field(
        default=True, description="Run only failed steps and what depends on them; false runs every step"
    )
    config_path: str | None = Field(
        default=None, max_length=4096, description="As for a new run (default: the server's FREIGHT_CONFIG)"
    )


RUN: dict[int | str, dict[str, Any]] = {200: {"model": PipelineRunOut}}
STARTED: dict[int | str, dict[str, Any]] = {201: {"model": PipelineRunOut, "description": "Started"}}


# --- followers ---------------------------------------------------------------------------------------


class Followers:
    """One daemon thread per run this server follows, all stopped by one event at shutdown."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.store = RunStore(ctx.service.engine)  # the service's engine: closed with the service
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def runner(self, config_path: Path | None = None) -> PipelineRunner:
        return PipelineRunner(self.ctx.service, self.store, self.ctx.settings, config_path=config_path)

    def follow(self, run_id: str) -> None:
        """Record the run's steps as they end, in the background, unless a thread here already does."""
        with self._lock:
            running = self._threads.get(run_id)
            if self._stop.is_set() or (running is not None and running.is_alive()):
                return
            thread = threading.Thread(
                target=self._follow, args=(run_id,), name=f"pipeline-run-{run_id}", daemon=True
            )
            self._threads[run_id] = thread
            thread.start()

    def resume(self) -> None:
        """Follow the runs an earlier server process left running (it stopped or crashed)."""
        for run in self.store.list(limit=10_000, state="running"):
            log.info("following pipeline run %s again", run.id)
            self.follow(run.id)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    def _follow(self, run_id: str) -> None:
        runner = self.runner()
        try:
            while not self._stop.is_set():
                try:
                    if runner.follow(run_id, poll=FOLLOW_POLL, timeout=FOLLOW_SLICE).state != "running":
                        return
                except NotFoundError:
                    return
                except Exception:  # the store went away for a moment: log it, try again
                    log.exception("following pipeline run %s failed; trying again", run_id)
                    self._stop.wait(1.0)
        finally:
            with self._lock:
                if self._threads.get(run_id) is threading.current_thread():
                    del self._threads[run_id]


_create = threading.Lock()


def followers(app: FastAPI) -> Followers:
    """The app's followers (made on first use when the lifespan has not run, as in some tests)."""
    with _create:
        found: Followers | None = getattr(app.state, "pipeline_runs", None)
        if found is None:
            found = app.state.pipeline_runs = Followers(app.state.freight)
        return found


def resume_runs(app: FastAPI) -> Callable[[], None]:
    """For the app's lifespan: fresh followers that take up the runs left running; returns their stop."""
    runs = Followers(app.state.freight)
    with _create:
        app.state.pipeline_runs = runs
    runs.resume()
    return runs.stop


def _get_followers(request: Request) -> Followers:
    return followers(request.app)


Runs = Annotated[Followers, Depends(_get_followers)]


# --- input -------------------------------------------------------------------------------------------


@dataclass
class FieldLocator(Locator):
    """Names a spec error by its field path in the request body ("spec.steps.1.type"), not a line."""

    def where(self, path: tuple[str | int, ...]) -> str:
        return ".".join(["spec", *(str(p) for p in path)])


def _absolute(value: str | None, where: str, *, folder: bool = False) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_absolute():
        raise UserError(f"must be an absolute path, got {value!r}", where=where)
    # os.path answers False for any path the server cannot stat (missing, unreadable, too long)
    if not (os.path.isdir(path) if folder else os.path.isfile(path)):
        kind = "folder" if folder else "file"
        raise UserError(
            f"the server cannot read the {kind} {value!r}",
            where=where,
            hint="the server reads the pipeline's files itself: it must see the same filesystem",
        )
    return path


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


def _parse(body: RunIn) -> tuple[Pipeline, Path | None, Path | None]:
    check_input(body.model_dump(), "")
    spec_path = _absolute(body.spec_path, "spec_path")
    base_dir = _absolute(body.base_dir, "base_dir", folder=True)
    config = _absolute(body.config_path, "config_path")
    base = base_dir or (spec_path.parent if spec_path else Path.cwd())
    return validate(body.spec, FieldLocator("spec"), base), spec_path, config


# --- routes ------------------------------------------------------------------------------------------


@router.post(
    "/pipelines/runs", status_code=201, response_model=None, responses=STARTED, summary="Start a pipeline run"
)
def start_run(ctx: Ctx, runs: Runs, principal: Caller, body: RunIn) -> JSONResponse:
    """Checks the spec as `freight pipeline validate` does (nothing is stored when it is wrong),
    submits the step jobs and follows them on the server; poll the run to see it progress."""
    pipeline, spec_path, config = _parse(body)
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
    runs: Runs,
    principal: Caller,
    pipeline: Annotated[str | None, Query(max_length=100, description="Only this pipeline")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> JSONResponse:
    check_input(pipeline, "pipeline")
    return reply({"runs": [r.to_dict() for r in runs.store.list(pipeline, limit)]})


@router.get(
    "/pipelines/runs/{run_id}",
    response_model=None,
    responses=RUN,
    summary="One pipeline run: steps, jobs, rows, times, QA results",
)
def get_run(runs: Runs, principal: Caller, run_id: RunId) -> JSONResponse:
    """A run still running is followed here if nothing in this server follows it yet (its runner, a
    CLI in embedded mode, went away), so waiting on it through the API always ends."""
    check_input(run_id, "run_id")
    run = runs.store.get(run_id)
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
    runner = runs.runner(_absolute(body.config_path, "config_path"))
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
    run = runs.store.get(run_id)
    jobs = [s.job_id for s in run.steps if s.job_id]
    _check_queues(principal, {view.queue for view in ctx.service.get_many(jobs)}, "run_id")
    runs.runner().cancel(run_id)
    if run.state == "running":
        runs.follow(run_id)
    return reply(runs.store.get(run_id).to_dict())
