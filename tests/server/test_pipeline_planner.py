"""The server runs registered schedules: `freight up`'s planner starts a due interval by itself."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from freight.pipelines.loader import load_pipeline
from freight.pipelines.registry import ScheduleRegistry
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
    try:
        ScheduleRegistry(store.engine).register(
            "nightly",
            pipeline.spec.model_dump(mode="json", exclude_none=True),
            spec_path=str(path),
            base_dir=str(tmp_path),
            config_path=None,
        )
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
    finally:
        ScheduleRegistry(store.engine).remove("nightly")
        store.close()
