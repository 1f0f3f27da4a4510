"""`make run`: start freight on the embedded defaults with a small demo workload and show what happened.

Jobs that succeed, one that runs out of memory, one that times out, one that fails then succeeds on
retry, and a dependency chain with a failure that cascades. Then the pipelines and builds demos, when
those workloads are installed.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from freight.config import Settings, load_settings
from freight.jobs.client import JobView
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.units import format_bytes, format_duration

console = Console()
PY = sys.executable


def demo_specs(scratch: Path) -> list[JobSpec]:
    flaky = scratch / "flaky-ran-once"
    return [
        JobSpec(
            name="hello", shell="echo hello from an isolated job; uname -sr", resources={"memory": "32M"}
        ),
        JobSpec(
            name="crunch",
            command=[PY, "-c", "print(sum(i * i for i in range(3_000_000)))"],
            resources={"cpus": 0.5, "memory": "128M"},
        ),
        JobSpec(
            name="memory-hog",
            command=[PY, "-c", "blocks = [bytearray(16 << 20) for _ in range(64)]"],
            resources={"memory": "96M"},
            labels={"demo": "oom"},
        ),
        *[
            JobSpec(
                name=f"neighbour-{i}", shell=f"sleep 1; echo neighbour {i} fine", resources={"memory": "16M"}
            )
            for i in range(3)
        ],
        JobSpec(
            name="sleepy", command=["sleep", "60"], timeout="2s", grace="1s", resources={"memory": "16M"}
        ),
        JobSpec(
            name="flaky",
            shell=(
                f"if [ -e {flaky} ]; then echo second try works; "
                f"else touch {flaky}; echo first try fails; exit 75; fi"
            ),
            retry={"max_attempts": 3, "retry_on": [75], "backoff": "500ms"},
            resources={"memory": "16M"},
        ),
    ]


def run_jobs_demo(svc: JobService) -> list[JobView]:
    scratch = Path(tempfile.mkdtemp(prefix="freight-demo-"))
    try:
        views = svc.submit_many(demo_specs(scratch))
        extract = svc.submit(JobSpec(name="extract", shell="echo rows: 42", resources={"memory": "16M"}))
        load = svc.submit(
            JobSpec(
                name="load",
                shell="echo loading",
                depends_on=[{"job": extract.id}],
                resources={"memory": "16M"},
            )
        )
        broken = svc.submit(
            JobSpec(name="broken-step", shell="echo oops >&2; exit 3", resources={"memory": "16M"})
        )
        after = svc.submit(
            JobSpec(name="after-broken", shell="echo never runs", depends_on=[{"job": broken.id}])
        )
        ids = [v.id for v in views] + [extract.id, load.id, broken.id, after.id]
        return svc.wait(ids, timeout=120)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def show(views: list[JobView]) -> None:
    table = Table(title="freight demo: what happened", header_style="bold")
    for column in ("job", "state", "tries", "took", "peak mem", "why"):
        table.add_column(column)
    for view in views:
        last = view.attempt_list[-1] if view.attempt_list else None
        took = (view.ended_at or 0) - (view.started_at or 0) if view.started_at else None
        colour = (
            "green"
            if view.state.value == "succeeded"
            else "red"
            if view.state.value != "cancelled"
            else "dim"
        )
        table.add_row(
            view.name or view.id,
            f"[{colour}]{view.state.value}[/]",
            str(view.attempts),
            format_duration(took),
            format_bytes(last.peak_memory if last else None),
            view.reason or "",
        )
    console.print(table)


def run_workload_demos(settings: Settings) -> None:
    for module, title in (("freight.pipelines.demo", "pipelines"), ("freight.builds.demo", "builds")):
        try:
            demo = importlib.import_module(module)
        except ImportError:
            continue
        console.rule(f"[bold]{title}")
        demo.run_demo(settings)


def main() -> None:
    settings = load_settings()
    console.rule("[bold]freight: jobs")
    console.print(f"home: {settings.home}   store: {settings.database_url}")
    with JobService.open(settings) as svc, svc.running() as scheduler:
        if scheduler is not None:
            console.print(f"isolation: {scheduler.runtime.description}")
        show(run_jobs_demo(svc))
        console.print("try: [bold].venv/bin/freight jobs ls[/], [bold]jobs show ID[/], [bold]jobs logs ID[/]")
        run_workload_demos(settings)


if __name__ == "__main__":
    main()
