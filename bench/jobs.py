"""Throughput and latency of the whole job path, beside a plain fork/exec baseline in the same run.

N no-op jobs (/bin/true) with memory and CPU limits go submit -> place -> run -> record, through the
embedded JobService and an in-process scheduler with cgroup isolation. Baseline: a serial loop of
posix_spawn + waitpid of /bin/true. Prints the figures and writes bench/results/jobs.json.

    python bench/jobs.py [--jobs 2000] [--latency-jobs 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from freight.config import load_settings
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec

RESULTS = Path(__file__).parent / "results"


def baseline(n: int) -> float:
    """Serial fork/exec of /bin/true: jobs per second."""
    start = time.perf_counter()
    for _ in range(n):
        pid = os.posix_spawn("/bin/true", ["/bin/true"], os.environ)
        os.waitpid(pid, 0)
    return n / (time.perf_counter() - start)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--latency-jobs", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="freight-bench-") as tmp:
        env = {"FREIGHT_HOME": tmp, "FREIGHT_CGROUP_PARENT": f"freight-bench-{os.getpid()}"}
        settings = load_settings(env)
        svc = JobService.open(settings)
        scheduler = svc.start_scheduler()
        spec = JobSpec(command=["/bin/true"], resources={"cpus": 0.1, "memory": "32M"})

        svc.wait([svc.submit(spec).id])  # warm up: compiles the shim, creates cgroup slots
        base_rate = baseline(args.jobs)

        start = time.perf_counter()
        views = svc.submit_many([spec] * args.jobs)
        done = svc.wait([v.id for v in views])
        elapsed = time.perf_counter() - start
        rate = args.jobs / elapsed
        states = {s: sum(1 for v in done if v.state.value == s) for s in {v.state.value for v in done}}

        latencies = []
        for _ in range(args.latency_jobs):
            view = svc.submit(spec)
            final = svc.wait([view.id])[0]
            assert final.started_at is not None
            latencies.append((final.started_at - final.submitted_at) * 1000)
        isolation = scheduler.runtime.description
        runtime = scheduler.runtime
        svc.close()
        destroy = getattr(runtime, "destroy", None)
        if destroy is not None:
            destroy()  # remove this run's cgroup slots

    result = {
        "benchmark": "jobs",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "isolation": isolation,
        "jobs": args.jobs,
        "states": states,
        "baseline_fork_exec_per_s": round(base_rate, 1),
        "freight_jobs_per_s": round(rate, 1),
        "ratio_vs_baseline": round(rate / base_rate, 3),
        "submit_to_start_ms": {
            "p50": round(statistics.median(latencies), 2),
            "p99": round(percentile(latencies, 99), 2),
            "n": len(latencies),
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "jobs.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"isolation:           {isolation}")
    print(f"baseline fork/exec:  {base_rate:8.1f} /s")
    print(f"freight jobs:        {rate:8.1f} /s  ({rate / base_rate:.0%} of baseline; states {states})")
    lat = result["submit_to_start_ms"]
    print(f"submit -> start:     p50 {lat['p50']} ms, p99 {lat['p99']} ms (light load, n={lat['n']})")
    print(f"wrote {RESULTS / 'jobs.json'}")


if __name__ == "__main__":
    main()
