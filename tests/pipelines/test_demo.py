from __future__ import annotations

import duckdb

from freight.pipelines.demo import run_demo
from tests.pipelines.conftest import Env


def test_demo_runs_on_the_platform_and_fills_the_warehouse(env: Env) -> None:
    run = run_demo(env.settings, orders=300, echo=False)
    assert run.state == "succeeded", [(s.step, s.state, s.error) for s in run.steps]
    con = duckdb.connect(str(env.settings.home / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT id) FROM demo.orders").fetchall() == [(300, 300)]
        notes = {r[0] for r in con.execute("SELECT note FROM demo.orders").fetchall()}
    finally:
        con.close()
    assert {"", "NULL", "tab\there", 'say "hi"', "line\nbreak"} <= notes
