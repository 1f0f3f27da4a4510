from __future__ import annotations

import duckdb

from freight.pipelines.loader import load_pipeline
from freight.pipelines.runner import PipelineRunner
from freight.pipelines.store import Run
from tests.pipelines.conftest import Env


def run_yaml(env: Env, runner: PipelineRunner, text: str, name: str = "p.yaml") -> Run:
    path = env.write(name, text)
    return runner.run(load_pipeline(path), spec_path=str(path), poll=0.2)


def states(run: Run) -> dict[str, str]:
    return {s.step: s.state for s in run.steps}


def duck(env: Env, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(env.settings.home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
