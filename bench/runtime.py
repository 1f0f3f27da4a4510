"""Micro benchmark: serial `/bin/true` attempts through the runtime vs a bare fork/exec loop.

    .venv/bin/python bench/runtime.py [N] [--isolation auto|cgroups|rlimits] [--rounds R]

Four loops, interleaved in rounds (their order alternating) so a busy machine slows them alike:
- bare:     os.posix_spawn + waitpid of /bin/true (the floor: one process);
- shim:     the compiled shim spawned directly on /bin/true, no cgroups, no Python runtime
            (what a shim costs when it is exec'd per attempt: two processes and the record files);
- spawn:    start + wait + release through the runtime, each shim posix_spawn'ed (launcher off);
- launcher: start + wait + release through the runtime as configured: shims forked by the launcher.
Per loop: wall time per attempt (median, mean, p95), the start() part alone, and the machine's CPU
time per attempt (busy jiffies in /proc/stat over the loop, all processes: the runtime, launcher,
shims and jobs; others' work on the machine counts too, which the interleaving spreads evenly).
Prints the figures and the ratios; writes bench/results/runtime.json. Needs root for cgroups.
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
from collections.abc import Callable
from pathlib import Path

from freight.config import load_settings
from freight.runtime import create_runtime
from freight.runtime.base import AttemptRequest, Limits
from freight.runtime.process import ShimRuntime

RESULTS = Path(__file__).parent / "results" / "runtime.json"
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
_TICKS = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """Seconds of CPU the whole machine has spent busy (not idle or waiting for I/O) since boot."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / _TICKS


class Loop:
    """One kind of attempt, measured over many rounds."""

    def __init__(self, name: str, run: Callable[[int], list[tuple[float, float]]]) -> None:
        self.name = name
        self.run = run
        self.totals: list[float] = []
        self.starts: list[float] = []
        self.cpu = 0.0

    def round(self, n: int) -> None:
        before = machine_cpu()
        times = self.run(n)
        self.cpu += machine_cpu() - before
        self.starts += [start for start, _ in times]
        self.totals += [total for _, total in times]

    def summary(self) -> dict[str, float | None]:
        def stats(times: list[float]) -> dict[str, float]:
            ordered = sorted(times)
            return {
                "mean_ms": statistics.fmean(times) * 1e3,
                "median_ms": statistics.median(times) * 1e3,
                "p95_ms": ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1e3,
            }

        row: dict[str, float | None] = {f"total_{k}": v for k, v in stats(self.totals).items()}
        if any(self.starts):
            row |= {f"start_{k}": v for k, v in stats(self.starts).items()}
        row["machine_cpu_ms_per_attempt"] = self.cpu / len(self.totals) * 1e3
        return row


def bare_loop(n: int) -> list[tuple[float, float]]:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        pid = os.posix_spawn("/bin/true", ["true"], ENV)
        os.waitpid(pid, 0)
        times.append((0.0, time.perf_counter() - began))
    return times


def shim_loop(shim: str, scratch: Path) -> Callable[[int], list[tuple[float, float]]]:
    def run(n: int) -> list[tuple[float, float]]:
        times = []
        for i in range(n):
            record = scratch / str(i)
            began = time.perf_counter()
            record.mkdir()
            pid = os.posix_spawn(shim, ["freight-shim", str(record), "-", "-", "0", "0", "/bin/true"], ENV)
            os.waitpid(pid, 0)
            times.append((0.0, time.perf_counter() - began))
        shutil.rmtree(scratch)
        scratch.mkdir()
        return times

    return run


