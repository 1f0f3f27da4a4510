"""The pipeline grid (/pipelines/grid/{name}): a scheduled pipeline's data intervals as columns, its
run and each step as rows, every cell coloured by state — succeeded, failed, running, waiting, or
missing (due, but no run yet) — as Airflow's grid shows DAG runs. Read-only; each run cell links to
the run's page. The schedule comes from `freight pipeline schedule` (else from the latest run's spec).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from freight.pipelines.registry import ScheduleRegistry
from freight.pipelines.schedule import Schedule, due, next_due
from freight.pipelines.store import Run, RunStore
from freight.server.ui.render import Pages
from freight.server.ui.session import User
from freight.server.ui.workloads import workloads

DEFAULT_COLUMNS = 30
Name = Annotated[str, Path(max_length=100)]
Columns = Annotated[int, Query(ge=1, le=365)]


@dataclass
class Cell:
    state: str  # a run or step state, or "missing"
    run_id: str | None = None
    title: str = ""


@dataclass
class Grid:
    pipeline: str
    rule: str | None = None
    paused: bool = False
    registered: bool = False
    next_due: str | None = None
    columns: list[str] = field(default_factory=list)  # interval starts (ISO)
    labels: list[str] = field(default_factory=list)  # short labels for the header
    rows: list[tuple[str, list[Cell]]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def grid_pages(page: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/pipelines/grid/{name}", response_class=HTMLResponse)
    def grid_page(
        request: Request, user: User, name: Name, columns: Columns = DEFAULT_COLUMNS
    ) -> HTMLResponse:
        store = workloads(request).runs.store
        grid = build_grid(store, name, columns, now=dt.datetime.now(dt.UTC))
        if grid is None:
            return page.not_found(
                request, user, f"schedule of pipeline {name}", "/pipelines", "pipeline runs"
            )
        return page(request, "pipelines/grid.html", user, grid=grid)

    return router


def build_grid(store: RunStore, name: str, columns: int, *, now: dt.datetime) -> Grid | None:
    """The grid of the last `columns` due intervals, or None when the pipeline has no schedule."""
    grid = Grid(name)
    registry = ScheduleRegistry(store.engine)
    raw: dict[str, Any] | None = None
    found = [e for e in registry.list() if e.pipeline == name]
    if found:
        raw, grid.paused, grid.registered = found[0].spec.get("schedule"), found[0].paused, True
    else:
        latest = store.list(name, 1)
        raw = latest[0].spec.get("schedule") if latest else None
    if not raw:
        return None
    schedule = Schedule.model_validate(raw)
    grid.rule = f"{schedule.cron or schedule.frequency} ({schedule.timezone})"
    nxt = next_due(schedule, now)
    grid.next_due = nxt.isoformat() if nxt else None
    intervals = due(schedule, now)[-columns:]
    runs = store.by_interval(name, intervals[0].key() if intervals else None)
    keys = sorted({i.key() for i in intervals} | set(runs))[-columns:]
    zone = schedule.zone
    grid.columns = [dt.datetime.fromtimestamp(k, zone).isoformat() for k in keys]
    grid.labels = [_label(dt.datetime.fromtimestamp(k, zone), schedule) for k in keys]
    detailed: dict[float, Run] = {k: store.get(r.id) for k, r in runs.items()}
    steps = _step_names(detailed, raw_steps=_latest_steps(store, name))
    run_row = []
    for k in keys:
        run = detailed.get(k)
        state = run.state if run else "missing"
        grid.counts[state] = grid.counts.get(state, 0) + 1
        run_row.append(Cell(state, run.id if run else None, (run.error or "") if run else "no run yet"))
    grid.rows.append(("run", run_row))
    for step in steps:
        cells = []
        for k in keys:
            run = detailed.get(k)
            s = next((x for x in run.steps if x.step == step), None) if run else None
            cells.append(
                Cell(s.state if s else "missing", run.id if run else None, (s.error or "") if s else "")
            )
        grid.rows.append((step, cells))
    return grid


def _label(when: dt.datetime, schedule: Schedule) -> str:
    cron = schedule.cron_expr().split()
    return (
        when.strftime("%m-%d")
        if cron[1] != "*" and not cron[1].startswith("*/")
        else when.strftime("%d %H:%M")
    )


def _latest_steps(store: RunStore, name: str) -> list[str]:
    latest = store.list(name, 1)
    return [s["name"] for s in latest[0].spec.get("steps", [])] if latest else []


def _step_names(runs: dict[float, Run], raw_steps: list[str]) -> list[str]:
    names = list(raw_steps)
    for run in runs.values():
        names += [s.step for s in run.steps if s.step not in names]
    return names
