"""Pipeline runs end to end through the real platform (JobService: every step an isolated job) on the
real MariaDB, PostgreSQL and DuckDB."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from freight.pipelines.runner import PipelineRunner
from tests.pipelines.conftest import EDGE_ROWS, Env
from tests.pipelines.helpers import duck, run_yaml, states


def test_every_step_type_and_qa_results(env: Env, runner: PipelineRunner) -> None:
    (env.root / "in").mkdir()
    (env.root / "in" / "a.csv").write_text('sku,label\nS1,""\nS2,"tab\there"\n')
    (env.root / "in" / "b.csv").write_text("sku,label\nS3,NULL\n")
    env.write(
        "enrich.py",
        "def transform(skus):\n    return skus.append_column('n', pa.array([1] * skus.num_rows))\n"
        "import pyarrow as pa\n",
    )
    env.write(
        "mymod.py",
        "import pyarrow.compute as pc\n\ndef upper(enriched):\n"
        "    return enriched.set_column(0, 'sku', pc.utf8_lower(enriched['sku']))\n",
    )
    with env.pg() as pg:
        pg.execute("CREATE TABLE src_customers (id int primary key, name text)")
        pg.execute("INSERT INTO src_customers VALUES (1, 'ann'), (2, ''), (3, NULL)")
    run = run_yaml(
        env,
        runner,
        f"""
name: all-steps
defaults:
  resources: {{cpus: 0.5, memory: 384M}}
