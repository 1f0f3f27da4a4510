"""`freight build | deploy | rollback | releases` through the typer sub-app."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from freight.builds.api import Builds
from freight.cli.build import build_app, mount
from freight.config import Settings
from freight.errors import ConflictError, NotFoundError, UserError
from freight.jobs.service import JobService
from freight.jobs.states import JobState
from tests.builds.helpers import Lines, freight_process, slow_workspace

runner = CliRunner()


@pytest.fixture(autouse=True)
def env(settings: Settings, cgroup_parent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FREIGHT_HOME", str(settings.home))
    monkeypatch.setenv("FREIGHT_CGROUP_PARENT", cgroup_parent)
    monkeypatch.setenv("FREIGHT_CPUS", "2")


def invoke(*args: str) -> object:
    return runner.invoke(build_app, list(args), catch_exceptions=True)


def test_build_dry_json_then_build_why_deploy_rollback(ws: Path, settings: Settings) -> None:
    dry = invoke("build", "--cwd", str(ws), "--dry", "--json")
    assert dry.exit_code == 0, dry.output  # type: ignore[attr-defined]
    plan = json.loads(dry.stdout)  # type: ignore[attr-defined]
    tasks = {t["task"]: t for t in plan["tasks"]}
    assert len(tasks) == 16 and tasks["@sample/app-01#build"]["cache"] == "miss"
    assert tasks["@sample/ui#build"]["cache"] == "noop"
    assert set(tasks["@sample/app-01#build"]["inputs"]) == {
        "files",
        "global",
        "lockfile",
        "env",
        "settings",
        "tools",
        "deps",
    }

    built = invoke("build", "--cwd", str(ws), "--json", "--summarize", "app-01", "app-02")
    assert built.exit_code == 0, built.output  # type: ignore[attr-defined]
    summary = json.loads(built.stdout)  # type: ignore[attr-defined]
    assert summary["totals"]["built"] == 2 and summary["status"] == "ok"
    assert (settings.home / "builds" / "runs" / f"{summary['id']}.json").exists()

    again = invoke("build", "--cwd", str(ws), "app-01")
    assert again.exit_code == 0
    assert "cached" in again.stdout and "1 cached" in again.stdout  # type: ignore[attr-defined]

    (ws / "apps/app-01/src/main.js").open("a").write("export const changed = 1;\n")
    why = invoke("build", "--cwd", str(ws), "--why", "app-01")
    assert why.exit_code == 0
    assert "file src/main.js changed" in why.stdout  # type: ignore[attr-defined]
    rebuilt = invoke("build", "--cwd", str(ws), "app-01")
    assert rebuilt.exit_code == 0

    listed = invoke("releases", "app-01", "--json")
    releases = json.loads(listed.stdout)["releases"]  # type: ignore[attr-defined]
    assert len(releases) == 2
    newest, oldest = releases[0]["id"], releases[1]["id"]
    assert "is now current in prod" in invoke("deploy", "app-01", oldest).stdout  # type: ignore[attr-defined]
    assert "is now current in prod" in invoke("deploy", "app-01", "--env", "prod").stdout  # type: ignore[attr-defined]
    assert "already current" in invoke("deploy", "app-01").stdout  # type: ignore[attr-defined]
    back = invoke("rollback", "app-01", "--env", "prod")
    assert f"rolled back to {oldest}" in back.stdout  # type: ignore[attr-defined]
    table = invoke("releases", "app-01", "--history").stdout  # type: ignore[attr-defined]
    assert f"{oldest}" in table and "<- current in prod" in table and "rollback" in table
    assert newest in table

    nothing = invoke("rollback", "app-01")
    assert isinstance(nothing.exception, ConflictError)  # type: ignore[attr-defined]
    missing = invoke("deploy", "nope")
    assert isinstance(missing.exception, NotFoundError)  # type: ignore[attr-defined]


def test_build_exit_code_is_1_when_a_task_fails(ws: Path) -> None:
    (ws / "apps/app-02/src/main.js").write_text("syntax error (\n")
    failed = invoke("build", "--cwd", str(ws), "--continue", "app-01", "app-02")
    assert failed.exit_code == 1
    assert "failed" in failed.stdout  # type: ignore[attr-defined]


def test_mount_adds_the_commands() -> None:
    root = typer.Typer()

    @root.command("version")
    def version() -> None:
        pass

    mount(root)
    names = {c.name for c in root.registered_commands}
    assert {"build", "deploy", "rollback", "releases", "serve", "version"} <= names


def test_errors_keep_square_brackets(ws: Path) -> None:
    """A UserError is one line; a TOML section such as [tasks.lint] is not eaten as markup. (Run as
    a user runs it: `freight build` leaves the process without the interpreter's teardown.)"""
    done = subprocess.run(
        [sys.executable, "-m", "freight.cli.main", "build", "--cwd", str(ws), "--task", "lint", "--dry"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "add a [tasks.lint] section" in done.stderr and done.stderr.count("\n") == 1, done.stderr


def running(svc: JobService, jobs: list[str]) -> None:
    """Wait until the jobs run (a user cancels a build that is under way)."""
    deadline = time.monotonic() + 60
    while {svc.get(j).state for j in jobs} != {JobState.RUNNING} and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_cancels_the_build_and_leaves_no_job_running(
    tmp_path: Path, settings: Settings, sig: signal.Signals
) -> None:
    """The real binary, interrupted as a terminal (or a CI runner) would: its jobs end cancelled before
    it exits (they used to stay `running` with nobody to stop them); the run is recorded as cancelled."""
    ws = slow_workspace(tmp_path / "slow")
    proc = freight_process(["build", "--cwd", str(ws)], {})
    assert proc.stderr is not None and proc.stdout is not None
    err = Lines(proc.stderr)
    try:
        seen = err.until(lambda text: text.count("started (job ") == 2)
        run_id = re.findall(r"^build (\w+): 2 tasks", seen, re.M)[0]
        jobs = re.findall(r"started \(job (\w+)\)", seen)
        with JobService.open(settings) as svc:
            running(svc, jobs)
            proc.send_signal(sig)
            assert proc.wait(timeout=60) == 130, err.rest()
            assert {svc.get(j).state for j in jobs} == {JobState.CANCELLED}
            left = svc.list_jobs(label={"build.run": run_id})
            assert len(left) == 2 and all(v.state.terminal for v in left)
    finally:
        proc.kill()
    assert "cancelling the build: 2 job(s) stopping" in err.rest()
    assert "the build was cancelled" in proc.stdout.read()
    with Builds.open(settings) as builds:
        row = builds.store.run(run_id)
    assert row is not None and row["status"] == "cancelled"
    assert {t["status"] for t in row["summary"]["tasks"]} == {"cancelled"}


def test_cancel_flag_cancels_a_running_local_build(tmp_path: Path, settings: Settings) -> None:
    ws = slow_workspace(tmp_path / "slow", apps=("a",))
    proc = freight_process(["build", "--cwd", str(ws), "--json"], {})
    assert proc.stderr is not None and proc.stdout is not None
    err = Lines(proc.stderr)
    try:
        seen = err.until(lambda text: "started (job " in text)
        run_id = re.findall(r"^build (\w+):", seen, re.M)[0]
        with JobService.open(settings) as svc:
            running(svc, re.findall(r"started \(job (\w+)\)", seen))
        cancelled = invoke("build", "--cancel", run_id)
        assert cancelled.stdout == f"build {run_id}: cancelling 1 job\n"  # type: ignore[attr-defined]
        assert proc.wait(timeout=60) == 130, err.rest()
    finally:
        proc.kill()
    assert json.loads(proc.stdout.read())["status"] == "cancelled"
    again = invoke("build", "--cancel", run_id)
    assert isinstance(again.exception, NotFoundError)  # type: ignore[attr-defined]
    assert "no running build" in str(again.exception)  # type: ignore[attr-defined]


def test_why_says_a_changed_hash_is_still_a_hit_when_the_cache_has_it(ws: Path) -> None:
    """Inputs went back to an earlier state (an env var unset again): the hash differs from the last run
    but is cached, so --why must not leave the user thinking the next build is a miss."""
    assert invoke("build", "--cwd", str(ws), "app-01").exit_code == 0
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SAMPLE_FLAVOUR", "x")
        assert invoke("build", "--cwd", str(ws), "app-01").exit_code == 0
    why = invoke("build", "--cwd", str(ws), "--why", "app-01")
    lines = why.stdout.splitlines()  # type: ignore[attr-defined]
    assert "differs from" in lines[0] and "  - env var SAMPLE_FLAVOUR removed" in lines
    assert "  it is still a hit: an earlier build with these inputs is in the local cache" in lines


def test_serve_checks_its_options_before_serving() -> None:
    bad_env = invoke("serve", "--env", "bad env")
    assert isinstance(bad_env.exception, UserError)  # type: ignore[attr-defined]
    assert str(bad_env.exception).startswith("--env: 'bad env' is not an environment name")  # type: ignore[attr-defined]
    assert invoke("serve", "--port", "99999").exit_code == 2  # type: ignore[attr-defined]
    assert invoke("serve", "--ttl", "-1").exit_code == 2  # type: ignore[attr-defined]


def test_a_build_whose_app_would_take_a_services_host_stops_before_it_starts(
    tmp_path: Path, settings: Settings
) -> None:
    """A builds app may not publish on a host a service holds (db/claims.py, the rule services/ apply
    the other way): one line naming freight.toml's section, exit 2, nothing built or routed."""
    from freight.builds.store import BuildStore
    from freight.services.spec import ServiceSpec
    from freight.services.store import ServiceStore

    ws = slow_workspace(tmp_path / "ws", apps=("a",))
    with (ws / "freight.toml").open("a") as toml:
        toml.write('\n[apps.a]\nhosts = ["web.example.com"]\n')
    with JobService.open(settings) as svc:
        service = ServiceSpec(image="x", command=["x"], port=18000, replicas=0, hosts=["web.example.com"])
        ServiceStore(svc.engine).deploy("web", service)
        done = subprocess.run(
            [sys.executable, "-m", "freight.cli.main", "build", "--cwd", str(ws)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(
            f"error: {ws / 'freight.toml'}: apps.a.hosts: "
            "host web.example.com is already routed to service web"
        )
        assert done.stderr.count("\n") == 1, done.stderr
        assert BuildStore(svc.engine).routes() == []
        assert svc.events() == []  # no job was submitted
