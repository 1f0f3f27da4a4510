"""Builds of a generated 50-app workspace (real esbuild) through the embedded job platform.

Measures, in one run on this machine:

- cold build: wall time vs the sum of the task (job) times, and the parallel efficiency at this
  machine's capacity: sum / (wall x slots), slots = capacity cpus / cpus per task;
- the same 50 builds run directly by a 2-worker process pool (no platform, no cache): the baseline;
- a fully cached run (outputs deleted first, so all 50 are restored) and a one-file change;
- dependencies: `npm ci` as a job vs restoring the node_modules snapshot in a fresh clone.

Prints the figures and writes bench/results/builds.json.

    python bench/builds.py [--apps 50] [--lines 400] [--esbuild 0.28.2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from freight.builds.api import Builds
from freight.builds.depcache import mark_installed
from freight.builds.plan import PlanOptions
from freight.builds.results import RunSummary
from freight.builds.runner import RunOptions, bin_path
from freight.builds.sample import generate, git_commit, git_init
from freight.builds.workspace import load_workspace
from freight.config import load_settings
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec

RESULTS = Path(__file__).parent / "results"


def direct_baseline(root: Path, workers: int) -> dict[str, float]:
    """The builds run straight from a process pool: what a plain script would get."""
    ws = load_workspace(root)
    apps = [p for p in ws.apps]
    times: list[float] = []

    def one(pkg_dir: Path, env: dict[str, str]) -> float:
        start = time.perf_counter()
        subprocess.run(
            ["/bin/sh", "-c", "sample-build"], cwd=pkg_dir, env=env, check=True, capture_output=True
        )
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        futures = []
        for pkg in apps:
            env = {**os.environ, "PATH": bin_path(ws, pkg, os.environ["PATH"])}
            futures.append(pool.submit(one, root / pkg.dir, env))
        times = [f.result() for f in futures]
    wall = time.perf_counter() - start
    return {"wall_seconds": wall, "task_seconds": sum(times), "median_task": sorted(times)[len(times) // 2]}


def timed(builds: Builds, *args: Any, **kwargs: Any) -> tuple[RunSummary, float]:
    """A build and its end-to-end seconds: planning (workspace, hashing) included."""
    start = time.perf_counter()
    summary = builds.build(*args, **kwargs)
    return summary, time.perf_counter() - start


def describe(run: tuple[RunSummary, float], slots: float) -> dict[str, Any]:
    summary, end_to_end = run
    totals = summary.totals()
    wall = totals["wall_seconds"]
    task = totals["task_seconds"]
    return {
        **totals,
        "end_to_end_seconds": round(end_to_end, 4),
        "critical_path_seconds": round(summary.critical_seconds, 4),
        "parallel_efficiency": round(task / (wall * slots), 3) if wall else None,
        "speedup_vs_serial": round(task / wall, 3) if wall else None,
        "ideal_wall_seconds": round(max(task / slots, summary.critical_seconds), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--lines", type=int, default=400, help="generated functions per app")
    parser.add_argument("--esbuild", default="0.28.2")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="freight-bench-builds-") as tmp_text:
        tmp = Path(tmp_text)
        root = generate(tmp / "ws", args.apps, esbuild_version=args.esbuild, lines=args.lines)
        start = time.perf_counter()
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=root,
            check=True,
            capture_output=True,
        )
        npm_install = time.perf_counter() - start
        git_init(root)
        mark_installed(load_workspace(root))

        settings = load_settings(
            {"FREIGHT_HOME": str(tmp / "home"), "FREIGHT_CGROUP_PARENT": f"freight-bb-{os.getpid()}"}
        )
        svc = JobService.open(settings)
        scheduler = svc.start_scheduler(poll_interval=0.2)
        capacity = float(scheduler.snapshot()["cpus"])
        svc.wait([svc.submit(JobSpec(command=["/bin/true"], resources={"cpus": 0.1, "memory": "32M"})).id])
        builds = Builds.open(settings)
        task_cpus = load_workspace(root).config.tasks["build"].cpus
        slots = capacity / task_cpus

        cold = timed(builds, svc, root, run_options=RunOptions())
        assert cold[0].ok, cold[0].table()
        built_dirs = sorted(root.glob("apps/*/dist"))

        for dist in built_dirs:
            shutil.rmtree(dist)
        cached = timed(builds, svc, root)
        assert cached[0].ok and cached[0].count("cached") == args.apps
        untouched = timed(builds, svc, root)  # outputs already in place: restored anyway (cleared first)

        with (root / "packages/charts/src/index.js").open("a") as handle:
            handle.write("export const bench = 1;\n")
        one_file = timed(builds, svc, root)
        git_commit(root, "bench change")

        baseline = direct_baseline(root, workers=int(slots))

        # Dependencies: `npm ci` as a job in a fresh clone, then a snapshot restore in another one.
        only = PlanOptions(only=("app-01",))
        deps_home = replace(settings.with_home(tmp / "deps-home"), cgroup_parent=settings.cgroup_parent)
        deps_builds = Builds.open(deps_home)
        clones = []
        for name in ("clone-a", "clone-b"):
            target = tmp / name
            subprocess.run(["git", "clone", "-q", str(root), str(target)], check=True)
            clones.append(target)
        installed = deps_builds.build(svc, clones[0], only)
        restored = deps_builds.build(svc, clones[1], only, RunOptions(force=True))
        assert installed.deps and restored.deps and restored.deps["status"] == "restored"
        deps_builds.close()
        builds.close()
        svc.close()

    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "capacity_cpus": capacity, "python": host.python_version()},
        "workspace": {
            "apps": args.apps,
            "shared_packages": 4,
            "lines_per_app": args.lines,
            "esbuild": args.esbuild,
        },
        "task_cpus": task_cpus,
        "slots": slots,
        "cold": describe(cold, slots),
        "fully_cached": describe(cached, slots),
        "fully_cached_outputs_in_place": describe(untouched, slots),
        "one_file_change": describe(one_file, slots),
        "direct_baseline": {k: round(v, 4) for k, v in baseline.items()},
        "npm_install_seconds": round(npm_install, 3),
        "deps": {"installed": installed.deps, "restored": restored.deps},
    }
    (RESULTS / "builds.json").write_text(json.dumps(result, indent=2))
    c, f, o, b = result["cold"], result["fully_cached"], result["one_file_change"], result["direct_baseline"]
    print(f"capacity {capacity:g} cpus, {slots:g} task slots; {args.apps} apps")
    print(
        f"cold: wall {c['wall_seconds']:.2f}s, sum of task times {c['task_seconds']:.2f}s, "
        f"parallel efficiency {c['parallel_efficiency']:.2f} (speedup {c['speedup_vs_serial']:.2f}x, "
        f"ideal wall {c['ideal_wall_seconds']:.2f}s)"
    )
    print(f"direct process pool: wall {b['wall_seconds']:.2f}s, sum {b['task_seconds']:.2f}s")
    print(f"fully cached: wall {f['wall_seconds']:.3f}s ({f['cached']} restored), ", end="")
    print(f"{f['end_to_end_seconds']:.3f}s with planning and hashing")
    print(f"one file in a shared package: wall {o['wall_seconds']:.2f}s ", end="")
    print(f"({o['built']} built, {o['cached']} cached)")
    d = result["deps"]
    print(
        f"deps: npm ci job {d['installed']['install_seconds']:.2f}s; snapshot restore "
        f"{d['restored']['seconds']:.2f}s (saved {d['restored']['saved_seconds']:.2f}s)"
    )


if __name__ == "__main__":
    main()
