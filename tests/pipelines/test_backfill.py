"""Schedules end to end on the real platform: a backfill of three days, templated by interval."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from typer.testing import CliRunner

from freight.cli.main import app
from freight.pipelines.loader import load_pipeline
from freight.pipelines.registry import ScheduleRegistry
from freight.pipelines.runner import PipelineRunner
from freight.pipelines.store import RunStore
from tests.pipelines.conftest import Env
from tests.pipelines.helpers import duck

START = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).date()

DAILY = f"""
name: daily
params: {{region: eu}}
schedule:
  cron: "0 0 * * *"
  start: {START.isoformat()}
steps:
  - name: day
    type: transform-sql
    sql: SELECT DATE '{{{{ ds }}}}' AS day, '{{{{ params.region }}}}' AS region,
      epoch(TIMESTAMPTZ '{{{{ interval_end }}}}') - epoch(TIMESTAMPTZ '{{{{ interval_start }}}}') AS span
  - name: load
    type: load
    inputs: [day]
    table: days
"""


@pytest.fixture
def cli_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    monkeypatch.setenv("FREIGHT_HOME", str(env.settings.home))
    monkeypatch.setenv("FREIGHT_CONFIG", str(env.config))
    monkeypatch.delenv("FREIGHT_URL", raising=False)
    return env


def test_backfill_three_days_shows_three_succeeded_intervals(cli_env: Env) -> None:
    path = cli_env.write("daily.yaml", DAILY)
    cli = CliRunner()
    last = (START + dt.timedelta(days=2)).isoformat()
    result = cli.invoke(app, ["pipeline", "backfill", str(path), "--from", START.isoformat(), "--to", last])
    assert result.exit_code == 0, result.output
    assert "3 succeeded, 0 failed" in result.output
    days = [START + dt.timedelta(days=i) for i in range(3)]
    assert duck(cli_env, "SELECT day, region, span FROM days ORDER BY day") == [
        (d, "eu", 86400.0) for d in days
    ]
    header, *runs = cli.invoke(app, ["pipeline", "runs", "--pipeline", "daily"]).output.splitlines()
    assert header.split()[:7] == ["RUN", "PIPELINE", "STATE", "STARTED", "TOOK", "INTERVAL", "RERUN"]
    assert len(runs) == 3 and all(" succeeded " in line and "(backfill)" in line for line in runs)
    intervals = [re.search(r"(\d{4}-\d{2}-\d{2})T\S+ \(backfill\)", line) for line in runs]
    assert sorted(m.group(1) for m in intervals if m) == [d.isoformat() for d in days]
    # again: every interval has succeeded, so nothing runs
    again = cli.invoke(app, ["pipeline", "backfill", str(path), "--from", START.isoformat(), "--to", last])
    assert again.exit_code == 0 and "0 interval(s) (3 already succeeded or running)" in again.output
    # registered, it is listed with its last result, and the UI grid shows three succeeded intervals
    assert cli.invoke(app, ["pipeline", "schedule", str(path)]).output.startswith(
        "scheduled daily; next run due"
    )
    listed = cli.invoke(app, ["pipeline", "schedules"]).output.splitlines()
    assert listed[1].split()[:4] == ["daily", "0", "0", "*"] and listed[1].endswith(
        f"{days[2]}T00:00:00+00:00 succeeded"
    )
    assert grid_states(cli_env) == {
        "run": ["succeeded"] * 3,
        "day": ["succeeded"] * 3,
        "load": ["succeeded"] * 3,
    }
    assert cli.invoke(app, ["pipeline", "pause", "daily"]).output == "paused daily\n"
    assert " paused " in cli.invoke(app, ["pipeline", "schedules"]).output
    bad = cli.invoke(app, ["pipeline", "pause", "nope"])
    assert bad.exit_code != 0 and "pipeline 'nope' is not scheduled" in str(bad.exception)
    assert cli.invoke(app, ["pipeline", "resume", "daily"]).output == "resumed daily\n"
    assert cli.invoke(app, ["pipeline", "unschedule", "daily"]).output == "unscheduled daily\n"
    assert "nothing is scheduled" in cli.invoke(app, ["pipeline", "schedules"]).output


def test_backfill_refuses_freight_url_and_a_pipeline_without_schedule(
    cli_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = cli_env.write("daily.yaml", DAILY)
    cli = CliRunner()
    monkeypatch.setenv("FREIGHT_URL", "http://127.0.0.1:9")
    result = cli.invoke(
        app, ["pipeline", "backfill", str(path), "--from", "2026-01-01", "--to", "2026-01-02"]
    )
    assert "FREIGHT_URL: `freight pipeline backfill` works on the server's store" in str(result.exception)
    monkeypatch.delenv("FREIGHT_URL")
    plain = cli_env.write("plain.yaml", "name: plain\nsteps: [{name: a, type: sql, sql: SELECT 1}]\n")
    result = cli.invoke(
        app, ["pipeline", "backfill", str(plain), "--from", "2026-01-01", "--to", "2026-01-02"]
    )
    assert "pipeline plain has no `schedule`" in str(result.exception)
    assert json.loads(cli.invoke(app, ["pipeline", "runs", "--json"]).output) == []  # nothing recorded


def grid_states(env: Env) -> dict[str, list[str]]:
    """The UI's grid page, read as row → cell states."""
    import re
    import warnings

    from freight.jobs.service import JobService
    from freight.server import create_app
    from freight.server.tokens import create_token

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    service = JobService.open(env.settings)
    try:
        with TestClient(create_app(service=service)) as client:
            _, admin = create_token(service.engine, "admin", admin=True)
            client.post("/login", data={"token": admin})
            page = client.get("/pipelines/grid/daily")
            assert page.status_code == 200 and "Schedule <code>0 0 * * * (UTC)</code>" in page.text
            assert client.get("/pipelines/grid/nope").status_code == 404
    finally:
        service.close()
    rows: dict[str, list[str]] = {}
    for name, body in re.findall(r'<tr data-row="([^"]+)">(.*?)</tr>', page.text, re.S):
        rows[name] = re.findall(r'data-state="([^"]+)"', body)
    return rows


