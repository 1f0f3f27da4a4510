"""The server runs registered schedules: `freight up`'s planner starts a due interval by itself."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from freight.errors import NotFoundError, UserError
from freight.jobs.remote import RemoteJobClient
from freight.pipelines.loader import load_pipeline
from freight.pipelines.remote import RemotePipelines
from freight.pipelines.store import RunStore
from tests.server.conftest import Live


def test_the_live_server_starts_the_due_interval_of_a_registered_schedule(live: Live, tmp_path: Path) -> None:
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date()
    path = tmp_path / "nightly.yaml"
    path.write_text(
        f"""
name: nightly
schedule: {{cron: "0 0 * * *", start: {yesterday.isoformat()}, catchup: false}}
steps:
  - {{name: stamp, type: transform-sql, sql: "SELECT '{{{{ ds }}}}' AS ds"}}
"""
    )
    pipeline = load_pipeline(path)
    store = RunStore.open(live.settings.database_url)
    server = RemotePipelines(RemoteJobClient(live.url, live.admin))
    try:
        # registered through the API, as `freight pipeline schedule FILE` does with FREIGHT_URL
        with pytest.raises(NotFoundError, match="pipeline 'nightly' is not scheduled"):
            server.set_paused("nightly", True)
        found = server.schedule(pipeline, spec_path=path, config_path=None)
        assert found["pipeline"] == "nightly" and found["rule"] == "0 0 * * * UTC" and not found["paused"]
        deadline = time.monotonic() + 120  # a bound, not the expectation: the planner ticks every 5 s
        run = None
        while time.monotonic() < deadline:
            found = store.list("nightly", 5)
            run = found[0] if found else None
            if run is not None and run.state not in ("running", "waiting"):
                break
            time.sleep(0.2)
        assert run is not None and run.state == "succeeded", run
        assert (
            run.trigger == "schedule"
            and run.interval_start_iso() == f"{yesterday.isoformat()}T00:00:00+00:00"
        )
        assert len(store.list("nightly", 5)) == 1  # catch-up off, and one run per interval
        server.set_paused("nightly", True)
        [listed] = [s for s in server.schedules() if s["pipeline"] == "nightly"]
        assert listed["paused"] and listed["last_run"] == run.id and listed["last_state"] == "succeeded"
        server.unschedule("nightly")
        assert [s for s in server.schedules() if s["pipeline"] == "nightly"] == []
    finally:
        server.close()
        store.close()


def test_registering_without_a_schedule_is_a_400_naming_the_field(live: Live, tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text("name: plain\nsteps:\n  - {name: a, type: sql, sql: SELECT 1}\n")
    with RemotePipelines(RemoteJobClient(live.url, live.admin)) as server:
        with pytest.raises(UserError, match=r"spec.schedule: pipeline plain has no `schedule`"):
            server.schedule(load_pipeline(path), spec_path=path, config_path=None)
        assert [s for s in server.schedules() if s["pipeline"] == "plain"] == []
