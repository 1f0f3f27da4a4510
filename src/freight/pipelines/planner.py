"""The pipeline scheduler: start the runs registered schedules owe, release waiting runs, flag late ones.

`Planner.tick(now)` is the whole of it, with the clock passed in (tests call it with any `now` and
never sleep). On each tick, for every registered, unpaused schedule: the due intervals without a run
(all of them with catch-up, else only the latest) start, oldest first, while fewer than
`max_active_runs` of the pipeline are running or waiting. Then every waiting run's conditions are
asked once (`PipelineRunner.check_conditions`), and runs past `late_after` send `on_late` once.

The server runs `PlannerLoop`, which ticks every few seconds while this server holds the job
scheduler's lease, so of several servers on one PostgreSQL store only the leader starts runs. One
bad pipeline (a file that no longer validates, a database that is down) is logged and skipped: it
never stops a tick. Its last problem is kept for `freight pipeline schedules`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freight.pipelines.loader import Pipeline
from freight.pipelines.registry import Registered, ScheduleRegistry, registered_pipeline
from freight.pipelines.runner import PipelineRunner, _notify_of
from freight.pipelines.schedule import Interval, Schedule, due, due_after, to_run
from freight.pipelines.store import Run, RunStore

log = logging.getLogger("freight.pipelines")
TICK_EVERY = 5.0


@dataclass
class TickReport:
    started: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)


class Planner:
    def __init__(
        self,
        store: RunStore,
        runner_for: Callable[[Path | None], PipelineRunner],
        *,
        follow: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.registry = ScheduleRegistry(store.engine)
        self.runner_for = runner_for
        self.follow = follow or (lambda _run_id: None)
        #: pipeline → its last problem (cleared by a tick that starts it cleanly)
        self.problems: dict[str, str] = {}
        #: pipeline → (what identifies its file's version, the validated pipeline)
        self._pipelines: dict[str, tuple[Any, Pipeline]] = {}
        #: pipeline → (its schedule, its due intervals at the last tick)
        self._intervals: dict[str, tuple[Schedule, list[Interval]]] = {}

    def tick(self, now: float) -> TickReport:
        report = TickReport()
        entries = {e.pipeline: e for e in self.registry.list()}
        for entry in entries.values():
            if entry.paused:
                continue
            try:
                report.started += self._start_due(entry, now)
                self.problems.pop(entry.pipeline, None)
            except Exception as exc:
                from freight.pipelines.step import describe

                self.problems[entry.pipeline] = report.problems[entry.pipeline] = describe(exc)
                log.warning("pipeline schedule %s: %s", entry.pipeline, describe(exc))
        for run in self.store.active():
            owner = entries.get(run.pipeline)
            if run.state == "waiting" and not (owner and owner.paused):
                self._check(run, owner, now, report)
            self._late(run, now, report)
        return report

    def _runner(self, entry: Registered | None) -> PipelineRunner:
        config = entry.config_path if entry else None
        return self.runner_for(Path(config) if config else None)

    def _start_due(self, entry: Registered, now: float) -> list[str]:
        pipeline = self._pipeline(entry)
        schedule = pipeline.spec.schedule
        if schedule is None:
            return []
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        found = self._due(pipeline.name, schedule, at)
        todo = to_run(schedule, at, self.store.interval_keys(pipeline.name), found=found)
        if not todo:
            return []
        slots = schedule.max_active_runs - self.store.active_count(pipeline.name)
        started = []
        runner = self._runner(entry)
        for interval in todo[: max(slots, 0)]:
            run_id = runner.start(
                pipeline, spec_path=entry.spec_path, interval=interval, trigger="schedule", now=now
            )
            log.info("pipeline %s: started run %s for %s", pipeline.name, run_id, interval.ds)
            started.append(run_id)
            self.follow(run_id)
        return started

    def _pipeline(self, entry: Registered) -> Pipeline:
        """The registered pipeline, validated again only when its file (or stored spec) changed."""
        try:
            stat = os.stat(entry.spec_path) if entry.spec_path else None
        except OSError:
            stat = None
        key = (
            entry.spec_path,
            stat.st_mtime_ns if stat else None,
            stat.st_size if stat else None,
            entry.updated_at,
        )
        cached = self._pipelines.get(entry.pipeline)
        if cached is not None and cached[0] == key:
            return cached[1]
        pipeline: Pipeline = registered_pipeline(entry)
        self._pipelines[entry.pipeline] = (key, pipeline)
        return pipeline

    def _due(self, name: str, schedule: Schedule, now: dt.datetime) -> list[Interval]:
        """The schedule's due intervals, cut incrementally from the last tick's (same schedule)."""
        cached = self._intervals.get(name)
        known = cached[1] if cached is not None and cached[0] == schedule else []
        found = due_after(schedule, known, now) if not known or known[-1].end <= now else due(schedule, now)
        self._intervals[name] = (schedule, found)
        return found

    def _check(self, run: Run, entry: Registered | None, now: float, report: TickReport) -> None:
        try:
            state = self._runner(entry).check_conditions(run.id, now)
        except Exception as exc:
            from freight.pipelines.step import describe

            report.problems[run.id] = describe(exc)
            log.warning("pipeline run %s: checking its conditions failed: %s", run.id, describe(exc))
            return
        if state == "running":
            report.released.append(run.id)
            self.follow(run.id)
        elif state != "waiting":
            report.failed.append(run.id)

    def _late(self, run: Run, now: float, report: TickReport) -> None:
        notify = _notify_of(run)
        schedule = run.spec.get("schedule") or {}
        late_after = schedule.get("late_after")
        if notify is None or not notify.on_late or late_after is None:
            return
        since = run.interval_end if run.interval_end is not None else run.created_at
        if now < since + float(late_after) or not self.store.claim_notice(run.id, "late"):
            return
        from freight.pipelines.notify import send

        send(notify, run, "late")
        report.late.append(run.id)


class PlannerLoop:
    """A daemon thread that ticks the planner while `leading()` says this process schedules."""

    def __init__(
        self,
        planner: Planner,
        leading: Callable[[], bool],
        *,
        every: float = TICK_EVERY,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self.planner = planner
        self.leading = leading
        self.every = every
        self.clock = clock or time.time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pipeline-planner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.leading():
                    self.planner.tick(self.clock())
            except Exception:  # the store went away for a moment: log it, tick again later
                log.exception("pipeline planner tick failed")
            self._stop.wait(self.every)
