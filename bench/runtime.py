"""Micro benchmark: N serial `/bin/true` attempts through start+wait+release vs a bare fork/exec loop.

    .venv/bin/python bench/runtime.py [N] [--isolation auto|cgroups|rlimits]

Prints per-attempt costs and their ratio; writes bench/results/runtime.json. Needs root for cgroups.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from freight.config import load_settings
from freight.runtime import create_runtime
from freight.runtime.base import AttemptRequest, Limits

RESULTS = Path(__file__).parent / "results" / "runtime.json"


def bare_loop(n: int) -> list[float]:
    """The floor: posix_spawn + waitpid of /bin/true, nothing else."""
    times = []
    for _ in range(n):
        began = time.perf_counter()
        pid = os.posix_spawn("/bin/true", ["true"], os.environ)
        os.waitpid(pid, 0)
        times.append(time.perf_counter() - began)
    return times


def runtime_loop(n: int, isolation: str, home: Path) -> tuple[str, list[float], list[float]]:
    settings = load_settings(
        {
            "FREIGHT_HOME": str(home),
            "FREIGHT_ISOLATION": isolation,
            "FREIGHT_CGROUP_PARENT": f"freight-bench-{os.getpid()}",
        }
    )
    runtime = create_runtime(settings)
    runtime.prewarm(1)
    limits = Limits(cpus=1.0, memory=256 << 20, pids=64)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    starts, totals = [], []
    try:
        for i in range(n):
            request = AttemptRequest(
                f"bench-{i}", ["/bin/true"], env, None, limits, home / "logs" / f"{i}.log"
            )
            began = time.perf_counter()
            handle = runtime.start(request)
            started = time.perf_counter()
            outcome = runtime.wait(handle)
            runtime.release(handle)
            totals.append(time.perf_counter() - began)
            starts.append(started - began)
            assert outcome is not None and outcome.exit_code == 0, outcome
    finally:
        runtime.destroy()
    return runtime.description, starts, totals


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "mean_ms": statistics.fmean(times) * 1e3,
        "median_ms": statistics.median(times) * 1e3,
        "p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=500)
    parser.add_argument("--isolation", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="freight-bench-") as tmp:
        home = Path(tmp)
        runtime_loop(20, args.isolation, home / "warmup")  # compiles the shim, warms caches
        bare = bare_loop(args.n)
        description, starts, totals = runtime_loop(args.n, args.isolation, home / "run")
    result = {
        "n": args.n,
        "runtime": description,
        "machine": {"python": sys.version.split()[0], "kernel": platform.release(), "cpus": os.cpu_count()},
        "bare_spawn_wait": summary(bare),
        "runtime_start": summary(starts),
        "runtime_start_wait_release": summary(totals),
        "ratio_mean": statistics.fmean(totals) / statistics.fmean(bare),
        "ratio_median": statistics.median(totals) / statistics.median(bare),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.n} x /bin/true, {description}")
    for name in ("bare_spawn_wait", "runtime_start", "runtime_start_wait_release"):
        row = result[name]
        mean, median, p95 = row["mean_ms"], row["median_ms"], row["p95_ms"]
        print(f"  {name:28} mean {mean:.3f} ms  median {median:.3f} ms  p95 {p95:.3f} ms")
    ratio_mean, ratio_median = result["ratio_mean"], result["ratio_median"]
    print(f"  ratio (start+wait+release / bare): mean {ratio_mean:.2f}x, median {ratio_median:.2f}x")
    print(f"  wrote {RESULTS}")


if __name__ == "__main__":
    main()
