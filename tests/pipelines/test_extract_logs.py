"""extract-logs: rotated files, partial lines, offsets committed with the load, bad lines named."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest

from freight.errors import UserError
from freight.pipelines.loader import load_pipeline
from tests.pipelines.stepdriver import run_once


def run(tmp: Path, step: str) -> dict[str, dict[str, object]]:
    (tmp / "freight.toml").write_text(f'[connections.warehouse]\nkind = "duckdb"\npath = "{tmp}/wh.duckdb"\n')
    (tmp / "p.yaml").write_text(
        f"name: logs\nsteps:\n  - {step}\n  - {{name: load, type: load, inputs: [logs], table: events}}\n"
    )
    return run_once(load_pipeline(tmp / "p.yaml"), tmp / "freight.toml", tmp / "home", f"file://{tmp}/runs")


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def events(tmp: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(tmp / "wh.duckdb"), read_only=True)
    try:
        return con.execute("SELECT n FROM events ORDER BY n").fetchall()
    finally:
        con.close()


def lines(a: int, b: int) -> str:
    return "".join(json.dumps({"n": i, "msg": f"m{i}"}) + "\n" for i in range(a, b))


def test_new_lines_across_a_rotation_are_read_once(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    step = f"{{name: logs, type: extract-logs, path: '{tmp_path}/app.log*'}}"
    log.write_text(lines(1, 4) + '{"n": 4, "msg": "half')  # the last line is still being written
    assert run(tmp_path, step)["logs"]["rows"] == 3
    append(log, ' done"}\n' + lines(5, 6))
    os.rename(log, tmp_path / "app.log.1")  # rotation: the old file keeps its inode and offset
    log.write_text(lines(6, 8))
    assert run(tmp_path, step)["logs"]["rows"] == 4
    again = run(tmp_path, step)
    assert again["logs"]["rows"] == 0 and again["load"]["note"] == "no new rows"
    assert events(tmp_path) == [(i,) for i in range(1, 8)]


def test_a_regex_names_the_columns(tmp_path: Path) -> None:
    (tmp_path / "web.log").write_text("GET /a 200\nPOST /b 500\n")
    step = (
        f"{{name: logs, type: extract-logs, path: '{tmp_path}/web.log', format: regex, "
        r"pattern: '(?P<method>\w+) (?P<path>\S+) (?P<n>\d+)', columns: {n: int64}}"
    )
    assert run(tmp_path, step)["logs"]["rows"] == 2
    assert events(tmp_path) == [(200,), (500,)]


def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text(lines(1, 3) + "not json\n")
    step = f"{{name: logs, type: extract-logs, path: '{tmp_path}/app.log'}}"
    with pytest.raises(UserError, match=r"app.log:3: not JSON"):
        run(tmp_path, step)
    skipped = run(tmp_path, step.replace("}", ", on_bad_line: skip}"))
    assert skipped["logs"]["rows"] == 2 and skipped["logs"]["skipped"] == 1
