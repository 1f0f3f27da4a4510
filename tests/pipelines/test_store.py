"""The run store: two followers of one run record it once (at once, too, on SQLite and PostgreSQL); a run
round-trips as a dict."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from freight.config import Settings, load_settings
from freight.pipelines.store import Run, RunStore, StepRun

CHECK = {"check": "check-count", "status": "pass", "on_fail": "fail", "observed": 3, "message": "3 rows"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    opened = RunStore.open(load_settings({"FREIGHT_HOME": str(tmp_path)}).database_url)
    yield opened
    opened.close()


def _run(store: RunStore) -> str:
    spec = {"name": "p", "steps": [{"name": "a"}, {"name": "b"}]}
    steps = [StepRun("a", "extract-files", "queued", job_id="j1"), StepRun("b", "check-count", "queued")]
    store.create_run("r1", "p", spec=spec, spec_path=None, run_url="file:///x", steps=steps, now=100.0)
    return "r1"


def test_the_first_finish_wins_and_checks_are_recorded_once(store: RunStore) -> None:
    run_id = _run(store)
    store.add_checks(run_id, "b", [CHECK], now=101.0)
    store.add_checks(run_id, "b", [CHECK], now=102.0)  # a second follower finishing the same step
    store.finish_run(run_id, "failed", "step a failed: boom", now=103.0)
    store.finish_run(run_id, "succeeded", now=104.0)
    run = store.get(run_id)
    assert (run.state, run.error, run.ended_at) == ("failed", "step a failed: boom", 103.0)
    assert [(c.step, c.at) for c in run.checks] == [("b", 101.0)]


def test_a_run_round_trips_through_its_dict(store: RunStore) -> None:
    run_id = _run(store)
    step = StepRun("a", "extract-files", "succeeded", "j1", 1, 100.5, 101.5, 3, error=None)
    step.metrics = {"peak_rss": 1024}
    store.update_step(run_id, step)
    store.add_checks(run_id, "b", [CHECK], now=101.0)
    run = store.get(run_id)
    data = json.loads(json.dumps(run.to_dict()))  # as the API sends it
    assert Run.from_dict(data).to_dict() == data == run.to_dict()
    assert [s["step"] for s in data["steps"]] == ["a", "b"]
    assert data["steps"][0]["metrics"] == {"peak_rss": 1024} and data["checks"][0]["observed"] == "3"


def test_followers_finishing_a_step_at_the_same_moment_record_its_checks_once(
    store_settings: Settings,
) -> None:
    store = RunStore.open(store_settings.database_url)
    try:
        run_id = _run(store)
        start = threading.Barrier(8)

        def finish() -> None:
            start.wait()
            store.add_checks(run_id, "b", [CHECK], now=101.0)

        threads = [threading.Thread(target=finish) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [c.step for c in store.get(run_id).checks] == ["b"]
    finally:
        store.close()
