"""Whole pipeline runs against the real MariaDB, PostgreSQL and DuckDB, through the runner and the
in-process JobClient double (each step still runs as its own `python -m freight.pipelines.step`)."""

from __future__ import annotations

import duckdb

from freight.pipelines.loader import load_pipeline
from freight.pipelines.runner import PipelineRunner
from tests.pipelines.conftest import EDGE_ROWS, Env


def test_extract_transform_load_check_into_duckdb_and_postgres(
    env: Env, local_runner: PipelineRunner
) -> None:
    env.write("sql/daily.sql", "SELECT id, note, amount, qty * 2 AS qty2 FROM orders_raw WHERE id <= 8")
    path = env.write(
        "p.yaml",
        """
name: shop
steps:
  - name: orders_raw
    type: extract-sql
    connection: shop
    table: orders
    batch_size: 3
  - name: orders
    type: transform-sql
    inputs: [orders_raw]
    file: sql/daily.sql
  - name: load_duck
    type: load
    inputs: [orders]
    table: orders
    mode: upsert
    primary_key: [id]
  - name: load_pg
    type: load
    inputs: [orders]
    warehouse: pgwh
    table: orders
    mode: upsert
    primary_key: [id]
  - name: pk_pg
    type: check-primary-key
    depends_on: [load_pg]
    warehouse: pgwh
    table: orders
    columns: [id]
  - name: count_duck
    type: check-count
    inputs: [orders_raw]
    depends_on: [load_duck]
    table: orders
""",
    )
    run = local_runner.run(load_pipeline(path), spec_path=str(path), poll=0.2)
    assert run.state == "succeeded", [(s.step, s.state, s.error) for s in run.steps]
    assert {s.step: s.rows for s in run.steps}["orders_raw"] == len(EDGE_ROWS)
    assert [(c.check_type, c.status) for c in run.checks] == [
        ("check-primary-key", "pass"),
        ("check-count", "pass"),
    ] or sorted(c.check_type for c in run.checks) == ["check-count", "check-primary-key"]
    expected = [(r[0], r[1], r[2], None if r[4] is None else r[4] * 2) for r in EDGE_ROWS]
    con = duckdb.connect(str(env.settings.home / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT id, note, amount, qty2 FROM orders ORDER BY id").fetchall() == expected
    con.close()
    with env.pg() as pg:
        assert pg.execute("SELECT id, note, amount, qty2 FROM orders ORDER BY id").fetchall() == expected


def test_cancel_marks_every_unfinished_step_cancelled_even_when_the_cascade_is_fast(
    env: Env, local_runner: PipelineRunner
) -> None:
    """The double cascades a cancelled job's dependents at once, as a quick scheduler may: the runner
    cancels dependents first, so none of them reads as upstream_failed (a flaky CLI test under load)."""
    from tests.pipelines.test_cli import NAP, SLOW

    env.write("nap.py", NAP)
    (env.root / "nap-seconds").write_text("60")
    path = env.write("slow.yaml", SLOW)
    run_id = local_runner.start(load_pipeline(path), spec_path=str(path))
    local_runner.cancel(run_id)
    run = local_runner.follow(run_id, poll=0.05)
    assert {s.step: s.state for s in run.steps} == {"nap": "cancelled", "after": "cancelled"}
    assert run.error == "step nap cancelled"
