"""Several servers and autoscaling, measured on this machine (the figures docs/operations.md builds on).

1. migrate-once: four processes start together on a fresh PostgreSQL database and migrate it (the
   advisory lock lets one run Alembic); baseline: one process migrating alone, same run. Also the cost
   of opening a store already at head (one read).
2. handover: two `freight up` on one PostgreSQL store; the leader is SIGKILLed while a batch runs;
   seconds until the standby holds the lease, and until the batch is done with every job once.
   Baseline: the lease's TTL (15 s), what a takeover from another host waits at most.
3. autoscale reaction: Ray's fake multi-node autoscaler, a one-CPU head, one-CPU workers: seconds from
   freight's request (3 one-CPU bundles) until 3 nodes are alive, and from the empty request until one
   is left. Peer, same run and cluster: Ray's own path, 3 pending one-CPU tasks (the autoscaler reads
   task demand from the raylets) until 3 nodes are alive.

    python bench/fleet.py [--rounds 3] [--only migrate|handover|autoscale ...]
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.* helpers: the fake autoscaling cluster, a free port

from freight.config import load_settings  # noqa: E402
from freight.db import engine as db_engine  # noqa: E402
from freight.jobs.service import JobService  # noqa: E402
from freight.jobs.states import JobState  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("FREIGHT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def wait_for(what: Callable[[], bool], timeout: float = 180, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(step)


@contextmanager
def pg_database() -> Iterator[str]:
    name = f"freight_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- 1. migrate once ------------------------------------------------------------------------------


def _migrate(url: str, barrier: Any, results: Any) -> None:
    engine = db_engine.make_engine(url)
    barrier.wait()
    started = time.perf_counter()
    ran = db_engine.migrate(engine)
    results.put((ran, time.perf_counter() - started))
    engine.dispose()


def migrate_round(processes: int) -> tuple[float, int]:
    """(seconds until every process is at head, processes that ran Alembic)."""
    ctx = multiprocessing.get_context("spawn")
    with pg_database() as url:
        barrier, results = ctx.Barrier(processes), ctx.Queue()
        procs = [ctx.Process(target=_migrate, args=(url, barrier, results)) for _ in range(processes)]
        for proc in procs:
            proc.start()
        found = [results.get(timeout=300) for _ in procs]
        for proc in procs:
            proc.join()
    return max(t for _, t in found), sum(ran for ran, _ in found)


def at_head_open() -> float:
    with pg_database() as url:
        db_engine.open_engine(url).dispose()
        engine = db_engine.make_engine(url)
        db_engine.migrate(engine)  # warm the pool
        started = time.perf_counter()
        for _ in range(20):
            db_engine.migrate(engine)
        took = (time.perf_counter() - started) / 20
        engine.dispose()
    return took


# --- 2. handover ----------------------------------------------------------------------------------


def serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    full = {**os.environ, **env}
    full.pop("FREIGHT_URL", None)
    argv = [sys.executable, "-m", "freight.cli.main", "up", "--port", str(port), "--log-format", "json"]
    return subprocess.Popen(argv, env=full, stderr=subprocess.DEVNULL)


def holder_pid(svc: JobService) -> int | None:
    from sqlalchemy import select

    from freight.db.schema import leases

    with svc.engine.connect() as conn:
        holder = conn.execute(select(leases.c.holder).where(leases.c.name == "scheduler")).scalar()
    return int(holder.split(":")[1]) if holder else None


def handover_round(jobs: int = 48) -> dict[str, float]:
    import httpx
    from tests.server.test_up import free_port

    folder = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    folder.chmod(0o1777)
    parent = f"freight-bench-{os.getpid()}"
    with pg_database() as url:
        env = {
            "FREIGHT_HOME": str(folder / "home"),
            "FREIGHT_DATABASE_URL": url,
            "FREIGHT_CGROUP_PARENT": parent,
        }
        ports = free_port(), free_port()
        procs: list[subprocess.Popen[bytes]] = []
        svc: JobService | None = None
        try:
            procs.append(serve(env, ports[0]))
            wait_for(lambda: _healthy(httpx, ports[0]), timeout=60)
            svc = JobService.open(load_settings(env))
            wait_for(lambda: holder_pid(svc) == procs[0].pid)  # type: ignore[arg-type]
            procs.append(serve(env, ports[1]))
            wait_for(lambda: _healthy(httpx, ports[1]), timeout=60)
            marker = folder / "ran.txt"
            script = f'echo "$FREIGHT_JOB_ID" >> {marker}; sleep 1'
            spec = {"command": ["sh", "-c", script], "resources": {"cpus": 0.25, "memory": "16M"}}
            ids = [svc.submit(spec).id for _ in range(jobs)]
            wait_for(lambda: sum(svc.get(i).state is JobState.SUCCEEDED for i in ids) >= 8)  # type: ignore[union-attr]
            procs[0].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            procs[0].wait()
            wait_for(lambda: holder_pid(svc) == procs[1].pid)  # type: ignore[union-attr]
            handover = time.monotonic() - killed
            wait_for(lambda: all(svc.get(i).state.terminal for i in ids))  # type: ignore[union-attr]
            done = time.monotonic() - killed
            runs = collections.Counter(marker.read_text().split())
            states = collections.Counter(svc.get(i).state.value for i in ids)
            return {
                "handover_s": handover,
                "batch_done_after_kill_s": done,
                "exactly_once": float(runs == dict.fromkeys(ids, 1) and states == {"succeeded": jobs}),
            }
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=60)
            if svc is not None:
                svc.close()
            from tests.server.conftest import _remove_cgroups

            _remove_cgroups(parent)
            subprocess.run(["rm", "-rf", str(folder)], check=False)


def _healthy(httpx: Any, port: int) -> bool:
    try:
        return bool(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200)
    except httpx.TransportError:
        return False


# --- 3. autoscale reaction ------------------------------------------------------------------------


def autoscale_rounds(rounds: int) -> dict[str, list[float]]:
    import ray
    from tests.runtime.fake_autoscaler import fake_autoscaling_cluster

    from freight.runtime.ray_autoscale import RayAutoscaler
    from freight.runtime.ray_cluster import connect

    out: dict[str, list[float]] = {"freight_grow_s": [], "freight_shrink_s": [], "ray_tasks_grow_s": []}
    with fake_autoscaling_cluster(worker_cpus=1, max_workers=2, idle_minutes=0.05) as address:
        connect(address)
        autoscaler = RayAutoscaler(address)

        def alive() -> int:
            return len(autoscaler.nodes())

        try:
            for _ in range(rounds):
                wait_for(lambda: alive() == 1)
                started = time.monotonic()
                autoscaler.request([{"CPU": 1.0}] * 3)
                wait_for(lambda: alive() == 3)
                out["freight_grow_s"].append(time.monotonic() - started)
                started = time.monotonic()
                autoscaler.request([])
                wait_for(lambda: alive() == 1)
                out["freight_shrink_s"].append(time.monotonic() - started)
                # Ray's own path: tasks that need a CPU each wait, and the autoscaler reads their demand
                # (they hold their CPU long enough to be seen; cancelled once the nodes are there)
                hold = ray.remote(num_cpus=1, max_retries=0)(lambda: time.sleep(120))
                started = time.monotonic()
                refs = [hold.remote() for _ in range(3)]
                wait_for(lambda: alive() == 3)
                out["ray_tasks_grow_s"].append(time.monotonic() - started)
                for ref in refs:
                    ray.cancel(ref, force=True)
        finally:
            ray.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["migrate", "handover", "autoscale"], action="append")
    args = parser.parse_args()
    parts = set(args.only or ["migrate", "handover", "autoscale"])
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}

    if "migrate" in parts:
        migrate_part(result, args.rounds)
    if "handover" in parts:
        handover_part(result, args.rounds)
    if "autoscale" in parts:
        autoscale_part(result, args.rounds)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "fleet.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**previous, **result}, indent=2))


def migrate_part(result: dict[str, Any], rounds_: int) -> None:
    alone = [migrate_round(1) for _ in range(rounds_)]
    four = [migrate_round(4) for _ in range(rounds_)]
    result["migrate"] = {
        "one_process_s": [t for t, _ in alone],
        "four_processes_s": [t for t, _ in four],
        "four_processes_ran_alembic": [n for _, n in four],
        "at_head_open_ms": at_head_open() * 1000,
    }
    print(
        f"migrate: 1 process {statistics.median(result['migrate']['one_process_s']):.2f}s, "
        f"4 at once {statistics.median(result['migrate']['four_processes_s']):.2f}s "
        f"(Alembic ran in {result['migrate']['four_processes_ran_alembic']} processes), "
        f"at head {result['migrate']['at_head_open_ms']:.2f} ms",
        flush=True,
    )


def handover_part(result: dict[str, Any], rounds_: int) -> None:
    rounds = [handover_round() for _ in range(rounds_)]
    result["handover"] = {key: [r[key] for r in rounds] for key in rounds[0]}
    done_after = statistics.median(result["handover"]["batch_done_after_kill_s"])
    print(
        "handover: "
        + ", ".join(f"{r['handover_s']:.2f}s" for r in rounds)
        + f" (lease TTL 15 s); batch done {done_after:.1f}s"
        + f" after the kill; exactly once in {sum(r['exactly_once'] for r in rounds):.0f}/{len(rounds)}",
        flush=True,
    )


def autoscale_part(result: dict[str, Any], rounds_: int) -> None:
    result["autoscale"] = autoscale_rounds(rounds_)
    scale = result["autoscale"]
    print(
        f"autoscale 1->3 nodes: freight request {statistics.median(scale['freight_grow_s']):.2f}s, "
        f"Ray's pending tasks {statistics.median(scale['ray_tasks_grow_s']):.2f}s; "
        f"3->1 after the request is dropped {statistics.median(scale['freight_shrink_s']):.2f}s",
        flush=True,
    )


if __name__ == "__main__":
    main()