steps:
  - name: skus
    type: extract-files
    path: in/*.csv
  - name: enriched
    type: transform-python
    inputs: [skus]
    script: enrich.py
  - name: lowered
    type: transform-python
    inputs: [enriched]
    function: mymod:upper
  - name: customers
    type: extract-sql
    connection: pgsrc
    query: SELECT * FROM {env.pg_schema}.src_customers
  - name: orders
    type: extract-sql
    connection: shop
    table: orders
    split: {{column: id, parts: 2}}
  - name: joined
    type: transform-sql
    inputs: [orders, customers]
    sql: SELECT o.id, o.note, o.amount, c.name FROM orders o LEFT JOIN customers c ON c.id = o.id
  - name: load_skus
    type: load
    inputs: [lowered]
    table: skus
    mode: replace
  - name: load_joined
    type: load
    inputs: [joined]
    warehouse: pgwh
    table: joined
    mode: upsert
    primary_key: [id]
  - name: summary
    type: sql
    warehouse: pgwh
    depends_on: [load_joined]
    sql: CREATE TABLE summary AS SELECT count(*) AS n FROM joined; INSERT INTO summary VALUES (-1)
  - name: columns_match
    type: check-columns
    inputs: [joined]
    depends_on: [load_joined]
    warehouse: pgwh
    table: joined
    key: [id]
  - name: columns_vs_source
    type: check-columns
    depends_on: [load_joined]
    warehouse: pgwh
    table: joined
    key: [id]
    columns: [note, amount]
    source: {{connection: shop, table: orders}}
  - name: no_negative
    type: check-sql
    depends_on: [summary]
    warehouse: pgwh
    sql: SELECT n FROM summary WHERE n < -1
  - name: total
    type: check-sql
    depends_on: [summary]
    warehouse: pgwh
    sql: SELECT max(n) FROM summary
    expect: {len(EDGE_ROWS)}
  - name: count_vs_mariadb
    type: check-count
    depends_on: [load_joined]
    warehouse: pgwh
    table: joined
    source: {{connection: shop, query: SELECT id FROM orders}}
""",
    )
    assert run.state == "succeeded", [(s.step, s.state, s.error) for s in run.steps]
    assert set(states(run).values()) == {"succeeded"}
    assert duck(env, "SELECT sku, label, n FROM skus ORDER BY sku") == [
        ("s1", "", 1),
        ("s2", "tab\there", 1),
        ("s3", "NULL", 1),
    ]
    with env.pg() as pg:
        got = pg.execute("SELECT id, note, amount, name FROM joined ORDER BY id").fetchall()
        assert pg.execute("SELECT n FROM summary ORDER BY n").fetchall() == [(-1,), (len(EDGE_ROWS),)]
    names = {1: "ann", 2: "", 3: None}
    assert got == [(r[0], r[1], r[2], names.get(r[0])) for r in EDGE_ROWS]
    assert {(c.step, c.status) for c in run.checks} == {
        ("columns_match", "pass"),
        ("columns_vs_source", "pass"),
        ("no_negative", "pass"),
        ("total", "pass"),
        ("count_vs_mariadb", "pass"),
    }
    # each step ran as its own platform job, with its own limits
    job = runner.client.get(run.step("orders").job_id or "")
    assert job.spec.resources.cpus == 0.5 and job.spec.resources.memory == 384 * 1024**2
    assert job.spec.command is not None and job.spec.command[1:3] == ["-m", "freight.pipelines.step"]
    assert job.labels["pipeline_run"] == run.id
    # independent steps are submitted with no dependency between them, so they run side by side
    assert runner.client.get(run.step("customers").job_id or "").spec.depends_on == []
    # the dataset between steps is Parquet in the object store
    parts = sorted(
        (env.settings.home / "objects" / "runs" / "all-steps" / run.id / "orders").glob("part-*.parquet")
    )
    assert parts and sum(pq.ParquetFile(p).metadata.num_rows for p in parts) == len(EDGE_ROWS)


def test_qa_fail_cascades_and_warn_does_not(env: Env, runner: PipelineRunner) -> None:
    run = run_yaml(
        env,
        runner,
        """
name: qa
steps:
  - name: orders
    type: extract-sql
    connection: shop
    query: SELECT id % 3 AS id, note FROM orders
  - name: load
    type: load
    inputs: [orders]
    table: dupes
  - name: pk_warn
    type: check-primary-key
    depends_on: [load]
    table: dupes
    columns: [id]
    on_fail: warn
  - name: count_off
    type: check-count
    inputs: [orders]
    depends_on: [load]
    table: dupes
    tolerance: 5
  - name: pk_fail
    type: check-primary-key
    depends_on: [load]
    table: dupes
    columns: [id]
  - name: after_fail
    type: sql
    depends_on: [pk_fail]
    sql: CREATE TABLE never (x int)
  - name: after_that
    type: sql
    depends_on: [after_fail]
    sql: CREATE TABLE never2 (x int)
""",
    )
    assert run.state == "failed"
    assert states(run) == {
        "orders": "succeeded",
        "load": "succeeded",
        "pk_warn": "succeeded",
        "count_off": "succeeded",
        "pk_fail": "failed",
        "after_fail": "upstream_failed",
        "after_that": "upstream_failed",
    }
    # named by step, not by the scheduler's job id
    assert run.step("after_fail").error == "upstream step pk_fail did not succeed"
    assert run.step("after_that").error == "upstream step after_fail did not succeed"
    checks = {c.step: c for c in run.checks}
    assert (checks["pk_warn"].status, checks["pk_fail"].status, checks["count_off"].status) == (
        "warn",
        "fail",
        "pass",
    )
    assert json.loads(checks["pk_fail"].observed) == {"duplicate_keys": 3, "null_keys": 0}
    assert checks["pk_fail"].message == "dupes(id): 3 duplicated key(s), 0 row(s) with a NULL key"
    assert run.error == "step pk_fail failed: dupes(id): 3 duplicated key(s), 0 row(s) with a NULL key"
    assert duck(env, "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'never%'") == [
        (0,)
    ]


def test_rerun_from_failed_reruns_only_the_failed_branch(env: Env, runner: PipelineRunner) -> None:
    text = """
name: rr
steps:
  - name: orders
    type: extract-sql
    connection: shop
    table: orders
  - name: other
    type: extract-sql
    connection: shop
    query: SELECT 1 AS x
  - name: shaped
    type: transform-sql
    inputs: [orders]
    file: shape.sql
  - name: load
    type: load
    inputs: [shaped]
    table: shaped
    mode: upsert
    primary_key: [id]
"""
    env.write("shape.sql", "SELECT id, no_such_column FROM orders")
    first = run_yaml(env, runner, text)
    assert first.state == "failed"
    assert states(first) == {
        "orders": "succeeded",
        "other": "succeeded",
        "shaped": "failed",
        "load": "upstream_failed",
    }
    assert 'steps.shaped.sql: Binder Error: Referenced column "no_such_column" not found' in (
        first.step("shaped").error or ""
    )
    assert "\n" not in (first.step("shaped").error or "")  # one line, as every step error
    env.write("shape.sql", "SELECT id, note FROM orders")  # the fix
    second = runner.rerun(first.id, from_failed=True, poll=0.2)
    assert second.state == "succeeded" and second.rerun_of == first.id
    assert states(second) == {
        "orders": "reused",
        "other": "reused",
        "shaped": "succeeded",
        "load": "succeeded",
    }
    assert second.step("orders").reused_from == first.id and second.step("orders").job_id is None
    third = runner.rerun(second.id, from_failed=False, poll=0.2)  # everything again: upsert, no duplicates
    assert third.state == "succeeded" and set(states(third).values()) == {"succeeded"}
    assert duck(env, "SELECT count(*), count(DISTINCT id) FROM shaped") == [(len(EDGE_ROWS), len(EDGE_ROWS))]


def test_failed_step_error_is_redacted(
    env: Env, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    # The database name plays the secret: it comes from the environment and the server echoes it back.
    env.config.write_text(
        env.config.read_text() + '\n[connections.secretive]\nkind = "mariadb"\n'
        'url = "mysql://root@127.0.0.1:3306/${FREIGHT_TEST_DB_SECRET}"\n'
    )
    monkeypatch.setenv("FREIGHT_TEST_DB_SECRET", env.mariadb)
    # jobs get the environment the platform's scheduler had when it started: set it first
    runner: PipelineRunner = request.getfixturevalue("runner")
    run = run_yaml(
        env,
        runner,
        f"""
name: leak
steps:
  - name: e
    type: extract-sql
    connection: secretive
    query: SELECT {env.mariadb}.orders.nope FROM orders
""",
    )
    assert run.state == "failed"
    error = run.step("e").error or ""
    assert env.mariadb not in error and "Unknown column '***.orders.nope'" in error
    logs = b"".join(runner.client.logs(run.step("e").job_id or "")).decode()
    assert env.mariadb not in logs and "step e failed: reading from 'secretive' failed" in logs
    # the step got the one variable its connection names, not the server's environment
    spec = runner.client.get(run.step("e").job_id or "").spec
    assert spec.pass_env == ["FREIGHT_TEST_DB_SECRET"] and not spec.inherit_env


_ = pa
