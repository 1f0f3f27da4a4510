"""The scheduler with many queued jobs: 1k, 10k and 100k waiting, on SQLite and on PostgreSQL.

For each store and size: jobs are submitted to a paused queue (they wait, held by the scheduler),
then a scheduler starts on the store (it admits them all). Measured:
  - submit rate (submit_many in batches of 1,000),
  - start: the time the scheduler takes to admit them all, and its memory (RSS growth),
  - one tick's cost with 10 new jobs submitted by another service (read from the store, placed,
    committed, spawned): the median of 5 rounds, beside an idle tick,
  - the full rescan of waiting jobs (what every poll did before changes.py; now every 15 s).
The tick must cost about the same at 1k and at 100k queued: it follows what changed, not what waits.
Prints the figures and writes bench/results/scale.json.

    python bench/scale.py [--sizes 1000,10000,100000] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from freight.config import Settings, load_settings
from freight.jobs.scheduler import Scheduler
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.jobs.store import Batch
from freight.runtime.factory import create_job_runtime

RESULTS = Path(__file__).parent / "results"
PG_ADMIN = os.environ.get("FREIGHT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ROUNDS = 5


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed_tick(sched: Scheduler) -> float:
    start = time.perf_counter()
    if PROFILE is not None:
        PROFILE.enable()
    sched.tick()
    if PROFILE is not None:
        PROFILE.disable()
    return time.perf_counter() - start


PROFILE: Any = None
if os.environ.get("BENCH_PROFILE"):
    import cProfile

    PROFILE = cProfile.Profile()


def measure(settings: Settings, size: int) -> dict[str, Any]:
    waiting = JobSpec(command=["/bin/true"], queue="held", resources={"cpus": 0.1, "memory": "16M"})
    fresh = JobSpec(command=["/bin/true"], resources={"cpus": 0.1, "memory": "16M"})
    with JobService.open(settings) as svc:
        svc.set_queue("held", paused=True)
        start = time.perf_counter()
        for offset in range(0, size, 1000):
            svc.submit_many([waiting] * min(1000, size - offset))
        submit_s = time.perf_counter() - start

        gc.collect()
        before = rss()
        sched = Scheduler(svc.engine, create_job_runtime(settings), settings, poll_interval=0.05)
        start = time.perf_counter()
        sched.start()
        admit_s = time.perf_counter() - start
        gc.collect()
        memory = rss() - before
        sched.changes.full_every = math.inf  # measured on its own below, not inside a tick
        try:
            for _ in range(3):
                timed_tick(sched)  # settle: the first ticks commit start-up work
            ticks, idle = [], []
            for _ in range(ROUNDS):
                ids = [v.id for v in svc.submit_many([fresh] * 10)]  # no scheduler here: it pokes
                ticks.append(timed_tick(sched))
                assert all(job_id in sched.running for job_id in ids), "the 10 were not placed"
                while sched.running:
                    sched.tick()
                sched.wake()  # a tick that looks at the store and finds nothing new
                idle.append(timed_tick(sched))
            with svc.engine.connect() as conn:
                start = time.perf_counter()
                sched._sync_all(conn, Batch(), time.time())
                full_s = time.perf_counter() - start
            held = sum(sched.queues.depth().values())
        finally:
            runtime = sched.runtime
            sched.stop()
            sched.close()
            destroy = getattr(runtime, "destroy", None)
            if destroy is not None:
                destroy()
    return {
        "queued": size,
        "held_by_scheduler": held,
        "submit_per_s": round(size / submit_s, 1),
        "scheduler_start_s": round(admit_s, 3),
        "scheduler_memory_mb": round(memory / (1 << 20), 1),
        "tick_with_10_new_ms": round(statistics.median(ticks) * 1000, 2),
        "idle_tick_ms": round(statistics.median(idle) * 1000, 2),
        "full_rescan_ms": round(full_s * 1000, 2),
    }


def pg_database() -> tuple[str, str]:
    import psycopg

    name = f"freight_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    for store in args.stores.split(","):
        for size in [int(s) for s in args.sizes.split(",")]:
            with tempfile.TemporaryDirectory(prefix="freight-scale-") as tmp:
                env = {"FREIGHT_HOME": tmp, "FREIGHT_CGROUP_PARENT": f"freight-scale-{os.getpid()}"}
                settings = load_settings(env)
                pg = None
                if store == "postgres":
                    pg, url = pg_database()
                    settings = replace(settings, database_url=url)
                try:
                    row = {"store": store, **measure(settings, size)}
                finally:
                    if pg is not None:
                        drop_pg(pg)
            results.append(row)
            print(
                f"{store:8s} {size:>7,} queued: submit {row['submit_per_s']:>8,.0f}/s  "
                f"start {row['scheduler_start_s']:6.2f} s  memory +{row['scheduler_memory_mb']:6.1f} MB  "
                f"tick with 10 new {row['tick_with_10_new_ms']:6.2f} ms  "
                f"idle tick {row['idle_tick_ms']:5.2f} ms  "
                f"full rescan {row['full_rescan_ms']:8.2f} ms",
                flush=True,
            )
    RESULTS.mkdir(exist_ok=True)
    out = {"benchmark": "scale", "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": results}
    (RESULTS / "scale.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'scale.json'}")
    if PROFILE is not None:
        PROFILE.dump_stats(os.environ["BENCH_PROFILE"])


if __name__ == "__main__":
    main()
