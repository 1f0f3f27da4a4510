"""Start-up: the CLI imports only what a command uses. `freight --help` (and a command's own --help)
must not load the store, the server or the data libraries: each costs every invocation ~100 ms or
more (see docs/benchmarks.md, bench/cli.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("sqlalchemy", "alembic", "pyarrow", "duckdb", "fastapi", "uvicorn", "pydantic", "fsspec", "yaml")

# reported from an exit function: `freight build` leaves without the interpreter's teardown (exit
# functions still run), so code after main() would not
PROBE = """
import atexit, json, sys
heavy = set(json.loads(sys.argv[2]))
sys.argv = ["freight", *json.loads(sys.argv[1])]

def report():
    loaded = sorted({name.split(".")[0] for name in sys.modules} & heavy | set(sys.modules) & heavy)
    sys.stderr.write("\\nLOADED " + json.dumps(loaded) + "\\n")

atexit.register(report)
from freight.cli.main import main
try:
    main()
except SystemExit:
    pass
"""


def loaded_by(*args: str, heavy: tuple[str, ...] = HEAVY, home: Path | None = None) -> list[str]:
    return probe(*args, heavy=heavy, home=home)[0]


def probe(
    *args: str, heavy: tuple[str, ...] = HEAVY, home: Path | None = None, cgroup_parent: str | None = None
) -> tuple[list[str], str]:
    """The heavy modules a command line loaded, and what it said on stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("FREIGHT_URL", "FREIGHT_TOKEN")}
    if home is not None:
        env["FREIGHT_HOME"] = str(home)
    if cgroup_parent is not None:
        env["FREIGHT_CGROUP_PARENT"] = cgroup_parent
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args)), json.dumps(heavy)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("LOADED "), done.stderr
    return list(json.loads(line.removeprefix("LOADED "))), done.stderr


def test_help_loads_no_heavy_module() -> None:
    assert loaded_by("--help") == []


@pytest.mark.parametrize("command", [["jobs", "ls"], ["build"], ["pipeline", "run"]])
def test_a_commands_help_loads_no_store_server_or_data_library(command: list[str]) -> None:
    # typer itself brings pydantic in to check a command's parameters; the rest stay out
    heavy = tuple(name for name in HEAVY if name != "pydantic")
    assert loaded_by(*command, "--help", heavy=heavy) == []


def test_listing_jobs_on_a_migrated_store_loads_no_migrations_server_or_data_library(
    tmp_path: Path,
) -> None:
    heavy = ("alembic", "pyarrow", "duckdb", "fastapi", "uvicorn", "fsspec")
    assert "alembic" in loaded_by("jobs", "ls", heavy=heavy, home=tmp_path)  # a new store: migrated
    assert loaded_by("jobs", "ls", heavy=heavy, home=tmp_path) == []


def test_listing_jobs_on_a_migrated_store_reads_it_without_sqlalchemy(tmp_path: Path) -> None:
    # jobs/listing.py: a page with no queued job (and no --label or --json) needs no rule of the service's
    heavy = ("sqlalchemy", "alembic", "freight.jobs.service", "freight.jobs.spec")
    assert "sqlalchemy" in loaded_by("jobs", "ls", heavy=heavy, home=tmp_path)  # a new store: migrated
    assert loaded_by("jobs", "ls", heavy=heavy, home=tmp_path) == []
    assert loaded_by("jobs", "ls", "--state", "failed", heavy=heavy, home=tmp_path) == []
    loaded_by("submit", "--", "true", heavy=heavy, home=tmp_path)  # queued: no scheduler runs here
    assert loaded_by("jobs", "ls", heavy=heavy, home=tmp_path) == []  # says why, without the service
    assert "sqlalchemy" in loaded_by("jobs", "ls", "--json", heavy=heavy, home=tmp_path)


def test_help_is_printed_from_the_command_table_without_typer_or_rich() -> None:
    # cli/registry.py: `freight --help` costs Python's start-up and little more
    assert loaded_by("--help", heavy=("typer", "click", "rich", "freight.cli.app")) == []


def test_running_a_job_loads_no_migrations_server_data_library_or_fsspec(
    tmp_path: Path, cgroup_parent: str
) -> None:
    # the log archive on a file:// store writes with os calls: fsspec loads only for a remote store
    heavy = ("alembic", "pyarrow", "duckdb", "fastapi", "uvicorn", "fsspec", "yaml")
    loaded_by("jobs", "ls", heavy=heavy, home=tmp_path)  # a new store: migrated
    loaded, said = probe("run", "--", "true", heavy=heavy, home=tmp_path, cgroup_parent=cgroup_parent)
    assert "succeeded" in said, said
    assert loaded == []


def test_a_plain_run_is_parsed_without_typers_command_group(tmp_path: Path, cgroup_parent: str) -> None:
    # cli/direct.py: the root group (cli/app.py) and typer's click command are never built for it
    heavy = ("freight.cli.app", "alembic")
    loaded_by("jobs", "ls", heavy=heavy, home=tmp_path)  # a new store: migrated
    run = ("run", "-m", "64M", "--env", "A=1", "--", "true")
    loaded, said = probe(*run, heavy=heavy, home=tmp_path, cgroup_parent=cgroup_parent)
    assert "succeeded" in said, said
    assert loaded == []
    assert loaded_by("run", "--help", heavy=heavy) == ["freight.cli.app"]  # typer's to answer


def test_run_leaves_without_teardown_yet_runs_exit_functions_flushes_and_keeps_the_jobs_code(
    tmp_path: Path, cgroup_parent: str
) -> None:
    # cli/main.py: `freight run` ends with os._exit after the exit functions (the probe reports from
    # one) and a flush; the job's own output and its exit code come through
    env = {k: v for k, v in os.environ.items() if k not in ("FREIGHT_URL", "FREIGHT_TOKEN")}
    env |= {"FREIGHT_HOME": str(tmp_path), "FREIGHT_CGROUP_PARENT": cgroup_parent}
    script = (
        "import atexit, sys; atexit.register(lambda: print('EXIT-FUNCTION-RAN'))\n"
        "class Freed:\n    def __del__(self) -> None: print('TORN-DOWN')\n"
        "freed = Freed()\n"  # freed in the interpreter's teardown, which os._exit skips
    ) + PROBE
    args = ["run", "--", "sh", "-c", "echo from-the-job; exit 3"]
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(args), json.dumps(["alembic"])],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == ["from-the-job", "EXIT-FUNCTION-RAN"], done.stdout
    assert "LOADED" in done.stderr


def test_leaving_early_waits_for_a_thread_that_is_no_daemon() -> None:
    # the rule of cli/main.py's _leave: no thread that is not a daemon is cut off
    script = (
        "import threading, time\n"
        "from freight.cli.main import _leave\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('THREAD-DONE', flush=True))).start()\n"
        "_leave(5)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (5, "THREAD-DONE\n"), done.stderr
