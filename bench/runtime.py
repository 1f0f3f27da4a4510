"""Micro benchmark: serial `/bin/true` attempts through the runtime vs a bare fork/exec loop.

    .venv/bin/python bench/runtime.py [N] [--isolation auto|cgroups|rlimits]

Three loops, interleaved in rounds so a busy machine slows them alike:
- bare:    os.posix_spawn + waitpid of /bin/true (the floor: one process);
- shim:    the compiled shim spawned directly on /bin/true, no cgroups, no Python runtime
           (what the shim design costs by itself: two processes and the record files);
- runtime: start + wait + release through create_runtime(settings).
Prints per-attempt costs and the ratios; writes bench/results/runtime.json. Needs root for cgroups.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from freight.config import load_settings
from freight.runtime import create_runtime
from freight.runtime.base import AttemptRequest, Limits
from freight.runtime.process import ShimRuntime

RESULTS = Path(__file__).parent / "results" / "runtime.json"
ROUNDS = 10
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def bare_loop(n: int) -> list[float]:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        pid = os.posix_spawn("/bin/true", ["true"], ENV)
        os.waitpid(pid, 0)
        times.append(time.perf_counter() - began)
    return times


def shim_loop(n: int, shim: str, scratch: Path) -> list[float]:
    times = []
    for i in range(n):
        record = scratch / str(i)
        began = time.perf_counter()
        record.mkdir()
        pid = os.posix_spawn(shim, ["freight-shim", str(record), "-", "-", "0", "0", "/bin/true"], ENV)
        os.waitpid(pid, 0)
        times.append(time.perf_counter() - began)
    shutil.rmtree(scratch)
    scratch.mkdir()
    return times


def runtime_loop(runtime: ShimRuntime, n: int, home: Path, first: int) -> tuple[list[float], list[float]]:
    limits = Limits(cpus=1.0, memory=256 << 20, pids=64)
    starts, totals = [], []
    for i in range(first, first + n):
        request = AttemptRequest(f"bench-{i}", ["/bin/true"], ENV, None, limits, home / "logs" / f"{i}.log")
        began = time.perf_counter()
        handle = runtime.start(request)
        started = time.perf_counter()
        outcome = runtime.wait(handle)
        runtime.release(handle)
        totals.append(time.perf_counter() - began)
        starts.append(started - began)
        assert outcome is not None and outcome.exit_code == 0, outcome
    return starts, totals


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "mean_ms": statistics.fmean(times) * 1e3,
        "median_ms": statistics.median(times) * 1e3,
        "p95_ms": ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=500)
    parser.add_argument("--isolation", default="auto")
    args = parser.parse_args()
    per_round = max(1, args.n // ROUNDS)
    with tempfile.TemporaryDirectory(prefix="freight-bench-") as tmp:
        home = Path(tmp)
        env = {"FREIGHT_HOME": str(home), "FREIGHT_ISOLATION": args.isolation}
        settings = load_settings({**env, "FREIGHT_CGROUP_PARENT": f"freight-bench-{os.getpid()}"})
        runtime = create_runtime(settings)
        scratch = home / "shim-records"
        scratch.mkdir()
        bare: list[float] = []
        shim: list[float] = []
        starts: list[float] = []
        totals: list[float] = []
        try:
            runtime.prewarm(1)
            runtime_loop(runtime, 20, home, -20)  # warm caches and the slot's limit files
            for round_ in range(ROUNDS):
                bare += bare_loop(per_round)
                shim += (
                    shim_loop(per_round, runtime.shim.executable, scratch) if runtime.shim.kind == "c" else []
                )
                round_starts, round_totals = runtime_loop(runtime, per_round, home, round_ * per_round)
                starts += round_starts
                totals += round_totals
        finally:
            runtime.destroy()
    result = {
        "n": per_round * ROUNDS,
        "runtime": runtime.description,
        "shim": runtime.shim.kind,
        "machine": {"python": sys.version.split()[0], "kernel": platform.release(), "cpus": os.cpu_count()},
        "bare_spawn_wait": summary(bare),
        "shim_spawn_wait": summary(shim) if shim else None,
        "runtime_start": summary(starts),
        "runtime_start_wait_release": summary(totals),
        "ratio_runtime_to_bare": statistics.median(totals) / statistics.median(bare),
        "ratio_shim_to_bare": statistics.median(shim) / statistics.median(bare) if shim else None,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['n']} x /bin/true, {runtime.description}")
    for name in ("bare_spawn_wait", "shim_spawn_wait", "runtime_start", "runtime_start_wait_release"):
        row = result[name]
        if isinstance(row, dict):
            mean, median, p95 = row["mean_ms"], row["median_ms"], row["p95_ms"]
            print(f"  {name:28} mean {mean:.3f} ms  median {median:.3f} ms  p95 {p95:.3f} ms")
    print(f"  ratio runtime / bare (medians): {result['ratio_runtime_to_bare']:.2f}x")
    if shim:
        print(f"  ratio shim alone / bare (medians): {result['ratio_shim_to_bare']:.2f}x")
    print(f"  wrote {RESULTS}")


if __name__ == "__main__":
    main()
