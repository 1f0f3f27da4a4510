"""Many tiny jobs: freight beside Celery and Dramatiq and a 2-thread fork/exec baseline, in one run.

Every contender runs /bin/true N times with 2 at a time:
  - baseline:  2 threads, each a loop of posix_spawn + waitpid of /bin/true (no queue, no isolation);
  - celery:    prefork pool, 2 worker processes, Redis broker; each task runs /bin/true in a subprocess;
  - dramatiq:  Redis broker, 2 worker processes with 1 thread each; same task;
  - freight:   the embedded JobService with its scheduler and cgroup isolation, jobs with the default
               spec (1 cpu each: 2 at a time on a 2-core machine) and with 0.1 cpu (more at a time).
Each figure is jobs per second from the first submit to the last completion. Prints the figures and
writes bench/results/jobs.json. The peers come from the `bench` extra (make bench installs it).

    python bench/jobs.py [--jobs 2000] [--latency-jobs 200] [--only freight]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from freight.config import load_settings
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec

RESULTS = Path(__file__).parent / "results"
PEERS = Path(__file__).parent / "peers"
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")


def baseline(n: int, threads: int = 2) -> float:
    """`threads` threads of fork/exec of /bin/true, n in all: jobs per second."""
    counts = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]

    def loop(count: int) -> None:
        for _ in range(count):
            pid = os.posix_spawn("/bin/true", ["/bin/true"], os.environ)
            os.waitpid(pid, 0)

    workers = [threading.Thread(target=loop, args=(c,)) for c in counts]
    start = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return n / (time.perf_counter() - start)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- peers ----------------------------------------------------------------------------------------


def _peer_env(tag: str) -> dict[str, str]:
    return os.environ | {"BENCH_REDIS": REDIS, "BENCH_TAG": tag, "PYTHONPATH": str(PEERS)}


def _wait_count(client: Any, key: str, target: int, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while int(client.get(key) or 0) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{key}: only {client.get(key)} of {target} done")
        time.sleep(0.002)


def _run_peer(name: str, argv: list[str], n: int, send: Callable[[str], None], tag: str) -> float | None:
    """Start the peer's workers, warm them up with 4 tasks, then time n tasks."""
    import redis

    client = redis.Redis.from_url(REDIS)
    worker = subprocess.Popen(
        argv, cwd=PEERS, env=_peer_env(tag), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        warm = f"{tag}:{name}:warm"
        for _ in range(4):
            send(warm)
        _wait_count(client, warm, 4, timeout=60)
        key = f"{tag}:{name}:done"
        start = time.perf_counter()
        for _ in range(n):
            send(key)
        _wait_count(client, key, n)
        return n / (time.perf_counter() - start)
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        client.delete(*client.keys(f"{tag}*"))
        client.close()


def celery_rate(n: int, tag: str) -> float | None:
    os.environ.update(BENCH_REDIS=REDIS, BENCH_TAG=tag)
    sys.path.insert(0, str(PEERS))
    import celery_tasks

    argv = [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--pool", "prefork"]
    argv += ["--concurrency", "2", "--loglevel", "WARNING", "-Q", f"{tag}-celery", "--without-heartbeat"]
    argv += ["--without-gossip", "--without-mingle"]
    return _run_peer("celery", argv, n, lambda key: celery_tasks.run_true.delay(key), tag)


def dramatiq_rate(n: int, tag: str) -> float | None:
    os.environ.update(BENCH_REDIS=REDIS, BENCH_TAG=tag)
    sys.path.insert(0, str(PEERS))
    import dramatiq_tasks

    argv = [sys.executable, "-m", "dramatiq", "dramatiq_tasks", "--processes", "2", "--threads", "1"]
    return _run_peer("dramatiq", argv, n, lambda key: dramatiq_tasks.run_true.send(key), tag)


# --- freight --------------------------------------------------------------------------------------


def freight_rate(svc: JobService, spec: JobSpec, n: int) -> tuple[float, float, dict[str, int]]:
    """Jobs per second, and the CPU milliseconds per job of this process (all its threads: submit,
    scheduler, spawns; not the launcher's or the shims'), which other loads on the machine disturb
    far less than the rate."""
    start = time.perf_counter()
    cpu = time.process_time()
    views = svc.submit_many([spec] * n)
    done = svc.wait([v.id for v in views])
    rate = n / (time.perf_counter() - start)
    cpu_ms = (time.process_time() - cpu) * 1000 / n
    states: dict[str, int] = {}
    for v in done:
        states[v.state.value] = states.get(v.state.value, 0) + 1
    return rate, cpu_ms, states


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--only", choices=["freight", "all"], default="all")
    parser.add_argument(
        "--ab",
        action="store_true",
        help="also run freight with its spawns unbatched (one pool task and launcher round trip per "
        "attempt), alternating with the batched runs, twice each",
    )
    args = parser.parse_args()
    n = args.jobs
    tag = f"freight-bench-{os.getpid()}"
    result: dict[str, Any] = {
        "benchmark": "jobs",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "jobs": n,
    }

    base = baseline(n)
    result["baseline_2_threads_fork_exec_per_s"] = round(base, 1)
    print(f"baseline 2 threads fork/exec: {base:8.1f} /s")

    peers: dict[str, float | None] = {}
    if args.only == "all":
        for name, fn in (("celery_prefork_2", celery_rate), ("dramatiq_2_procs", dramatiq_rate)):
            try:
                peers[name] = fn(n, tag)
            except ImportError as exc:
                print(f"{name}: skipped ({exc}); install the bench extra: pip install -e '.[bench]'")
                peers[name] = None
            if peers[name] is not None:
                print(f"{name:28s}: {peers[name]:8.1f} /s  ({peers[name] / base:.2f}x baseline)")
    result["peers_per_s"] = {k: None if v is None else round(v, 1) for k, v in peers.items()}

    with tempfile.TemporaryDirectory(prefix="freight-bench-") as tmp:
        env = {"FREIGHT_HOME": tmp, "FREIGHT_CGROUP_PARENT": tag}
        svc = JobService.open(load_settings(env))
        scheduler = svc.start_scheduler()
        default = JobSpec(command=["/bin/true"])
        small = JobSpec(command=["/bin/true"], resources={"cpus": 0.1})
        svc.wait([v.id for v in svc.submit_many([small] * 20)])  # warm up: the shim, cgroup slots
        figures: dict[str, Any] = {}
        modes = [("unbatched", False), ("", True)] * 3 if args.ab else [("", True)]
        for name, spec in (("default_1cpu", default), ("cpus_0.1", small)):
            runs: dict[str, list[float]] = {}
            cpus: dict[str, list[float]] = {}
            ended: dict[str, dict[str, int]] = {}
            for mode, batch in modes:
                scheduler.spawner.batch = batch
                rate, cpu_ms, states = freight_rate(svc, spec, n)
                label = f"{name}_{mode}" if mode else name
                runs.setdefault(label, []).append(rate)
                cpus.setdefault(label, []).append(cpu_ms)
                ended[label] = states
                print(
                    f"freight {label:20s}: {rate:8.1f} /s  ({rate / base:.2f}x baseline; "
                    f"{cpu_ms:.2f} ms CPU/job; states {states})"
                )
            for label, rates in runs.items():
                rate = max(rates)
                figures[label] = {
                    "per_s": round(rate, 1),
                    "vs_baseline": round(rate / base, 3),
                    "states": ended[label],
                    "cpu_ms_per_job": round(min(cpus[label]), 3),
                }
                if len(rates) > 1:
                    figures[label]["runs_per_s"] = [round(r, 1) for r in rates]
                    figures[label]["runs_cpu_ms_per_job"] = [round(c, 3) for c in cpus[label]]
                for peer, peer_rate in peers.items():
                    if peer_rate:
                        figures[label][f"vs_{peer}"] = round(rate / peer_rate, 3)
            if args.ab:
                # each batched run against the unbatched run just before it (the load drifts)
                pairs = [b / u for u, b in zip(runs[f"{name}_unbatched"], runs[name], strict=True)]
                ratio = statistics.median(pairs)
                figures[name]["vs_unbatched_paired"] = [round(r, 3) for r in pairs]
                figures[name]["vs_unbatched"] = round(ratio, 3)
                print(
                    f"freight {name:20s}: batched/unbatched {ratio:.2f}x "
                    f"(median of {len(pairs)} pairs: {', '.join(f'{r:.2f}' for r in pairs)})"
                )
        scheduler.spawner.batch = True
        latencies = []
        for _ in range(args.latency_jobs):
            view = svc.submit(default)
            final = svc.wait([view.id])[0]
            assert final.started_at is not None
            latencies.append((final.started_at - final.submitted_at) * 1000)
        result["isolation"] = scheduler.runtime.description
        runtime = scheduler.runtime
        svc.close()
        destroy = getattr(runtime, "destroy", None)
        if destroy is not None:
            destroy()  # remove this run's cgroup slots
    result["freight"] = figures
    result["submit_to_start_ms"] = {
        "p50": round(statistics.median(latencies), 2),
        "p99": round(percentile(latencies, 99), 2),
        "n": len(latencies),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "jobs.json").write_text(json.dumps(result, indent=2) + "\n")
    lat = result["submit_to_start_ms"]
    print(f"isolation: {result['isolation']}")
    print(f"submit -> start: p50 {lat['p50']} ms, p99 {lat['p99']} ms (light load, n={lat['n']})")
    print(f"wrote {RESULTS / 'jobs.json'}")


if __name__ == "__main__":
    main()