def runtime_loop(runtime: ShimRuntime, home: Path, tag: str) -> Callable[[int], list[tuple[float, float]]]:
    limits = Limits(cpus=1.0, memory=256 << 20, pids=64)
    counter = iter(range(1 << 62))

    def run(n: int) -> list[tuple[float, float]]:
        times = []
        for _ in range(n):
            i = next(counter)
            log = home / "logs" / tag / f"{i}.log"
            request = AttemptRequest(f"bench-{tag}-{i}", ["/bin/true"], ENV, None, limits, log)
            began = time.perf_counter()
            handle = runtime.start(request)
            started = time.perf_counter()
            outcome = runtime.wait(handle)
            runtime.release(handle)
            times.append((started - began, time.perf_counter() - began))
            assert outcome is not None and outcome.exit_code == 0, outcome
        return times

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=1000, help="attempts per loop")
    parser.add_argument("--isolation", default="auto")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    per_round = max(1, args.n // args.rounds)
    with tempfile.TemporaryDirectory(prefix="freight-bench-") as tmp:
        home = Path(tmp)
        env = {"FREIGHT_HOME": str(home), "FREIGHT_ISOLATION": args.isolation}
        settings = load_settings({**env, "FREIGHT_CGROUP_PARENT": f"freight-bench-{os.getpid()}"})
        runtime = create_runtime(settings)
        # the same isolation (one slot pool) and shim binary, each shim posix_spawn'ed
        spawning = ShimRuntime(runtime.isolation, runtime.shim, runtime.run_dir, launcher=False)
        scratch = home / "shim-records"
        scratch.mkdir()
        loops = [Loop("bare", bare_loop)]
        if runtime.shim.kind == "c":
            loops.append(Loop("shim", shim_loop(runtime.shim.executable, scratch)))
        loops.append(Loop("spawn", runtime_loop(spawning, home, "s")))
        if runtime.launcher is not None:
            loops.append(Loop("launcher", runtime_loop(runtime, home, "l")))
        try:
            runtime.prewarm(1)
            for loop in loops:  # warm caches, the slot's limit files and the launcher
                loop.run(20)
            for round_ in range(args.rounds):
                for loop in loops if round_ % 2 == 0 else reversed(loops):
                    loop.round(per_round)
        finally:
            runtime.destroy()
    rows = {loop.name: loop.summary() for loop in loops}

    def ratio(a: str, b: str, key: str = "total_median_ms") -> float | None:
        if a not in rows or b not in rows:
            return None
        top, bottom = rows[a][key], rows[b][key]
        return top / bottom if top is not None and bottom else None

    cpu = "machine_cpu_ms_per_attempt"
    result = {
        "n_per_loop": per_round * args.rounds,
        "rounds": args.rounds,
        "runtime": runtime.description,
        "shim": runtime.shim.kind,
        "machine": {"python": sys.version.split()[0], "kernel": platform.release(), "cpus": os.cpu_count()},
        "load_average_after": os.getloadavg(),
        "loops": rows,
        "ratios": {
            "launcher_to_bare": ratio("launcher", "bare"),
            "spawn_to_bare": ratio("spawn", "bare"),
            "shim_to_bare": ratio("shim", "bare"),
            "launcher_to_spawn": ratio("launcher", "spawn"),
            "launcher_to_spawn_cpu": ratio("launcher", "spawn", cpu),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['n_per_loop']} x /bin/true per loop in {args.rounds} rounds, {runtime.description}")
    header = f"{'loop':9} {'median':>9} {'mean':>9} {'p95':>9} {'start med':>10} {'machine CPU':>12}"
    print(f"  {header}  per attempt")
    for name, row in rows.items():
        start = row.get("start_median_ms")
        started = "-" if start is None else f"{start:.3f}ms"
        print(
            f"  {name:9} {row['total_median_ms']:7.3f}ms {row['total_mean_ms']:7.3f}ms "
            f"{row['total_p95_ms']:7.3f}ms {started:>10} {row[cpu]:10.3f}ms"
        )
    for name, value in result["ratios"].items():
        if value is not None:
            print(f"  {name}: {value:.2f}x")
    print(f"  load average after: {' '.join(f'{x:.2f}' for x in result['load_average_after'])}")
    print(f"  wrote {RESULTS}")


if __name__ == "__main__":
    main()
