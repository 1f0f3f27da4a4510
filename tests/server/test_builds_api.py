"""Builds over the API: `freight build | deploy | rollback | releases` with FREIGHT_URL against a live
server (real scheduler, real cgroups, real esbuild), printing what embedded mode prints.

The workspace is a generated 3-app monorepo (tests/builds fixtures) that both the server and the CLI
read at the same absolute path, as a remote build requires.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from freight.builds.api import Builds
from freight.builds.depcache import mark_installed
from freight.builds.sample import generate, git_init
from freight.builds.workspace import load_workspace
from freight.jobs.states import JobState
from freight.server.tokens import create_token, request_checker
from tests.builds.conftest import _npm, esbuild_version  # noqa: F401  (a fixture)
from tests.builds.helpers import Lines, freight_process, slow_workspace
from tests.server.conftest import Live
from tests.server.test_remote_cli import cli, embedded, remote

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, esbuild_version: str) -> Path:  # noqa: F811
    """Three small apps over the shared packages, installed and committed."""
    root = tmp_path_factory.mktemp("remote-builds") / "ws"
    generate(root, 3, esbuild_version=esbuild_version, lines=10, shared_functions=10)
    _npm(["install", "--no-audit", "--no-fund", "--prefer-offline"], root)
    git_init(root)
    mark_installed(load_workspace(root))
    return root


@pytest.fixture
def http(live: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{live.url}/api/v1", timeout=60) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def build(live: Live, ws: Path, *args: str) -> Any:
    return cli(["build", "--cwd", str(ws), *args], remote(live))


def test_remote_build_publishes_and_prints_like_a_local_one(live: Live, ws: Path, http: httpx.Client) -> None:
    first = build(live, ws, "--json")
    assert first.code == 0, (first.stderr, first.error)
    summary = json.loads(first.stdout)
    assert summary["status"] == "ok" and summary["trigger"] == "api"
    assert summary["totals"]["built"] == 3
    assert {r["app"] for r in summary["releases"] if r["new"]} == {"app-01", "app-02", "app-03"}
    # the server's progress is replayed here as a local build prints it
    assert "@sample/app-01#build: built in" in first.stderr

    # the build is in the API under its run id, with the same summary
    record = http.get(f"/builds/{summary['id']}", headers=bearer(live.admin)).json()
    assert record["state"] == "succeeded" and record["summary"] == summary
    listed = http.get("/builds", headers=bearer(live.admin)).json()
    assert summary["id"] in [b["id"] for b in listed]

    again = build(live, ws, "app-01")
    assert again.code == 0, again.error
    assert "1 cached" in again.stdout and "@sample/app-01#build" in again.stdout
    assert "cache hit (local), replaying log" in again.stderr

    for args in (
        ["releases", "app-01"],
        ["releases", "app-01", "--json"],
        ["releases", "app-02", "--history"],
    ):
        local, far = cli(args, embedded(live)), cli(args, remote(live))
        assert local.code == far.code == 0, (args, far.error)
        assert far.stdout == local.stdout and far.stdout, args

    (ws / "apps/app-03/src/main.js").write_text("syntax error (\n")
    failed = build(live, ws, "--continue")
    assert failed.code == 1 and "failed" in failed.stdout
    subprocess.run(["git", "checkout", "--", "apps/app-03/src/main.js"], cwd=ws, check=True)


def test_remote_deploy_rollback_through_the_api_and_gateway(live: Live, ws: Path, http: httpx.Client) -> None:
    assert build(live, ws, "app-02").code == 0
    (ws / "apps/app-02/src/main.js").open("a").write("export const second = 2;\n")
    assert build(live, ws, "app-02").code == 0
    newest, oldest = (
        r["id"]
        for r in json.loads(cli(["releases", "app-02", "--json"], remote(live)).stdout)["releases"][:2]
    )

    assert (
        cli(["deploy", "app-02", oldest], remote(live)).stdout == f"app-02: {oldest} is now current in prod\n"
    )
    done = cli(["deploy", "app-02"], remote(live))
    assert done.stdout == f"app-02: {newest} is now current in prod (was {oldest})\n"
    assert cli(["deploy", "app-02"], remote(live)).stdout == f"app-02: {newest} is already current in prod\n"
    apps = {a["app"]: a for a in http.get("/apps", headers=bearer(live.admin)).json()}
    assert apps["app-02"]["current"] == {"prod": newest} and apps["app-02"]["prefix"] == "/app-02/"

    with (
        Builds.open(live.settings) as builds,
        TestClient(
            builds.gateway(env="prod", ttl=0, may_preview=request_checker(builds.store.engine))
        ) as gateway,
    ):
        assert gateway.get(f"/_freight/releases/app-02/{newest}/").status_code == 401
        page = {
            rid: gateway.get(f"/_freight/releases/app-02/{rid}/", headers=bearer(live.admin)).text
            for rid in (newest, oldest)
        }
        assert page[newest] != page[oldest]
        assert gateway.get("/app-02/").text == page[newest]
        back = cli(["rollback", "app-02"], remote(live))
        assert back.stdout == f"app-02: rolled back to {oldest} in prod (from {newest})\n"
        assert gateway.get("/app-02/").text == page[oldest]

    history = http.get("/apps/app-02/history", headers=bearer(live.admin)).json()
    assert [(h["action"], h["release_id"], h["actor"]) for h in history[:2]] == [
        ("rollback", oldest, "admin"),
        ("deploy", newest, "admin"),
    ]
    # the next rollback would go to the release before `oldest`: there is none
    nothing = http.post("/apps/app-02/rollback", json={"env": "prod"}, headers=bearer(live.admin))
    assert nothing.status_code == 409 and "no earlier release" in nothing.json()["message"]
    assert cli(["rollback", "app-02"], remote(live)).code == 2


def test_bad_requests_are_one_clear_line(live: Live, ws: Path, http: httpx.Client) -> None:
    assert build(live, ws, "app-01").code == 0  # a cache hit after the tests above
    _, plain = create_token(live.service.engine, "builds-reader")
    denied = http.post("/apps/app-01/deploy", json={}, headers=bearer(plain))
    assert denied.status_code == 403 and "admin token" in denied.json()["message"]
    assert http.post("/builds", json={"workspace": str(ws)}, headers=bearer(plain)).status_code == 403
    assert http.get("/apps/app-01/releases", headers=bearer(plain)).status_code == 200
    far = cli(["deploy", "app-01"], remote(live, plain))
    assert far.code == 2 and "admin token" in far.error

    assert http.get("/apps").status_code == 401
    no_token = cli(["releases", "app-01"], {**remote(live), "FREIGHT_TOKEN": None})
    assert no_token.code == 2 and no_token.error.startswith("FREIGHT_TOKEN: this needs an API token")
    assert http.post("/apps/app-01/deploy", json={}).status_code == 401

    missing = http.post("/apps/nope/deploy", json={}, headers=bearer(live.admin))
    assert missing.status_code == 404 and missing.json()["message"] == "no releases of 'nope'"
    assert http.get("/apps/nope/history", headers=bearer(live.admin)).status_code == 404
    no_release = http.post("/apps/app-01/deploy", json={"release": "rzzz"}, headers=bearer(live.admin))
    assert no_release.status_code == 404 and no_release.json()["where"] is None
    local, far = cli(["deploy", "nope"], embedded(live)), cli(["deploy", "nope"], remote(live))
    assert far.code == local.code == 2 and far.error == local.error
    assert far.error == "no releases of 'nope' (build it first: `freight build`)"
    env = {**os.environ, **{k: v for k, v in remote(live).items() if v is not None}}
    binary = [sys.executable, "-m", "freight.cli.main", "deploy", "nope"]
    done = subprocess.run(binary, env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (2, f"error: {far.error}\n")

    bad_env = http.post("/apps/app-01/deploy", json={"env": "no env"}, headers=bearer(live.admin))
    assert bad_env.status_code == 422 and bad_env.json()["where"] == "env"

    for workspace, where in (("relative/ws", "workspace"), (str(ws / "nope"), "workspace")):
        answer = http.post("/builds", json={"workspace": workspace}, headers=bearer(live.admin))
        assert answer.status_code == 400 and answer.json()["where"] == where, answer.json()
    unreadable = http.post("/builds", json={"workspace": str(ws / "nope")}, headers=bearer(live.admin))
    assert str(ws / "nope") in unreadable.json()["message"]
    bad_package = http.post(
        "/builds", json={"workspace": str(ws), "packages": ["nope"]}, headers=bearer(live.admin)
    )
    assert bad_package.status_code == 400 and "no package 'nope'" in bad_package.json()["message"]
    option = http.post(
        "/builds", json={"workspace": str(ws), "affected_since": "--output=x"}, headers=bearer(live.admin)
    )
    assert option.status_code == 422 and option.json()["where"] == "affected_since"
    assert http.get("/builds/nope", headers=bearer(live.admin)).status_code == 404


def _ended(http: httpx.Client, live: Live, build_id: str) -> dict[str, Any]:
    """Poll the build until it is over (generous deadline)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record: dict[str, Any] = http.get(f"/builds/{build_id}", headers=bearer(live.admin)).json()
        if record["state"] in ("succeeded", "failed", "cancelled"):
            return record
        time.sleep(0.05)
    raise AssertionError(f"build {build_id} did not end")


