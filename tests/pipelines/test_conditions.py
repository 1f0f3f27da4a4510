"""wait_for and preconditions: a waiting run holds no job until they hold (planner ticks, clock injected)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from freight.pipelines.loader import load_pipeline
from freight.pipelines.planner import Planner
from freight.pipelines.registry import ScheduleRegistry
from freight.pipelines.runner import PipelineRunner
from tests.pipelines.conftest import Env

DAY_END = dt.datetime(2026, 1, 2, tzinfo=dt.UTC).timestamp()


def schedule(env: Env, runner: PipelineRunner, name: str, body: str) -> Path:
    path = env.write(
        f"{name}.yaml",
        f"""
name: {name}
schedule: {{cron: "0 0 * * *", start: 2026-01-01, end: 2026-01-02}}
{body}
""",
    )
    pipeline = load_pipeline(path)
    ScheduleRegistry(runner.store.engine).register(
        name,
        pipeline.spec.model_dump(mode="json", exclude_none=True),
        spec_path=str(path),
        base_dir=str(env.root),
        config_path=str(env.config),
    )
    return path


def test_wait_for_the_same_interval_of_another_pipeline(env: Env, local_runner: PipelineRunner) -> None:
    schedule(env, local_runner, "upstream", "steps: [{name: a, type: sql, sql: SELECT 1}]")
    schedule(
        env,
        local_runner,
        "downstream",
        "wait_for: [{pipeline: upstream}]\nsteps: [{name: b, type: sql, sql: SELECT 2}]",
    )
    planner = Planner(local_runner.store, lambda _c: local_runner)
    tick = planner.tick(DAY_END)
    assert len(tick.started) == 2
    store = local_runner.store
    up, down = (
        store.for_interval(p, dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())
        for p in ("upstream", "downstream")
    )
    assert up is not None and down is not None
    assert down.state == "waiting" and all(s.job_id is None for s in store.get(down.id).steps)
    assert planner.tick(DAY_END).released == []  # upstream still running
    assert local_runner.follow(up.id, poll=0.1).state == "succeeded"
    assert planner.tick(DAY_END).released == [down.id]
    assert local_runner.follow(down.id, poll=0.1).state == "succeeded"


def test_a_failed_dependency_fails_the_run_unless_ok_to_fail(env: Env, local_runner: PipelineRunner) -> None:
    schedule(env, local_runner, "up2", "steps: [{name: a, type: sql, sql: SELECT * FROM nothing_here}]")
    schedule(
        env,
        local_runner,
        "strict",
        "wait_for: [{pipeline: up2}]\nsteps: [{name: b, type: sql, sql: SELECT 2}]",
    )
    schedule(
        env,
        local_runner,
        "lenient",
        "wait_for: [{pipeline: up2, ok_to_fail: true}]\nsteps: [{name: b, type: sql, sql: SELECT 2}]",
    )
    planner = Planner(local_runner.store, lambda _c: local_runner)
    planner.tick(DAY_END)
    key = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    up = local_runner.store.for_interval("up2", key)
    assert up is not None and local_runner.follow(up.id, poll=0.1).state == "failed"
    tick = planner.tick(DAY_END)
    strict, lenient = (local_runner.store.for_interval(p, key) for p in ("strict", "lenient"))
    assert strict is not None and lenient is not None
    assert tick.failed == [strict.id] and tick.released == [lenient.id]
    assert strict.state == "failed" and f"pipeline up2 (same interval): its run {up.id} failed" in (
        strict.error or ""
    )


def test_preconditions_file_and_sql_are_templated_and_polled(env: Env, local_runner: PipelineRunner) -> None:
    schedule(
        env,
        local_runner,
        "gated",
        """
preconditions:
  - {type: file-exists, path: "incoming/{{ ds }}.csv"}
  - {type: sql, connection: pgsrc, sql: "SELECT DATE '{{ ds }}' = DATE '2026-01-01'"}
  - {type: table-has-rows, connection: shop, table: orders, where: "id > {{ params.min_id }}"}
params: {min_id: 3}
steps: [{name: b, type: sql, sql: SELECT 2}]
""",
    )
    planner = Planner(local_runner.store, lambda _c: local_runner)
    run_id = planner.tick(DAY_END).started[0]
    assert planner.tick(DAY_END + 60).released == []
    env.write("incoming/2026-01-01.csv", "a\n1\n")
    assert planner.tick(DAY_END + 120).released == [run_id]
    assert local_runner.follow(run_id, poll=0.1).state == "succeeded"


def test_cancelling_a_waiting_run_ends_it_at_once(env: Env, local_runner: PipelineRunner) -> None:
    path = env.write(
        "held.yaml",
        "name: held\npreconditions: [{type: file-exists, path: never.csv}]\n"
        "steps: [{name: b, type: sql, sql: SELECT 2}]\n",
    )
    run_id = local_runner.start(load_pipeline(path), spec_path=str(path))
    assert local_runner.store.get(run_id).state == "waiting"
    assert local_runner.cancel(run_id) == []  # no job was ever submitted
    run = local_runner.store.get(run_id)
    assert run.state == "cancelled" and run.error == "cancelled while waiting"
    assert [s.state for s in run.steps] == ["cancelled"]
    assert local_runner.check_conditions(run_id) == "cancelled"  # the planner leaves it alone
