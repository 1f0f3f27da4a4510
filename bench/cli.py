"""CLI latency: how long `freight --help`, `freight jobs ls` and `freight run -- true` take, end to end,
as a user at a terminal waits for them, beside floors and peers timed the same way in the same run.

The freight trees are byte-compiled first (a shell's PYTHONDONTWRITEBYTECODE would otherwise make every
run compile freight again). A hyperfine-like loop: one warm-up run, then --runs timed runs of each
command (a fresh process each time, output to /dev/null); the median and the spread of wall time, and the
CPU time (user + system) each run used, which the load of other processes on a shared machine moves much
less than wall time.

  python-start    `python -c pass` with the venv's interpreter: the floor of any Python CLI
  typer-hello     a one-command typer app's --help: the floor of a typer CLI with rich help
  freight-help    `freight --help`
  podman-help     `podman --help` (a Go CLI), when podman is installed
  freight-ls      `freight jobs ls` on a small store (20 finished jobs) under a FREIGHT_HOME of its
                  own: read through sqlite3 (jobs/listing.py)
  freight-ls-json `freight jobs ls --json`: the same page through the service (SQLAlchemy, pydantic)
  sqlite-ls       `python -c` opening that store's SQLite file and reading the 50 newest jobs: the
                  floor for a Python CLI that lists jobs from the same store
  freight-run     `freight run -- true`: opens the store, starts a scheduler, runs /bin/true in its
                  own cgroup, waits for its end and exits with its code
  sh-true         `sh -c true`: a process started and waited for, the floor under any job

With --compare DIR, the freight rows are also run on another checkout's code (DIR/src first on
PYTHONPATH, the same venv, a store of its own with the same 20 jobs), interleaved run by run with this
tree's so that both see the same load: an A/B of this branch against, say, main (rows `DIR:freight-
help`, ...).

Prints a table and writes bench/results/cli.json.

    python bench/cli.py [--runs 10] [--compare DIR]
    (e.g. DIR from `git archive main | tar -x -C /tmp/freight-main`)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
BIN = Path(sys.executable).parent
TYPER_HELLO = """
import typer
app = typer.Typer()
@app.command()
def hello(name: str = "world") -> None:
    '''Say hello.'''
    print(name)
app()
"""
SQLITE_LS = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("select id, name, state from jobs order by submitted_at desc limit 50").fetchall()
print(len(rows))
"""


def time_one(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system, this child only) seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(
    name: str, argv: list[str], env: dict[str, str], runs: int, other: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """`runs` timed runs after a warm-up; with `other` (an env running another tree's code), that
    variant's runs interleaved with these, one each in turn."""
    variants = [(name, env)] + ([(f"{other['FREIGHT_BENCH_TREE']}:{name}", other)] if other else [])
    for _, variant_env in variants:
        time_one(argv, variant_env)  # warm-up: page cache, .pyc files
    samples: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label, _ in variants}
    for _ in range(runs):
        for label, variant_env in variants:
            wall, cpu = time_one(argv, variant_env)
            samples[label][0].append(wall)
            samples[label][1].append(cpu)
    rows = []
    for label, (walls, cpus) in samples.items():
        row = {
            "name": label,
            "argv": argv,
            "runs": runs,
            "median_ms": statistics.median(walls) * 1000,
            "min_ms": min(walls) * 1000,
            "max_ms": max(walls) * 1000,
            "cpu_median_ms": statistics.median(cpus) * 1000,
        }
        print(
            f"{label:<24} median {row['median_ms']:7.1f} ms   min {row['min_ms']:7.1f}   "
            f"max {row['max_ms']:7.1f}   cpu {row['cpu_median_ms']:7.1f} ms",
            flush=True,
        )
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--compare", type=Path, help="another checkout whose src/ to time alongside")
    args = parser.parse_args()
    python, freight = str(BIN / "python"), str(BIN / "freight")
    home = Path(tempfile.mkdtemp(prefix="freight-bench-cli-"))
    # without .pyc files (PYTHONDONTWRITEBYTECODE is set in some shells) every run would compile
    # freight again: compile both trees first, as an installed package is
    skip = ("FREIGHT_URL", "FREIGHT_TOKEN", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in skip}
    trees = [Path(__file__).resolve().parent.parent / "src"]
    if args.compare is not None:
        trees.append(args.compare.resolve() / "src")
    for tree in trees:
        subprocess.run(
            [python, "-m", "compileall", "-q", str(tree)], env=env, check=True, capture_output=True
        )
    env["FREIGHT_HOME"] = str(home)
    other = None
    if args.compare is not None:
        tree = args.compare.resolve()
        # a store of its own, made by its own code: the trees' migrations may differ
        other = dict(
            env,
            PYTHONPATH=str(tree / "src"),
            FREIGHT_BENCH_TREE=tree.name,
            FREIGHT_HOME=str(home / "compare"),
        )
    rows: list[dict[str, Any]] = []
    try:
        rows += measure("python-start", [python, "-c", "pass"], env, args.runs)
        rows += measure("typer-hello", [python, "-c", TYPER_HELLO, "--help"], env, args.runs)
        rows += measure("freight-help", [freight, "--help"], env, args.runs, other)
        if shutil.which("podman"):
            rows += measure("podman-help", ["podman", "--help"], env, args.runs)
        for store_env in [env] + ([other] if other else []):  # a small store, 20 finished jobs
            for _ in range(20):
                subprocess.run([freight, "run", "--", "true"], env=store_env, check=True, capture_output=True)
        rows += measure("freight-ls", [freight, "jobs", "ls"], env, args.runs, other)
        rows += measure("freight-ls-json", [freight, "jobs", "ls", "--json"], env, args.runs)
        db = home / "freight.db"
        rows += measure("sqlite-ls", [python, "-c", SQLITE_LS, str(db)], env, args.runs)
        rows += measure("freight-run", [freight, "run", "--", "true"], env, args.runs, other)
        rows += measure("sh-true", ["sh", "-c", "true"], env, args.runs)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    by = {r["name"]: r for r in rows}
    targets = {"freight-help": 150.0, "freight-ls": 250.0, "freight-run": 400.0}
    for name, target in targets.items():
        verdict = "meets" if by[name]["median_ms"] <= target else "misses"
        print(f"{name}: median {by[name]['median_ms']:.1f} ms {verdict} the {target:.0f} ms target")
    print(
        f"freight-help / typer-hello = {by['freight-help']['median_ms'] / by['typer-hello']['median_ms']:.2f}"
    )
    for name, floor in (
        ("freight-help", "python-start"),
        ("freight-ls", "sqlite-ls"),
        ("freight-ls", "freight-ls-json"),
    ):
        ratio = by[name]["median_ms"] / by[floor]["median_ms"]
        cpu = by[name]["cpu_median_ms"] / by[floor]["cpu_median_ms"]
        print(f"{name} / {floor} = {ratio:.2f} (wall), {cpu:.2f} (cpu)")
    if other is not None:
        tree = other["FREIGHT_BENCH_TREE"]
        for name in targets:
            mine, theirs = by[name], by[f"{tree}:{name}"]
            print(
                f"{name}: this tree / {tree} = {mine['median_ms'] / theirs['median_ms']:.2f} (wall), "
                f"{mine['cpu_median_ms'] / theirs['cpu_median_ms']:.2f} (cpu)"
            )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "cli.json"
    out.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "load_average": os.getloadavg(),
                "targets_ms": targets,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