def test_planner_starts_due_runs_up_to_max_active_and_respects_pause(
    env: Env, runner: PipelineRunner
) -> None:
    from freight.pipelines.planner import Planner

    path = env.write(
        "daily.yaml", DAILY.replace('cron: "0 0 * * *"', 'cron: "0 0 * * *"\n  max_active_runs: 2')
    )
    pipeline = load_pipeline(path)
    store: RunStore = runner.store
    registry = ScheduleRegistry(store.engine)
    spec = pipeline.spec.model_dump(mode="json", exclude_none=True)
    registry.register("daily", spec, spec_path=str(path), base_dir=str(env.root), config_path=str(env.config))
    planner = Planner(store, lambda _config: runner)
    registry.set_paused("daily", True)
    now = dt.datetime.now(dt.UTC).timestamp()
    assert planner.tick(now).started == []
    registry.set_paused("daily", False)
    first = planner.tick(now)
    assert len(first.started) == 2  # three intervals are due, two may run at once
    assert planner.tick(now).started == []  # both still active
    for run_id in first.started:
        assert runner.follow(run_id, poll=0.2).state == "succeeded"
    third = planner.tick(now)
    assert len(third.started) == 1
    assert runner.follow(third.started[0], poll=0.2).state == "succeeded"
    assert planner.tick(now).started == []
    cells = store.by_interval("daily")
    assert sorted(r.interval_start_iso()[:10] for r in cells.values()) == [  # type: ignore[index]
        (START + dt.timedelta(days=i)).isoformat() for i in range(3)
    ]
    assert {r.trigger for r in cells.values()} == {"schedule"}
