"""/api/v1/pipelines/schedules: register, list, pause, resume and forget scheduled pipelines.

The server's planner (`freight.pipelines.planner`) runs what is registered here. Registering takes the
same body as starting a run (the spec, its file's path, the folder its relative paths start from, the
connections file); the spec must have a `schedule`, and the token must be allowed to submit to every
queue the steps use, as for a run. Reading needs a token that may use the `default` queue (where the
step jobs go); paths in the body are checked against FREIGHT_PIPELINE_ROOTS as for a run.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from freight.errors import UserError
from freight.pipelines.registry import ScheduleRegistry, describe
from freight.server.api.common import check_input, reply
from freight.server.api.pipelines import Ctx, PathRoots, RunIn, Runs, _check_queues, _parse, _reading_files
from freight.server.auth import Caller

router = APIRouter(tags=["pipelines"])
Name = Annotated[str, PathParam(max_length=100, description="A pipeline's name")]


class ScheduleOut(BaseModel):
    pipeline: str
    rule: str | None
    paused: bool
    next_due: str | None
    last_run: str | None
    last_interval: str | None
    last_state: str | None
    spec_path: str | None


class ScheduleList(BaseModel):
    schedules: list[ScheduleOut]


ONE: dict[int | str, dict[str, Any]] = {200: {"model": ScheduleOut}}


@router.get(
    "/pipelines/schedules",
    response_model=None,
    responses={200: {"model": ScheduleList}},
    summary="Scheduled pipelines: rule, paused, next run due, last result",
)
def list_schedules(runs: Runs, principal: Caller) -> JSONResponse:
    if not principal.may_use("default"):  # scheduled runs' step jobs go to the default queue
        return reply({"schedules": []})
    registry = ScheduleRegistry(runs.store.engine)
    return reply({"schedules": [describe(runs.store, e) for e in registry.list()]})


@router.put(
    "/pipelines/schedules/{name}",
    response_model=None,
    responses={**ONE, 201: {"model": ScheduleOut, "description": "Registered"}},
    summary="Register (or update) a pipeline's schedule",
)
def put_schedule(ctx: Ctx, runs: Runs, principal: Caller, name: Name, body: RunIn) -> JSONResponse:
    """The spec is checked as for a run; its `name` must be the path's. A paused schedule stays paused."""
    check_input(name, "name")
    pipeline, spec_path, config = _parse(body, PathRoots.for_caller(ctx, principal))
    if pipeline.name != name:
        raise UserError(f"the spec is pipeline {pipeline.name!r}, not {name!r}", where="spec.name")
    if pipeline.spec.schedule is None:
        raise UserError(
            f"pipeline {name} has no `schedule`",
            where="spec.schedule",
            hint='add e.g. schedule: {cron: "0 3 * * *", start: 2026-01-01}',
        )
    with _reading_files():
        _check_queues(principal, runs.runner(config).queues(pipeline))
    registry = ScheduleRegistry(runs.store.engine)
    new = registry.register(
        name,
        pipeline.spec.model_dump(mode="json", exclude_none=True),
        spec_path=str(spec_path) if spec_path else None,
        base_dir=str(pipeline.base_dir),
        config_path=str(config) if config else None,
    )
    return reply(describe(runs.store, registry.get(name)), 201 if new else 200)


def _set_paused(runs: Runs, principal: Caller, name: str, paused: bool) -> JSONResponse:
    check_input(name, "name")
    registry = ScheduleRegistry(runs.store.engine)
    registry.get(name)
    _check_queues(principal, {"default"}, "name")  # its step jobs go to the default queue
    registry.set_paused(name, paused)
    return reply(describe(runs.store, registry.get(name)))


@router.post(
    "/pipelines/schedules/{name}/pause", response_model=None, responses=ONE, summary="Pause a schedule"
)
def pause(runs: Runs, principal: Caller, name: Name) -> JSONResponse:
    """No new runs start until resumed; running ones go on."""
    return _set_paused(runs, principal, name, True)


@router.post(
    "/pipelines/schedules/{name}/resume", response_model=None, responses=ONE, summary="Resume a schedule"
)
def resume(runs: Runs, principal: Caller, name: Name) -> JSONResponse:
    """With catch-up, the intervals missed while paused run."""
    return _set_paused(runs, principal, name, False)


@router.delete("/pipelines/schedules/{name}", status_code=204, summary="Forget a schedule (its runs stay)")
def delete_schedule(runs: Runs, principal: Caller, name: Name) -> Response:
    check_input(name, "name")
    registry = ScheduleRegistry(runs.store.engine)
    registry.get(name)
    _check_queues(principal, {"default"}, "name")
    registry.remove(name)
    return Response(status_code=204)
