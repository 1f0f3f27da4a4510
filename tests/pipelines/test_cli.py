from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from freight.cli.pipeline import app
from freight.errors import UserError
from tests.pipelines.conftest import Env

PIPELINE = """
name: cli
steps:
  - name: orders
    type: extract-sql
    connection: shop
    table: orders
  - name: load
    type: load
    inputs: [orders]
    table: orders
  - name: pk
    type: check-primary-key
    depends_on: [load]
    table: orders
    columns: [id]
"""


@pytest.fixture
def cli_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    monkeypatch.setenv("FREIGHT_HOME", str(env.settings.home))
    monkeypatch.setenv("FREIGHT_CONFIG", str(env.config))
    return env


def test_validate_graph_schema(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    cli = CliRunner()
    result = cli.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and result.output == f"{path}: pipeline cli is valid (3 steps)\n"
    result = cli.invoke(app, ["graph", str(path)])
    assert result.output.splitlines() == [
        " 0  orders [extract-sql, one job with load]",
        " 1  load [load, one job with orders]  <- orders",
        " 2  pk [check-primary-key]  <- load",
    ]
    assert 'digraph "cli"' in cli.invoke(app, ["graph", str(path), "--format", "dot"]).output
    path.write_text(PIPELINE.replace("name: pk", "name: end"))  # `end` is a Mermaid keyword
    assert cli.invoke(app, ["graph", str(path), "--format", "mermaid"]).output.splitlines() == [
        "flowchart LR",
        '  s_orders["orders<br/>extract-sql"]',
        '  s_load["load<br/>load"]',
        '  s_end["end<br/>check-primary-key"]',
        "  s_orders --> s_load",
        "  s_load --> s_end",
    ]
    path.write_text(PIPELINE)
    assert json.loads(cli.invoke(app, ["schema"]).output)["title"] == "freight pipeline"
    path.write_text(PIPELINE.replace("type: load", "type: lod"))
    result = cli.invoke(app, ["validate", str(path)])
    assert isinstance(result.exception, UserError)  # freight's main prints it as one line, exit 2
    assert (
        str(result.exception) == f"{path}:9: steps.load.type: unknown step type 'lod' (did you mean `load`?)"
    )


def test_run_runs_show_rerun(cli_env: Env) -> None:
    path = cli_env.write("p.yaml", PIPELINE)
    cli = CliRunner()
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    found = re.search(r"^run (\S+)  pipeline cli  succeeded", result.output, re.MULTILINE)
    assert found is not None, result.output
    run_id = found.group(1)
    # it ends with where the data landed
    warehouse = cli_env.settings.home / "warehouse.duckdb"
    assert result.output.splitlines()[-1] == f"data landed in duckdb:{warehouse}: orders", result.output
    run = json.loads(cli.invoke(app, ["show", run_id, "--json"]).output)
    assert run["state"] == "succeeded" and [s["state"] for s in run["steps"]] == ["succeeded"] * 3
    listing = cli.invoke(app, ["runs"]).output
    assert listing.split()[:3] == ["RUN", "PIPELINE", "STATE"]
    assert run["id"] in listing and "succeeded" in listing
    shown = cli.invoke(app, ["show", run["id"]]).output
    assert f"run {run['id']}  pipeline cli  succeeded" in shown
    assert "check pk (check-primary-key): pass" in shown
    result = cli.invoke(app, ["rerun", run["id"]])
    assert isinstance(result.exception, UserError) and "has no failed steps" in str(result.exception)
    result = cli.invoke(app, ["rerun", run["id"], "--all", "--json"])
    assert json.loads(result.output)["rerun_of"] == run["id"]
    result = cli.invoke(app, ["show", "nope"])
    assert isinstance(result.exception, UserError) and str(result.exception).startswith(
        "no pipeline run 'nope'"
    )


SLOW = """
name: slow
steps:
  - name: nap
    type: transform-python
    script: nap.py
  - name: after
    type: transform-sql
    inputs: [nap]
    sql: SELECT * FROM nap
"""

NAP = """
import time

import pyarrow as pa


def transform():
    time.sleep(float(open("nap-seconds").read()) if __import__("os").path.exists("nap-seconds") else 0.5)
    return pa.table({"x": [1]})
"""


def _start(env: Env, nap: float) -> str:
    from freight.jobs.service import JobService
    from freight.pipelines.loader import load_pipeline
    from freight.pipelines.runner import PipelineRunner
    from freight.pipelines.store import RunStore

    env.write("nap.py", NAP)
    path = env.write("slow.yaml", SLOW)
    (env.root / "nap-seconds").write_text(str(nap))
    svc = JobService.open(env.settings)
    store = RunStore.open(env.settings.database_url)
    try:
        with svc.running():
            return PipelineRunner(svc, store, env.settings, config_path=env.config).start(
                load_pipeline(path), spec_path=str(path)
            )
    finally:
        store.close()
        svc.close()


def test_follow_attaches_to_a_run_whose_runner_went_away(cli_env: Env) -> None:
    run_id = _start(cli_env, 0.2)  # the "runner" returns without following, as if it had died
    result = CliRunner().invoke(app, ["follow", run_id, "--json"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)
    assert run["state"] == "succeeded"
    assert [s["state"] for s in run["steps"]] == ["succeeded", "succeeded"]


def test_cancel_stops_the_run_and_records_it(cli_env: Env) -> None:
    run_id = _start(cli_env, 60)
    result = CliRunner().invoke(app, ["cancel", run_id, "--json"])
    assert result.exit_code == 1, result.output  # the run did not succeed
    run = json.loads(result.output)
    assert run["state"] == "failed"
    states = {s["step"]: s["state"] for s in run["steps"]}
    assert states == {"nap": "cancelled", "after": "cancelled"}, states
    assert run["error"] == "step nap cancelled"


def test_a_named_connections_file_that_is_not_there_is_an_error(
    cli_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # without it, the steps would load into the default DuckDB warehouse, not the one meant
    path = cli_env.write("p.yaml", PIPELINE)
    missing = cli_env.root / "nothere.toml"
    result = CliRunner().invoke(app, ["run", str(path), "-c", str(missing)])
    assert isinstance(result.exception, UserError)
    assert (
        str(result.exception)
        == f"--config: no connections file {str(missing)!r} (give the path of your freight.toml)"
    )
    monkeypatch.setenv("FREIGHT_CONFIG", str(missing))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert str(result.exception).startswith("FREIGHT_CONFIG: no connections file")
    assert not (cli_env.settings.home / "freight.db").exists()  # nothing recorded
