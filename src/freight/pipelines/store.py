"""Run state for pipelines: runs, their steps and QA check results, as rows anyone can query.

The tables live in the same database as the job tables (Settings.database_url), prefixed `pipeline_`.
They are created by Alembic migrations 0003 and 0011 (freight.db.migrations), run when the store opens.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter
from sqlalchemy import (
    Engine,
    func,
    insert,
    select,
    update,
)

from freight.db.engine import migrate
from freight.db.schema import checks, runs, step_runs
from freight.errors import NotFoundError

#: A run that waits for other pipelines or preconditions holds no job: its steps are not submitted yet.
ACTIVE_RUN_STATES = ("running", "waiting")
TERMINAL_STEP_STATES = frozenset({"succeeded", "failed", "cancelled", "skipped", "reused"})
OK_STEP_STATES = frozenset({"succeeded", "reused"})

# Run, StepRun and CheckResult are also the API's pipeline run resource: /openapi.json documents them
# from these fields (pydantic reads dataclasses), the server sends `Run.to_dict()` and the remote CLI
# reads it back with `Run.from_dict`. Fields marked `Field(exclude=True)` stay on the server.
#: the API always sends every field, so its schema marks them all required
_SENT = ConfigDict(json_schema_serialization_defaults_required=True)


@dataclass
class StepRun:
    __pydantic_config__ = _SENT

    step: str
    type: str
    state: Annotated[
        str, Field(description="pending, queued, running, succeeded, failed, upstream_failed, …")
    ]
    job_id: str | None = None
    attempts: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    rows: int | None = None
    #: Dataset URL this step's output lives at (another run's, when reused).
    output_url: Annotated[str | None, Field(exclude=True)] = None
    reused_from: Annotated[str | None, Field(description="The run whose output this step kept (a rerun)")] = (
        None
    )
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    @property
    def peak_memory(self) -> int | None:
        """Peak memory of the step's job (its cgroup's), else what the step process measured itself."""
        value = self.metrics.get("job_peak_memory") or self.metrics.get("peak_rss")
        return int(value) if value else None


@dataclass(frozen=True)
class CheckResult:
    """One QA check's recorded result (a row of pipeline_checks)."""

    __pydantic_config__ = _SENT

    id: int
    run_id: str
    step: str
    check_type: str
    status: Annotated[str, Field(description="pass, fail or warn")]
    on_fail: str
    observed: str | None
    expected: str | None
    message: str | None
    at: float


@dataclass
class Run:
    __pydantic_config__ = _SENT

    id: str
    pipeline: str
    state: Annotated[str, Field(description="running, succeeded, failed or cancelled")]
    spec_path: Annotated[str | None, Field(exclude=True)]
    spec: Annotated[dict[str, Any], Field(exclude=True)]
    rerun_of: str | None
    run_url: Annotated[str, Field(exclude=True)]
    created_at: float
    ended_at: float | None
    error: str | None
    steps: Annotated[list[StepRun], Field(description="In the pipeline's order; empty in a list of runs")] = (
        field(default_factory=list)
    )
    checks: Annotated[list[CheckResult], Field(description="QA results; empty in a list of runs")] = field(
        default_factory=list
    )
    interval_start: Annotated[
        float | None, Field(description="The run's data interval [start, end), UNIX seconds")
    ] = None
    interval_end: float | None = None
    trigger: Annotated[str | None, Field(description="manual, schedule or backfill")] = None
    notified: Annotated[str | None, Field(exclude=True)] = None

    def interval_start_iso(self) -> str | None:
        return _iso(self.interval_start, self.timezone())

    def interval_end_iso(self) -> str | None:
        return _iso(self.interval_end, self.timezone())

    def timezone(self) -> str:
        schedule = self.spec.get("schedule") or {}
        return str(schedule.get("timezone") or "UTC")

    def step(self, name: str) -> StepRun:
        for s in self.steps:
            if s.step == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """What users see of a run: `freight pipeline show --json` and the API's run."""
        return _adapter().dump_python(self, mode="json")  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        """The inverse of `to_dict` (a run read from the API). What it leaves out (the spec, where the
        run's data lives) stays empty."""
        return _adapter().validate_python({"spec_path": None, "spec": {}, "run_url": "", **data})


@cache
def _adapter() -> TypeAdapter[Run]:
    # built on first use: the CLI's start-up does not pay for it
    return TypeAdapter(Run)


def new_run_id(now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now or time.time()))
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


class RunStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        migrate(engine)  # the tables come from Alembic migration 0003

    @classmethod
    def open(cls, database_url: str) -> RunStore:
        from freight.db.engine import make_engine

        return cls(make_engine(database_url))

    def close(self) -> None:
        self.engine.dispose()

    def create_run(
        self,
        run_id: str,
        pipeline: str,
        *,
        spec: dict[str, Any],
        spec_path: str | None,
        run_url: str,
        steps: Sequence[StepRun],
        rerun_of: str | None = None,
        now: float | None = None,
        state: str = "running",
        interval: tuple[float, float] | None = None,
        trigger: str = "manual",
    ) -> None:
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            conn.execute(
                insert(runs).values(
                    id=run_id,
                    pipeline=pipeline,
                    state=state,
                    spec_path=spec_path,
                    spec_json=json.dumps(spec),
                    rerun_of=rerun_of,
                    run_url=run_url,
                    created_at=now,
                    interval_start=interval[0] if interval else None,
                    interval_end=interval[1] if interval else None,
                    trigger=trigger,
                )
            )
            conn.execute(insert(step_runs), [_step_row(run_id, s) for s in steps])

    def set_state(self, run_id: str, old: str, new: str) -> bool:
        """Compare-and-set a run's state (a waiting run released to running); False if it was not `old`."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(runs).where(runs.c.id == run_id, runs.c.state == old).values(state=new)
            )
            return bool(done.rowcount)

    def claim_notice(self, run_id: str, event: str) -> bool:
        """True once per run and event: whoever claims it sends the notification."""
        with self.engine.begin() as conn:
            row = conn.execute(select(runs.c.notified).where(runs.c.id == run_id).with_for_update()).first()
            sent = set((row.notified or "").split(",")) - {""} if row else set()
            if row is None or event in sent:
                return False
            value = ",".join(sorted(sent | {event}))
            conn.execute(update(runs).where(runs.c.id == run_id).values(notified=value))
            return True

    def for_interval(self, pipeline: str, start: float | None) -> Run | None:
        """The latest run of the pipeline's interval that starts at `start`."""
        if start is None:
            return None
        query = (
            select(runs)
            .where(runs.c.pipeline == pipeline, runs.c.interval_start == start)
            .order_by(runs.c.created_at.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _run(row) if row is not None else None

    def interval_keys(self, pipeline: str) -> set[float]:
        """The interval starts the pipeline has runs for (one narrow query: the planner asks each tick)."""
        query = select(runs.c.interval_start).where(
            runs.c.pipeline == pipeline, runs.c.interval_start.is_not(None)
        )
        with self.engine.connect() as conn:
            return {row[0] for row in conn.execute(query)}

    def active_count(self, pipeline: str) -> int:
        query = select(func.count()).where(runs.c.pipeline == pipeline, runs.c.state.in_(ACTIVE_RUN_STATES))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def by_interval(self, pipeline: str, since: float | None = None) -> dict[float, Run]:
        """The latest run of each interval of the pipeline (from `since` on)."""
        query = select(runs).where(runs.c.pipeline == pipeline, runs.c.interval_start.is_not(None))
        if since is not None:
            query = query.where(runs.c.interval_start >= since)
        found: dict[float, Run] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query.order_by(runs.c.created_at)):
                found[row.interval_start] = _run(row)
        return found

    def active(self, pipeline: str | None = None) -> list[Run]:
        """Runs running or waiting (of one pipeline), oldest first."""
        query = select(runs).where(runs.c.state.in_(ACTIVE_RUN_STATES)).order_by(runs.c.created_at)
        if pipeline is not None:
            query = query.where(runs.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return [_run(r) for r in conn.execute(query)]

    def update_step(self, run_id: str, step: StepRun) -> None:
        with self.engine.begin() as conn:
            row = _step_row(run_id, step)
            conn.execute(
                update(step_runs)
                .where(step_runs.c.run_id == run_id, step_runs.c.step == step.step)
                .values({k: v for k, v in row.items() if k not in ("run_id", "step")})
            )

    def add_checks(self, run_id: str, step: str, results: Sequence[dict[str, Any]], now: float) -> None:
        """Record a step's QA results once: a second follower of the same run (a restarted server,
        `freight pipeline follow`) that finishes the same step adds nothing."""
        if not results:
            return
        with self.engine.begin() as conn:
            # Followers finishing the step at the same moment: on PostgreSQL the run's row lock makes
            # the later one wait, then see the earlier one's checks (SQLite's write lock already does).
            conn.execute(select(runs.c.id).where(runs.c.id == run_id).with_for_update())
            known = select(checks.c.id).where(checks.c.run_id == run_id, checks.c.step == step).limit(1)
            if conn.execute(known).first() is not None:
                return
            conn.execute(
                insert(checks),
                [
                    {
                        "run_id": run_id,
                        "step": step,
                        "check_type": r["check"],
                        "status": r["status"],
                        "on_fail": r["on_fail"],
                        "observed": _text(r.get("observed")),
                        "expected": _text(r.get("expected")),
                        "message": r.get("message"),
                        "at": now,
                    }
                    for r in results
                ],
            )

    def finish_run(
        self,
        run_id: str,
        state: str,
        error: str | None = None,
        now: float | None = None,
        *,
        state_was: str = "running",
    ) -> None:
        """Record how a running run ended; a run that has already ended keeps its state and end time
        (compare-and-set: of two followers finishing the same run, the first one wins)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.state == state_was)
                .values(state=state, error=error, ended_at=time.time() if now is None else now)
            )

    def get(self, run_id: str) -> Run:
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
            if row is None:
                raise NotFoundError(
                    f"no pipeline run {run_id!r}", hint="list runs with `freight pipeline runs`"
                )
            steps = conn.execute(select(step_runs).where(step_runs.c.run_id == run_id)).all()
            found = conn.execute(select(checks).where(checks.c.run_id == run_id).order_by(checks.c.id)).all()
        run = _run(row)
        order = {name: i for i, name in enumerate(s["name"] for s in run.spec.get("steps", []))}
        run.steps = sorted((_step(r) for r in steps), key=lambda s: order.get(s.step, 1 << 30))
        run.checks = [CheckResult(**r._mapping) for r in found]
        return run

    def pipelines(self) -> list[str]:
        """The names of the pipelines that have runs, sorted."""
        query = select(runs.c.pipeline).distinct().order_by(runs.c.pipeline)
        with self.engine.connect() as conn:
            return [name for (name,) in conn.execute(query)]

    def step_jobs(self, run_ids: list[str]) -> dict[str, list[str]]:
        """The job ids each run's steps submitted (to scope runs by the queues those jobs ran in)."""
        found: dict[str, list[str]] = {run_id: [] for run_id in run_ids}
        if not run_ids:
            return found
        query = select(step_runs.c.run_id, step_runs.c.job_id).where(
            step_runs.c.run_id.in_(run_ids), step_runs.c.job_id.is_not(None)
        )
        with self.engine.connect() as conn:
            for run_id, job_id in conn.execute(query):
                found[run_id].append(job_id)
        return found

    def list(self, pipeline: str | None = None, limit: int = 50, *, state: str | None = None) -> list[Run]:
        query = select(runs).order_by(runs.c.created_at.desc()).limit(limit)
        if pipeline:
            query = query.where(runs.c.pipeline == pipeline)
        if state:
            query = query.where(runs.c.state == state)
        with self.engine.connect() as conn:
            return [_run(r) for r in conn.execute(query)]


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else json.dumps(value)


def _step_row(run_id: str, s: StepRun) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step": s.step,
        "type": s.type,
        "state": s.state,
        "job_id": s.job_id,
        "attempts": s.attempts,
        "started_at": s.started_at,
        "ended_at": s.ended_at,
        "rows": s.rows,
        "output_url": s.output_url,
        "reused_from": s.reused_from,
        "error": s.error,
        "metrics": json.dumps(s.metrics) if s.metrics else None,
    }


def _step(row: Any) -> StepRun:
    return StepRun(
        step=row.step,
        type=row.type,
        state=row.state,
        job_id=row.job_id,
        attempts=row.attempts,
        started_at=row.started_at,
        ended_at=row.ended_at,
        rows=row.rows,
        output_url=row.output_url,
        reused_from=row.reused_from,
        error=row.error,
        metrics=json.loads(row.metrics) if row.metrics else {},
    )


def _run(row: Any) -> Run:
    return Run(
        id=row.id,
        pipeline=row.pipeline,
        state=row.state,
        spec_path=row.spec_path,
        spec=json.loads(row.spec_json),
        rerun_of=row.rerun_of,
        run_url=row.run_url,
        created_at=row.created_at,
        ended_at=row.ended_at,
        error=row.error,
        interval_start=row.interval_start,
        interval_end=row.interval_end,
        trigger=row.trigger,
        notified=row.notified,
    )


def _iso(value: float | None, zone: str) -> str | None:
    if value is None:
        return None
    import datetime as dt
    from zoneinfo import ZoneInfo

    return dt.datetime.fromtimestamp(value, ZoneInfo(zone)).isoformat()
