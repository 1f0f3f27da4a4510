"""Incremental extracts committed exactly once with their load; merge (SCD2) and delete_insert."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psycopg
import pymysql
import pytest

from freight.errors import UserError
from freight.pipelines.loader import load_pipeline
from freight.pipelines.runner import PipelineRunner
from freight.pipelines.step import load_context, run_step
from tests.pipelines.conftest import Env
from tests.pipelines.helpers import run_yaml
from tests.pipelines.stepdriver import run_once

BASE = dt.datetime(2026, 1, 1)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Setup:
    tmp: Path
    db: str
    table: str
    warehouse_toml: str

    def write(self, pipeline: str) -> tuple[Path, Path]:
        config = self.tmp / "freight.toml"
        config.write_text(
            f'[connections.src]\nkind = "mariadb"\nurl = "mysql://root@127.0.0.1:3306/{self.db}"\n\n'
            + self.warehouse_toml
        )
        path = self.tmp / "p.yaml"
        path.write_text(pipeline.replace("TABLE", self.table))
        return path, config

    def insert(self, rows: list[tuple[int, dt.datetime, str]]) -> None:
        conn = pymysql.connect(host="127.0.0.1", user="root", database=self.db, autocommit=True)
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.table} (id, updated_at, note) VALUES (%s, %s, %s) "
                "ON DUPLICATE KEY UPDATE updated_at = VALUES(updated_at), note = VALUES(note)",
                rows,
            )
        conn.close()


@pytest.fixture
def source(mariadb_db: str, tmp_path: Path) -> Iterator[Setup]:
    table = f"ev_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(host="127.0.0.1", user="root", database=mariadb_db, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, updated_at DATETIME(6), note VARCHAR(40))")
    duck = tmp_path / "wh.duckdb"
    yield Setup(tmp_path, mariadb_db, table, f'[connections.warehouse]\nkind = "duckdb"\npath = "{duck}"\n')
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE {table}")
    conn.close()


PIPELINE = """
name: inc
steps:
  - name: extract
    type: extract-sql
    connection: src
    table: TABLE
    batch_size: 50
    incremental: {cursor: updated_at}
  - name: load
    type: load
    inputs: [extract]
    table: events
"""


def rows(n0: int, n1: int, note: str = "v1") -> list[tuple[int, dt.datetime, str]]:
    return [(i, BASE + dt.timedelta(seconds=i), f"{note}-{i}") for i in range(n0, n1)]


def duck(setup: Setup, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(setup.tmp / "wh.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def run(setup: Setup, pipeline: str, *, fused: bool = False) -> dict[str, dict[str, object]]:
    path, config = setup.write(pipeline)
    return run_once(load_pipeline(path), config, setup.tmp / "home", f"file://{setup.tmp}/runs", fused=fused)


@pytest.mark.parametrize("fused", [False, True], ids=["steps", "fused"])
def test_each_run_reads_only_rows_past_the_committed_cursor(source: Setup, fused: bool) -> None:
    source.insert(rows(1, 101))
    first = run(source, PIPELINE, fused=fused)
    assert first["extract"]["rows"] == 100 and first["load"]["rows"] == 100
    source.insert(rows(101, 131))
    second = run(source, PIPELINE, fused=fused)
    assert second["extract"]["rows"] == 30 and second["load"]["rows"] == 30
    third = run(source, PIPELINE, fused=fused)
    assert third["extract"]["rows"] == 0 and third["load"]["note"] == "no new rows"
    assert duck(source, "SELECT count(*), count(DISTINCT id), max(id) FROM events") == [(130, 130, 130)]
    cursor = duck(source, "SELECT name, cursor_value, cursor_kind FROM freight_cursors")
    assert cursor == [("inc.extract", str(BASE + dt.timedelta(seconds=130)), "timestamp")]


def test_initial_and_lag_bound_the_first_read(source: Setup) -> None:
    now = dt.datetime.now().replace(microsecond=0)
    source.insert([(1, BASE, "old"), (2, BASE + dt.timedelta(days=1), "in"), (3, now, "too fresh")])
    start = (BASE + dt.timedelta(hours=1)).isoformat(sep=" ")
    pipeline = PIPELINE.replace(
        "incremental: {cursor: updated_at}",
        f"incremental: {{cursor: updated_at, initial: '{start}', lag: 1h}}",
    )
    out = run(source, pipeline)
    assert out["extract"]["rows"] == 1
    assert duck(source, "SELECT id FROM events") == [(2,)]


def test_rerunning_a_load_that_committed_adds_nothing(source: Setup) -> None:
    source.insert(rows(1, 21))
    path, config = source.write(PIPELINE)
    run_once(load_pipeline(path), config, source.tmp / "home", f"file://{source.tmp}/runs")
    (run_dir,) = (source.tmp / "runs").iterdir()
    again = run_step(load_context(f"file://{run_dir}", "load"))
    assert again["note"] == "already loaded"
    assert duck(source, "SELECT count(*) FROM events") == [(20,)]


def test_merge_with_history_keeps_every_version(source: Setup) -> None:
    merge = PIPELINE.replace(
        "table: events", "table: events\n    mode: merge\n    primary_key: [id]\n    history: true"
    )
    source.insert(rows(1, 4))
    run(source, merge)
    later = BASE + dt.timedelta(days=1)
    source.insert([(2, later, "v2-2"), (4, later, "v1-4")])
    run(source, merge)
    current = duck(source, "SELECT id, note FROM events WHERE _current ORDER BY id")
    assert current == [(1, "v1-1"), (2, "v2-2"), (3, "v1-3"), (4, "v1-4")]
    closed = duck(source, "SELECT id, note FROM events WHERE NOT _current AND _valid_to IS NOT NULL")
    assert closed == [(2, "v1-2")]


def test_merge_without_history_keeps_the_latest_row_per_key(source: Setup) -> None:
    merge = PIPELINE.replace("table: events", "table: events\n    mode: merge\n    primary_key: [id]")
    source.insert(rows(1, 4))
    run(source, merge)
    source.insert([(2, BASE + dt.timedelta(days=1), "v2-2")])
    run(source, merge)
    assert duck(source, "SELECT id, note FROM events ORDER BY id") == [(1, "v1-1"), (2, "v2-2"), (3, "v1-3")]


def test_delete_insert_replaces_the_range_the_data_covers(source: Setup) -> None:
    pipeline = """
