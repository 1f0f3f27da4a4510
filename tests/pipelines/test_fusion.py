"""An extract-sql feeding one load runs as one job; the run still shows two steps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from freight.connectors.duckdb_warehouse import DuckDBWarehouse
from freight.pipelines.datasets import DatasetWriter, count_rows
from freight.pipelines.fusion import fused_pairs
from freight.pipelines.loader import load_pipeline
from freight.pipelines.runner import STEP_ENV, PipelineRunner
from freight.pipelines.spec import PipelineSpec
from freight.pipelines.steps.fused import Tee
from freight.storage.objectstore import ObjectStore
from tests.pipelines.conftest import EDGE_ROWS, Env
from tests.pipelines.helpers import run_yaml, states

EXTRACT = {"name": "raw", "type": "extract-sql", "connection": "shop", "table": "orders"}
LOAD = {"name": "load", "type": "load", "inputs": ["raw"], "table": "orders"}


def spec(*steps: dict[str, Any], **top: Any) -> PipelineSpec:
    return PipelineSpec.model_validate({"name": "p", "steps": list(steps), **top})


def test_an_extract_feeding_one_load_fuses() -> None:
    assert fused_pairs(spec(EXTRACT, LOAD)) == {"raw": "load"}


@pytest.mark.parametrize(
    "steps, top",
    [
        ([{**EXTRACT, "fuse": False}, LOAD], {}),
        ([EXTRACT, {**LOAD, "fuse": False}], {}),
        ([EXTRACT, LOAD], {"fuse": False}),
        # something else reads or waits for the extract
        ([EXTRACT, LOAD, {"name": "n", "type": "check-count", "inputs": ["raw"], "table": "orders"}], {}),
        ([EXTRACT, LOAD, {"name": "s", "type": "sql", "sql": "SELECT 1", "depends_on": ["raw"]}], {}),
        # the load waits for something else too
        (
            [EXTRACT, {"name": "s", "type": "sql", "sql": "SELECT 1"}, {**LOAD, "depends_on": ["s"]}],
            {},
        ),
        # not an extract-sql
        (
            [{"name": "raw", "type": "transform-sql", "sql": "SELECT 1 AS x"}, LOAD],
            {},
        ),
    ],
    ids=[
        "extract-says-no",
        "load-says-no",
        "pipeline-says-no",
        "checked",
        "waited-for",
        "load-waits",
        "transform",
    ],
)
def test_what_keeps_a_pair_apart(steps: list[dict[str, Any]], top: dict[str, Any]) -> None:
    assert fused_pairs(spec(*steps, **top)) == {}


def test_a_reused_extract_leaves_its_load_alone() -> None:
    assert fused_pairs(spec(EXTRACT, LOAD), reuse={"raw"}) == {}


PAIR = """
name: fused
steps:
  - {name: raw, type: extract-sql, connection: shop, table: orders, batch_size: 3,
     resources: {memory: 700M}}
  - {name: load, type: load, inputs: [raw], warehouse: WH, table: orders_f, mode: replace,
     resources: {cpus: 2}}
