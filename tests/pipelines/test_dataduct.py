"""Dataduct files run unchanged (converted to freight's spec) and import with a report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from freight.cli.main import app
from freight.errors import UserError
from freight.pipelines.dataduct import load_time, parse_table
from freight.pipelines.loader import load_pipeline, parse_pipeline
from freight.pipelines.runner import PipelineRunner
from tests.pipelines.conftest import Env
from tests.pipelines.helpers import duck, states

EXAMPLES = Path(__file__).parents[2] / "examples" / "dataduct"


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    return Path(shutil.copytree(EXAMPLES, tmp_path / "dataduct"))


def pg_runner(env: Env, runner: PipelineRunner) -> PipelineRunner:
    """The same platform, with the warehouse on PostgreSQL (the test's own schema)."""
    config = env.write(
        "pg.toml",
        env.config.read_text().replace("[connections.pgwh]", "[connections.warehouse]"),
    )
    return PipelineRunner(runner.client, runner.store, env.settings, config_path=config)


def test_orders_example_runs_unchanged_into_duckdb(env: Env, runner: PipelineRunner, examples: Path) -> None:
    path = examples / "orders.yaml"
    run = runner.run(load_pipeline(path), spec_path=str(path), poll=0.2)
    assert run.state == "succeeded", run.error
    assert set(states(run).values()) == {"succeeded"}
    assert duck(env, "SELECT id, note, amount FROM dev.orders_report ORDER BY id") == [
        (1, "first order", 10.5),
        (3, "tab-free NULL text", 7.25),
        (4, "fourth", 0.0),
    ]
    assert {c.check_type: c.status for c in run.checks} == {
        "check-primary-key": "pass",
        "check-count": "pass",
    }


def test_daily_rds_example_runs_into_postgres(env: Env, runner: PipelineRunner, examples: Path) -> None:
    path = examples / "daily_shop.yaml"
    pipeline = load_pipeline(path)
    assert pipeline.spec.schedule is not None and pipeline.spec.schedule.cron_expr() == "30 3 * * *"
    run = pg_runner(env, runner).run(pipeline, spec_path=str(path), poll=0.2)
    assert run.state == "succeeded", run.error
    with env.pg() as conn:
        rows = conn.execute("SELECT id, note FROM dev.orders_copy ORDER BY id").fetchall()
        conn.execute("DROP SCHEMA dev CASCADE")
    assert [r[0] for r in rows] == list(range(1, 9))
    assert rows[1] == (2, "") and rows[2] == (3, None)  # '' is not NULL


def test_import_writes_freights_file_with_a_report(tmp_path: Path, examples: Path) -> None:
    out = tmp_path / "orders.freight.yaml"
    result = CliRunner().invoke(app, ["pipeline", "import", str(examples / "orders.yaml"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert (
        f"{examples / 'orders.yaml'}:15: create-load-redshift → load load_orders into dev.orders"
        in result.output
    )
    assert "upsert → sql report: replaces rows by key ['id'] of dev.orders_report" in result.output
    pipeline = parse_pipeline(out.read_text(), source=str(out), base_dir=examples)
    assert pipeline.spec.step_names()[:4] == [
        "orders_file",
        "load_orders_create",
        "load_orders_columns",
        "load_orders",
    ]
    assert pipeline.spec.defaults.retries == 1


DEPENDS = """
name: dd
frequency: hourly
steps:
-   step_type: pipeline-dependencies
    name: deps
    dependent_pipelines: [upstream_a]
    dependent_pipelines_ok_to_fail: [upstream_b]
-   step_type: sql-command
    depends_on: deps
    command: SELECT %s
    script_arguments: [1]
"""


def test_dependencies_become_wait_for_and_arguments_fill_the_command(tmp_path: Path) -> None:
    spec = parse_pipeline(DEPENDS, source="dd.yaml", base_dir=tmp_path).spec
    assert [(w.pipeline, w.ok_to_fail, w.same_interval) for w in spec.wait_for] == [
        ("upstream_a", False, True),
        ("upstream_b", True, True),
    ]
    step = spec.steps[0]
    assert step.type == "sql" and step.sql == "SELECT 1" and step.depends_on == []
    assert spec.schedule is not None and spec.schedule.frequency == "hourly"


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            "- {step_type: emr-streaming, name: wc}",
            "dd.yaml:4: step wc (emr-streaming): freight cannot run EMR jobs",
        ),
        (
            "- {step_type: transform, command: ls}",
            "dd.yaml:4: step transform_0 (transform): Dataduct transforms",
        ),
        ("- {step_type: nosuch}", "dd.yaml:4: step nosuch_0: unknown Dataduct step_type 'nosuch'"),
        (
            "- {step_type: extract-local, path: a.tsv}\n"
            "- {step_type: create-load-redshift, table_definition: x.sql}",
            "dd.yaml:5: no table definition file 'x.sql'",
        ),
        (
            "- {step_type: sql-command, input_node: nope, command: x}",
            "dd.yaml:4: input_node 'nope' is not an earlier",
        ),
    ],
)
def test_what_freight_cannot_run_is_one_error_naming_the_step(
    tmp_path: Path, steps: str, message: str
) -> None:
    with pytest.raises(UserError) as err:
        parse_pipeline(
            f"name: dd\nfrequency: one-time\nsteps:\n{steps}\n", source="dd.yaml", base_dir=tmp_path
        )
    assert message in str(err.value)


def test_table_definitions_and_load_time() -> None:
    table = parse_table(
        "-- note\nCREATE TABLE s.t (a INT ENCODE zstd, b NUMERIC(10,2) DISTKEY, PRIMARY KEY (a, b))"
        " COMPOUND SORTKEY (a);",
        where="t.sql",
    )
    assert (table.name, table.columns, table.primary_key, table.schema) == (
        "s.t",
        ["a", "b"],
        ["a", "b"],
        "s",
    )
    assert "ENCODE" not in table.ddl and "SORTKEY" not in table.ddl and "IF NOT EXISTS s.t" in table.ddl
    assert load_time(60, "x") == "01:00" and load_time("23:30", "x") == "23:30"
    with pytest.raises(UserError, match="not HH:MM"):
        load_time("noon", "x")