name: di
steps:
  - {name: extract, type: extract-sql, connection: src, query: "SELECT id, note FROM TABLE WHERE id >= 3"}
  - {name: load, type: load, inputs: [extract], table: events, mode: delete_insert, interval_column: id}
"""
    source.insert(rows(1, 6))
    run(source, pipeline)
    run(source, pipeline)
    assert duck(source, "SELECT count(*), min(id), max(id) FROM events") == [(3, 3, 5)]


def test_a_cursor_that_is_not_a_column_is_named(source: Setup) -> None:
    source.insert(rows(1, 3))
    bad = PIPELINE.replace("cursor: updated_at", "cursor: updated")
    with pytest.raises(UserError) as err:
        run(source, bad)
    assert err.value.where == "steps.extract.incremental.cursor"


@pytest.mark.parametrize("fused", [False, True], ids=["steps", "fused"])
def test_killed_mid_run_twenty_times_loses_and_repeats_nothing(
    source: Setup, pg_url: str, fused: bool
) -> None:
    """A real process runs extract → load in a loop (as two steps, or as one fused job); it is
    SIGKILLed at a random moment after it starts a step, 20 times, with new rows arriving between
    kills. The last run completes."""
    source.warehouse_toml = f'[connections.warehouse]\nkind = "postgres"\nurl = "{pg_url}"\n'
    path, config = source.write(PIPELINE)
    argv = [sys.executable, str(ROOT / "tests/pipelines/stepdriver.py"), str(path), str(config)]
    argv += [str(source.tmp / "home"), f"file://{source.tmp}/runs"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RUST_LOG": "off"}
    rng = random.Random(11)
    total = 0
    phases: list[str] = []
    for kill in range(20):
        source.insert(rows(total + 1, total + 301))
        total += 300
        flags = ["--loop", "--fused"] if fused else ["--loop"]
        child = subprocess.Popen([*argv, *flags], stdout=subprocess.PIPE, env=env, text=True)
        assert child.stdout is not None
        target = "load" if kill % 4 else "extract"
        while (line := child.stdout.readline().strip()) != target:
            assert line, f"the driver ended early (exit {child.wait()})"
        time.sleep(rng.uniform(0, 0.15))  # where in the step the kill lands; nothing waits on it
        child.send_signal(signal.SIGKILL)
        child.wait()
        phases.append(target)
    done = subprocess.run([*argv, *flags[1:]], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    with psycopg.connect(pg_url) as conn:
        count, distinct, low, high = conn.execute(
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM events"
        ).fetchone() or (0, 0, 0, 0)
        cursor = conn.execute("SELECT cursor_value FROM freight_cursors").fetchone()
    assert (count, distinct, low, high) == (total, total, 1, total)
    assert cursor == (str(BASE + dt.timedelta(seconds=total)),)
    assert {"load", "extract"} <= set(phases)


def test_through_the_runner_and_a_transform_into_postgresql(env: Env, local_runner: PipelineRunner) -> None:
    """The real runner's manifest, step jobs as processes, a transform between extract and load."""
    text = """
name: inc_runner
steps:
  - name: raw
    type: extract-sql
    connection: shop
    table: orders
    batch_size: 3
    incremental: {cursor: id, initial: 3, warehouse: pgwh}
  - {name: doubled, type: transform-sql, inputs: [raw], sql: "SELECT id, qty * 2 AS qty2 FROM raw"}
  - {name: load, type: load, inputs: [doubled], warehouse: pgwh, table: doubled, mode: merge,
     primary_key: [id]}
"""
    first = run_yaml(env, local_runner, text)
    second = run_yaml(env, local_runner, text)
    assert first.state == second.state == "succeeded"
    assert [s.rows for s in first.steps] == [6, 6, 6] and second.steps[0].rows == 0
    with env.pg() as conn:
        conn.execute(f"SET search_path = {env.pg_schema}")
        assert conn.execute("SELECT count(*), min(id), max(id) FROM doubled").fetchone() == (6, 3, 8)
        assert conn.execute("SELECT cursor_value FROM freight_cursors").fetchone() == ("8",)
