"""The pipeline planner's tick over many registered schedules, beside the floor of reading them.

N daily schedules (start 60 days ago, catch-up on) are registered in a fresh SQLite store, and each
already has a run for every due interval, so a tick has nothing to start: this measures what the
server pays every 5 s just to know that (reading and validating each pipeline file, cutting its
intervals with croniter, one query for its runs, one for the active runs). Rows:

  floor     read the registry rows and run one `interval_keys` query per pipeline (no validation, no
            interval arithmetic): what any planner that keeps state in the store pays
  tick      `Planner.tick(now)` with nothing due

Prints a table and writes bench/results/planner.json.

    python bench/planner.py [--schedules 200] [--ticks 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path

from freight.config import load_settings
from freight.pipelines.loader import load_pipeline
from freight.pipelines.planner import Planner
from freight.pipelines.registry import ScheduleRegistry
from freight.pipelines.schedule import due
from freight.pipelines.store import RunStore, StepRun

RESULTS = Path(__file__).parent / "results"

PIPELINE = """
name: p{i}
schedule: {{cron: "0 {hour} * * *", start: {start}}}
steps:
  - name: day
    type: transform-sql
    sql: SELECT DATE '{{{{ ds }}}}' AS day
  - name: load
    type: load
    inputs: [day]
    table: days_{i}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schedules", type=int, default=200)
    parser.add_argument("--ticks", type=int, default=5)
    args = parser.parse_args()
    now = dt.datetime.now(dt.UTC)
    start = (now - dt.timedelta(days=60)).date().isoformat()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = load_settings({"FREIGHT_HOME": str(root / "home")})
        store = RunStore.open(settings.database_url)
        registry = ScheduleRegistry(store.engine)
        intervals = 0
        for i in range(args.schedules):
            path = root / f"p{i}.yaml"
            path.write_text(PIPELINE.format(i=i, hour=i % 24, start=start))
            pipeline = load_pipeline(path)
            spec = pipeline.spec.model_dump(mode="json", exclude_none=True)
            registry.register(pipeline.name, spec, spec_path=str(path), base_dir=tmp, config_path=None)
            assert pipeline.spec.schedule is not None
            for n, interval in enumerate(due(pipeline.spec.schedule, now)):
                run_id = f"r{i}-{n}"
                store.create_run(
                    run_id,
                    pipeline.name,
                    spec=spec,
                    spec_path=str(path),
                    run_url="file:///dev/null",
                    steps=[StepRun("day", "transform-sql", "succeeded")],
                    interval=(interval.key(), interval.end.timestamp()),
                    trigger="schedule",
                )
                store.finish_run(run_id, "succeeded")
                intervals += 1
        planner = Planner(store, lambda _c: None)  # type: ignore[arg-type,return-value]

        def floor() -> None:
            for entry in registry.list():
                store.interval_keys(entry.pipeline)

        rows = {}
        for name, fn in (("floor", floor), ("tick", lambda: planner.tick(now.timestamp()))):
            fn()  # warm
            times = []
            for _ in range(args.ticks):
                t0 = time.perf_counter()
                result = fn()
                times.append(time.perf_counter() - t0)
                assert result is None or not result.started, "nothing should be due"
            rows[name] = statistics.median(times)
        store.close()
    ratio = rows["tick"] / rows["floor"]
    print(f"{args.schedules} schedules, {intervals} recorded intervals, median of {args.ticks}")
    for name, secs in rows.items():
        print(f"  {name:<6} {secs * 1000:8.1f} ms  ({secs / args.schedules * 1000:.2f} ms per schedule)")
    print(f"  tick / floor = {ratio:.2f}")
    RESULTS.mkdir(exist_ok=True)
    out = {"schedules": args.schedules, "intervals": intervals, "seconds": rows, "tick_over_floor": ratio}
    (RESULTS / "planner.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
