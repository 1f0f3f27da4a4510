"""extract-http in a pipeline: JSON records into a dataset, incremental by a cursor field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from freight.pipelines.loader import load_pipeline
from tests.connectors.test_http_source import Api
from tests.connectors.test_http_source import api as api  # the local JSON API fixture
from tests.pipelines.stepdriver import run_once


@pytest.fixture
def setup(tmp_path: Path, api: tuple[Api, str]) -> Iterator[tuple[Path, str]]:
    (tmp_path / "freight.toml").write_text(
        f'[connections.warehouse]\nkind = "duckdb"\npath = "{tmp_path}/wh.duckdb"\n'
    )
    yield tmp_path, api[1]


def run(tmp: Path, text: str) -> dict[str, dict[str, object]]:
    (tmp / "p.yaml").write_text(text)
    return run_once(load_pipeline(tmp / "p.yaml"), tmp / "freight.toml", tmp / "home", f"file://{tmp}/runs")


def test_an_incremental_api_extract_loads_each_record_once(setup: tuple[Path, str]) -> None:
    tmp, base = setup
    text = f"""
name: api
steps:
  - name: items
    type: extract-http
    url: {base}/cursor
    records: items
    pagination: {{type: cursor, cursor_param: after, cursor_path: next}}
    incremental: {{cursor: id, initial: 3}}
  - {{name: load, type: load, inputs: [items], table: items}}
"""
    first = run(tmp, text)
    assert first["items"]["rows"] == 5 and first["items"]["requests"] == 3
    second = run(tmp, text)
    assert second["items"]["rows"] == 0 and second["load"]["note"] == "no new rows"
    con = duckdb.connect(str(tmp / "wh.duckdb"), read_only=True)
    assert con.execute("SELECT id, meta FROM items ORDER BY id").fetchall() == [
        (i, f'{{"k": {i}}}') for i in range(3, 8)
    ]
    assert con.execute("SELECT cursor_value, cursor_kind FROM freight_cursors").fetchall() == [("7", "int")]
    con.close()


def test_the_python_builder_takes_the_new_step_types() -> None:
    from freight.pipelines.api import PipelineBuilder

    p = PipelineBuilder("b")
    api_rows = p.extract_http("api", url="https://example.com/items", records="data")
    logs = p.extract_logs("logs", path="/var/log/app.log*")
    p.load("load_api", input=api_rows, table="items", mode="merge", primary_key=["id"], history=True)
    p.load("load_logs", input=logs, table="logs")
    p.publish_redis("pub", input=api_rows, connection="cache", prefix="items", key=["id"])
    assert [s.type for s in p.build().spec.steps] == [
        "extract-http",
        "extract-logs",
        "load",
        "load",
        "publish-redis",
    ]