def _running(http: httpx.Client, live: Live, build_id: str, tasks: int) -> None:
    """Wait until the build has submitted `tasks` jobs."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        events = http.get(f"/builds/{build_id}/events", headers=bearer(live.admin)).json()["events"]
        if sum(1 for e in events if e["kind"] == "task_started") == tasks:
            return
        time.sleep(0.05)
    raise AssertionError(f"build {build_id} did not start its tasks")


def test_cancel_a_build_through_the_api(live: Live, http: httpx.Client, tmp_path: Path) -> None:
    slow = slow_workspace(tmp_path / "slow")
    admin = bearer(live.admin)
    build_id = http.post("/builds", json={"workspace": str(slow)}, headers=admin).json()["id"]
    _running(http, live, build_id, 2)
    _, plain = create_token(live.service.engine, "cancel-reader")
    assert http.post(f"/builds/{build_id}/cancel", headers=bearer(plain)).status_code == 403

    asked = http.post(f"/builds/{build_id}/cancel", headers=admin)
    assert asked.status_code == 200, asked.json()
    assert asked.json()["state"] == "running" and len(asked.json()["cancelled_jobs"]) == 2
    record = _ended(http, live, build_id)
    assert record["state"] == "cancelled" and record["summary"]["status"] == "cancelled"
    assert {t["status"] for t in record["summary"]["tasks"]} == {"cancelled"}
    jobs = live.service.list_jobs(label={"build.run": build_id})
    assert {v.state for v in jobs} == {JobState.CANCELLED}

    again = http.post(f"/builds/{build_id}/cancel", headers=admin)
    assert (
        again.status_code == 409 and again.json()["message"] == f"build {build_id} already ended (cancelled)"
    )
    listed = {b["id"]: b["state"] for b in http.get("/builds", headers=admin).json()}
    assert listed[build_id] == "cancelled"
    missing = http.post("/builds/nope/cancel", headers=admin)
    assert missing.status_code == 404 and missing.json()["where"] == "build_id"


def test_ctrl_c_on_a_remote_build_without_a_terminal_says_how_to_cancel(
    live: Live, http: httpx.Client, tmp_path: Path
) -> None:
    slow = slow_workspace(tmp_path / "slow")
    proc = freight_process(["build", "--cwd", str(slow)], live.env(), stdin=subprocess.DEVNULL)
    assert proc.stderr is not None
    err = Lines(proc.stderr)
    try:
        seen = err.until(lambda text: text.count("started (job ") == 2)
        build_id = re.findall(r"^build (\w+):", seen, re.M)[0]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        proc.kill()
    hint = f"the build {build_id} goes on on the server; cancel it with `freight build --cancel {build_id}`"
    assert hint in err.rest()
    assert http.get(f"/builds/{build_id}", headers=bearer(live.admin)).json()["state"] == "running"

    done = cli(["build", "--cancel", build_id], remote(live))
    assert done.stdout == f"build {build_id}: cancelling 2 jobs\n", done.error
    assert _ended(http, live, build_id)["state"] == "cancelled"


def test_ctrl_c_on_a_remote_build_at_a_terminal_asks_and_cancels(
    live: Live, http: httpx.Client, tmp_path: Path
) -> None:
    slow = slow_workspace(tmp_path / "slow", apps=("a",))
    terminal, tty = pty.openpty()
    proc = freight_process(["build", "--cwd", str(slow)], live.env(), stdin=tty)
    os.close(tty)
    assert proc.stderr is not None and proc.stdout is not None
    err = Lines(proc.stderr)
    try:
        build_id = re.findall(r"^build (\w+):", err.until(lambda text: "started (job " in text), re.M)[0]
        proc.send_signal(signal.SIGINT)
        err.until(lambda text: "cancel the build on the server? [y/N]:" in text)
        os.write(terminal, b"y\n")
        assert proc.wait(timeout=60) == 130, err.rest()
    finally:
        proc.kill()
        os.close(terminal)
    assert "the build was cancelled" in proc.stdout.read()
    assert _ended(http, live, build_id)["state"] == "cancelled"


def test_dry_and_why_answer_for_the_server_cache_and_runs(
    live: Live, ws: Path, http: httpx.Client, tmp_path: Path
) -> None:
    """With FREIGHT_URL, --dry and --why ask the server (its cache, its recorded runs), not this
    machine's empty FREIGHT_HOME, which answered "miss" and "no earlier run" for a workspace the
    server had just built."""
    elsewhere = {**remote(live), "FREIGHT_HOME": str(tmp_path / "cli-home")}
    built = cli(["build", "--cwd", str(ws), "app-01", "--json"], elsewhere)
    assert built.code == 0, built.error
    run_id = json.loads(built.stdout)["id"]

    dry = cli(["build", "--cwd", str(ws), "app-01", "--dry", "--json"], elsewhere)
    assert dry.code == 0, dry.error
    assert {t["task"]: t["cache"] for t in json.loads(dry.stdout)["tasks"]}["@sample/app-01#build"] == "local"
    why = cli(["build", "--cwd", str(ws), "--why", "app-01"], elsewhere)
    assert why.code == 0, why.error
    assert why.stdout.startswith("@sample/app-01#build: hash ") and "is the same as in run" in why.stdout
    why_json = json.loads(cli(["build", "--cwd", str(ws), "--why", "app-01", "--json"], elsewhere).stdout)
    assert why_json[0]["previous_run"] is not None and why_json[0]["cached"] == "local"
    assert http.get(f"/builds/{run_id}", headers=bearer(live.admin)).status_code == 200

    missing = cli(["build", "--cwd", str(ws), "--why", "nope"], elsewhere)
    assert missing.code == 2 and "no package 'nope'" in missing.error
    _, plain = create_token(live.service.engine, "dry-reader")
    denied = http.post("/builds/dry", json={"workspace": str(ws)}, headers=bearer(plain))
    assert denied.status_code == 403
    bad_env = http.post("/apps/app-01/deploy", json={"env": "no env"}, headers=bearer(live.admin))
    assert bad_env.status_code == 422 and bad_env.json()["where"] == "env"
    assert bad_env.json()["message"].startswith("'no env' is not an environment name (up to 64 letters")


def test_a_build_whose_app_would_take_a_services_host_is_a_409(
    live: Live, http: httpx.Client, tmp_path: Path
) -> None:
    """Checked as the build is asked for (db/claims.py), not after its apps are built."""
    from freight.services.spec import ServiceSpec
    from freight.services.store import ServiceStore

    host = f"claimed-{os.getpid()}-{time.monotonic_ns()}.example.com"
    ws = slow_workspace(tmp_path / "ws", apps=("a",))
    with (ws / "freight.toml").open("a") as toml:
        toml.write(f'\n[apps.a]\nhosts = ["{host}"]\n')
    services = ServiceStore(live.service.engine)
    name = f"claim-{time.monotonic_ns() % 10**9}"
    services.deploy(name, ServiceSpec(image="x", command=["x"], port=18000, replicas=0, hosts=[host]))
    try:
        answer = http.post("/builds", json={"workspace": str(ws)}, headers=bearer(live.admin))
        assert answer.status_code == 409, answer.text
        body = answer.json()
        assert body["where"] == f"{ws / 'freight.toml'}: apps.a.hosts"
        assert body["message"] == f"host {host} is already routed to service {name}"
        listed = http.get("/builds", headers=bearer(live.admin)).json()
        assert str(ws) not in json.dumps(listed)  # no build was started
    finally:
        services.delete(name)