"""


def test_the_pair_compiles_to_one_job_and_every_job_gets_the_allocator_env(
    env: Env, local_runner: PipelineRunner
) -> None:
    text = PAIR.replace("WH", "warehouse") + (
        "  - {name: after, type: sql, sql: 'SELECT 1', depends_on: [load]}\n"
    )
    compiled = local_runner.compile(load_pipeline(env.write("p.yaml", text)))
    (names, job), (after_names, after) = compiled.jobs
    assert names == ("raw", "load") and after_names == ("after",)
    assert job.argv()[-4:] == ["--step", "raw", "--step", "load"]
    assert job.name == "fused/raw+load" and job.labels["pipeline_step"] == "raw+load"
    assert (job.resources.cpus, job.resources.memory) == (2.0, 700 * 1024**2)
    for spec_ in (job, after):
        assert {k: spec_.env[k] for k in STEP_ENV} == {
            "RUST_LOG": "off",
            "ARROW_DEFAULT_MEMORY_POOL": "system",
            "MALLOC_ARENA_MAX": "2",
        }


def test_a_step_job_allocates_from_the_system_pool(env: Env, local_runner: PipelineRunner) -> None:
    """What the step process itself sees (a real subprocess with the job's environment)."""
    env.write(
        "probe.py",
        "import os\nimport pyarrow as pa\n\n\ndef transform():\n"
        "    return pa.table({'pool': [pa.default_memory_pool().backend_name],\n"
        "                     'arenas': [os.environ.get('MALLOC_ARENA_MAX')]})\n",
    )
    run = run_yaml(
        env,
        local_runner,
        "name: probe\nsteps:\n  - {name: probe, type: transform-python, script: probe.py}\n",
    )
    assert run.state == "succeeded", [(s.step, s.error) for s in run.steps]
    from freight.pipelines.datasets import read_dataset

    (out,) = read_dataset(ObjectStore(run.step("probe").output_url or "")).read_all().to_pylist()
    assert out == {"pool": "system", "arenas": "2"}


@pytest.mark.parametrize("warehouse", ["warehouse", "pgwh"])
def test_a_fused_run_shows_both_steps_and_keeps_the_extract_dataset(
    env: Env, local_runner: PipelineRunner, warehouse: str
) -> None:
    run = run_yaml(env, local_runner, PAIR.replace("WH", warehouse))
    assert run.state == "succeeded", [(s.step, s.state, s.error) for s in run.steps]
    raw, load = run.step("raw"), run.step("load")
    assert raw.job_id == load.job_id and raw.job_id is not None
    assert (raw.rows, load.rows) == (len(EDGE_ROWS), len(EDGE_ROWS))
    assert raw.metrics["fused_with"] == "load" and load.metrics["fused_with"] == "raw"
    assert raw.ended_at is not None and load.ended_at is not None and raw.ended_at <= load.ended_at
    assert count_rows(ObjectStore(raw.output_url or "")) == len(EDGE_ROWS)
    rows = _loaded(env, warehouse)
    assert rows == [(r[0], r[1], r[2], r[4]) for r in EDGE_ROWS]  # '' vs NULL, tabs, doubles exact


def _loaded(env: Env, warehouse: str) -> list[tuple[object, ...]]:
    sql = "SELECT id, note, amount, qty FROM orders_f ORDER BY id"
    if warehouse == "pgwh":
        with env.pg() as pg:
            return pg.execute(sql).fetchall()
    from tests.pipelines.helpers import duck

    return duck(env, sql)


def test_a_failed_load_keeps_the_extract_and_a_rerun_loads_only(
    env: Env, local_runner: PipelineRunner
) -> None:
    with env.pg() as pg:  # a column the data cannot go into: COPY fails mid-stream
        pg.execute("CREATE TABLE orders_f (id int, note int, amount float8, placed timestamp, qty int)")
    run = run_yaml(env, local_runner, PAIR.replace("WH", "pgwh"))
    assert states(run) == {"raw": "succeeded", "load": "failed"}
    assert "orders_f" in (run.step("load").error or "") and run.step("raw").error is None
    assert count_rows(ObjectStore(run.step("raw").output_url or "")) == len(EDGE_ROWS)
    with env.pg() as pg:
        pg.execute("DROP TABLE orders_f")
    again = local_runner.rerun(run.id, poll=0.2)
    assert states(again) == {"raw": "reused", "load": "succeeded"}
    assert again.step("load").rows == len(EDGE_ROWS)
    assert _loaded(env, "pgwh") == [(r[0], r[1], r[2], r[4]) for r in EDGE_ROWS]


def test_a_failed_source_fails_the_extract_and_not_the_load(env: Env, local_runner: PipelineRunner) -> None:
    text = PAIR.replace("WH", "pgwh").replace("table: orders,", "query: 'SELECT nope FROM orders',")
    run = run_yaml(env, local_runner, text)
    assert states(run) == {"raw": "failed", "load": "upstream_failed"}
    assert "nope" in (run.step("raw").error or "")
    assert run.step("load").error == "upstream step raw failed"
    with env.pg() as pg:
        assert pg.execute("SELECT to_regclass('orders_f')").fetchone() == (None,)


def test_fuse_false_runs_two_jobs(env: Env, local_runner: PipelineRunner, tmp_path: Path) -> None:
    run = run_yaml(env, local_runner, PAIR.replace("WH", "warehouse") + "fuse: false\n")
    assert run.state == "succeeded"
    raw, load = run.step("raw"), run.step("load")
    assert raw.job_id != load.job_id and "fused_with" not in raw.metrics
    assert load.rows == len(EDGE_ROWS)


SCHEMA = pa.schema([("id", pa.int64())])


def _batches(fail: bool) -> Iterator[pa.RecordBatch]:
    yield pa.record_batch([pa.array([1, 2])], schema=SCHEMA)
    yield pa.record_batch([pa.array([3])], schema=SCHEMA)
    if fail:
        raise RuntimeError("the source went away")


def test_a_source_failing_mid_stream_is_the_extracts_error_and_the_load_rolls_back(tmp_path: Path) -> None:
    tee = Tee(
        pa.RecordBatchReader.from_batches(SCHEMA, _batches(fail=True)),
        DatasetWriter(ObjectStore(f"file://{tmp_path}/raw"), schema=SCHEMA),
    )
    warehouse = DuckDBWarehouse(str(tmp_path / "wh.duckdb"))
    with pytest.raises(Exception, match="went away"):
        warehouse.load("t", tee.stream())
    assert isinstance(tee.error, RuntimeError) and not tee.done
    assert warehouse.columns("t") is None  # the table it created went with the transaction
    warehouse.close()


def test_what_a_failed_load_did_not_read_still_lands_in_the_dataset(tmp_path: Path) -> None:
    store = ObjectStore(f"file://{tmp_path}/raw")
    tee = Tee(
        pa.RecordBatchReader.from_batches(SCHEMA, _batches(fail=False)), DatasetWriter(store, schema=SCHEMA)
    )
    stream = tee.stream()
    stream.read_next_batch()  # the load read one batch, then failed
    tee.drain()
    assert tee.done and tee.error is None and count_rows(store) == 3


def test_a_fused_pair_on_the_real_platform(env: Env, runner: PipelineRunner) -> None:
    """Through the embedded JobService: one isolated job, its cgroup's peak shown on both steps."""
    run = run_yaml(env, runner, PAIR.replace("WH", "pgwh"))
    assert run.state == "succeeded", [(s.step, s.state, s.error) for s in run.steps]
    raw, load = run.step("raw"), run.step("load")
    assert raw.job_id == load.job_id and (raw.rows, load.rows) == (len(EDGE_ROWS), len(EDGE_ROWS))
    assert raw.metrics["job_peak_memory"] == load.metrics["job_peak_memory"] > 0
    assert _loaded(env, "pgwh") == [(r[0], r[1], r[2], r[4]) for r in EDGE_ROWS]
