"""`freight pipeline backfill FILE --from … --to …`: run a schedule's intervals in a date range.

Intervals that already have a succeeded run are skipped (a backfill repeated after a partial failure
runs only what is missing or failed); the rest run oldest first, at most `parallel` at once. Each run
is an ordinary run with trigger `backfill` and its own interval, so `freight pipeline runs` and the UI
grid show it in its cell. A run that waits (wait_for, preconditions) holds no job slot meanwhile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from freight.errors import UserError
from freight.pipelines.loader import Pipeline
from freight.pipelines.runner import PipelineRunner
from freight.pipelines.schedule import Interval, between
from freight.pipelines.store import ACTIVE_RUN_STATES, Run


@dataclass
class Plan:
    todo: list[Interval]
    skipped: list[Interval]


def plan(runner: PipelineRunner, pipeline: Pipeline, since: dt.datetime, until: dt.datetime) -> Plan:
    schedule = pipeline.spec.schedule
    if schedule is None:
        raise UserError(
            f"pipeline {pipeline.name} has no `schedule`: it has no intervals to backfill",
            where=pipeline.locator.where(()),
            hint='add e.g. schedule: {cron: "0 3 * * *", start: 2026-01-01}',
        )
    if until < since:
        raise UserError("--to is before --from", where="--to")
    found = between(schedule, since, until)
    if not found:
        raise UserError(
            f"no interval of {pipeline.name}'s schedule starts between {since.isoformat()} and "
            f"{until.isoformat()}",
            where="--from",
            hint=f"its schedule starts at {schedule.start_at().isoformat()}",
        )
    runs = runner.store.by_interval(pipeline.name)
    done = {k for k, r in runs.items() if r.state == "succeeded"}
    busy = {k for k, r in runs.items() if r.state in ACTIVE_RUN_STATES}
    todo = [i for i in found if i.key() not in done and i.key() not in busy]
    return Plan(todo, [i for i in found if i not in todo])


def backfill(
    runner: PipelineRunner,
    pipeline: Pipeline,
    todo: list[Interval],
    *,
    parallel: int = 1,
    spec_path: str | None = None,
    poll: float = 0.5,
    on_end: Callable[[Run, Interval], None] | None = None,
) -> list[Run]:
    """Run the intervals, oldest first, `parallel` at a time; returns the finished runs in order."""
    if parallel < 1:
        raise UserError("--parallel must be at least 1", where="--parallel")
    queue = list(todo)
    active: dict[str, Interval] = {}
    ended: dict[str, Run] = {}
    order: list[str] = []
    while queue or active:
        while queue and len(active) < parallel:
            interval = queue.pop(0)
            run_id = runner.start(pipeline, spec_path=spec_path, interval=interval, trigger="backfill")
            active[run_id] = interval
            order.append(run_id)
        for run_id in list(active):
            if runner.check_conditions(run_id) == "waiting":
                continue
            run = runner.follow(run_id, poll=poll, timeout=poll)
            if run.state not in ACTIVE_RUN_STATES:
                ended[run_id] = run
                if on_end is not None:
                    on_end(run, active[run_id])
                del active[run_id]
        if active and all(runner.store.get(r).state == "waiting" for r in active):
            import time

            time.sleep(poll)  # every active run waits on its conditions: ask again in a moment
    return [ended[r] for r in order]
