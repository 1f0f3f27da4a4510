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
from freight.errors import UserError
from freight.jobs.client import JobView
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.units import format_bytes, format_duration

console = Console(width=None if sys.stdout.isatty() else 140)
#: the job user runs it: a python on PATH, not this interpreter (it may live where that user cannot go)
PY = "python3"


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
    scratch.chmod(0o1777)  # the flaky job (as the job user) leaves its mark here
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


def _demo_thread(
    settings: Settings, url_box: list[str], port: int, failed: list[BaseException], token: str | None
) -> None:
    try:
        _demo(settings, url_box, port, token)
    except BaseException as exc:  # reported, then the server stops: `make run` must not pass silently
        failed.append(exc)
        console.print(f"[red]demo failed: {exc!r}[/]")
        import os
        import signal

        os.kill(os.getpid(), signal.SIGTERM)


def _demo(settings: Settings, url_box: list[str], port: int, token: str | None) -> None:
    """Runs the workloads against the scheduler of the server in this process, then says where to look.
    `token` is the admin token the server made on its first start (the demo home is new every run, so
    there is always one): shown, not a new one minted per run."""
    import os
    import signal
    import time

    from freight.server.tokens import create_token

    with JobService.open(settings) as svc:
        deadline = time.monotonic() + 30
        while svc.scheduler_holder() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        console.rule("[bold]freight: jobs")
        console.print(f"home: {settings.home}   store: {settings.database_url}")
        show(run_jobs_demo(svc))
        run_workload_demos(settings)
        if token is None:  # a home made by hand before the server started: one demo token
            _, token = create_token(svc.engine, "demo", admin=True)
    console.rule("[bold]freight is up")
    url = url_box[0] if url_box else f"http://127.0.0.1:{port}"
    console.print(f"web UI and API:  [bold]{url}[/]   (sign in with the admin token below)")
    console.print(f"admin token:     [bold]{token}[/]")
    console.print(f"demo home:       {settings.home}   (emptied by the next make run)")
    console.print(
        f"CLI on the demo: export FREIGHT_URL={url} FREIGHT_TOKEN={token}; .venv/bin/freight jobs ls",
        soft_wrap=True,  # one line, to copy
    )
    console.print("the README's tour: its own home (./.freight) without those two variables")
    if os.environ.get("FREIGHT_DEMO_EXIT"):
        os.kill(os.getpid(), signal.SIGTERM)
    else:
        console.print("[dim]Ctrl-C stops the server; running jobs keep running.[/]")


#: the file that marks a folder as the demo's own home, which each `make run` empties
DEMO_MARK = "freight-demo-home"


def fresh_demo_home(home: Path) -> Path:
    """The demo's own FREIGHT_HOME, emptied: each `make run` tells the same story (a cold build that
    builds, a first deploy), and leaves the user's own home (./.freight) to the tour. A folder
    without the mark is never emptied."""
    home = home.expanduser().resolve()
    if home.exists() and any(home.iterdir()):
        if not (home / DEMO_MARK).is_file():
            raise UserError(
                f"{home} is not empty and is not a demo home",
                where="FREIGHT_DEMO_HOME",
                hint="point it at a new folder; make run empties it on every run",
            )
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / DEMO_MARK).write_text("make run's demo home: emptied on every make run\n")
    return home


def main() -> None:
    """Serve the API, the UI and the scheduler (like `freight up`) and run the demo workloads on it,
    in a home of the demo's own (FREIGHT_DEMO_HOME, default ./.freight-demo), emptied on every run."""
    import os
    import threading

    from freight.server.serve import bind, serve

    port = int(os.environ.get("FREIGHT_PORT", "8321"))
    try:
        bind("127.0.0.1", port).close()  # a demo still serving: said before its home is emptied
        home = fresh_demo_home(Path(os.environ.get("FREIGHT_DEMO_HOME", ".freight-demo")))
    except UserError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    os.environ["FREIGHT_HOME"] = str(home)  # every part of the demo (and its jobs' tools) agrees
    settings = load_settings()
    url_box: list[str] = []
    failed: list[BaseException] = []

    def announce(url: str, first_token: str | None) -> None:
        url_box.append(url)
        args = (settings, url_box, port, failed, first_token)
        threading.Thread(target=_demo_thread, args=args, daemon=True).start()

    serve(settings, port=port, announce=announce)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
