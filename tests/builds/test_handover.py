"""`freight build` handed to a running server from the stdlib client (builds/handover.py): a live
server (real scheduler, cgroups and esbuild), the real `freight` entry in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from freight.builds.depcache import mark_installed
from freight.builds.fastpath import FastBuild, Options
from freight.builds.handover import Request, parse
from freight.builds.results import RunSummary
from freight.builds.sample import generate, git_init
from freight.builds.store import BuildStore
from freight.builds.workspace import load_workspace
from freight.server.tokens import create_token
from tests.builds.conftest import _npm
from tests.server.conftest import Live, live  # noqa: F401  (a fixture)

HEAVY = ("sqlalchemy", "pydantic", "typer", "httpx", "yaml", "fsspec", "rich")
PROBE = (
    "import json, sys; from freight.builds.handover import try_remote; code = try_remote(sys.argv[1:]); "
    f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules); "
    "print(json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)"
)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, esbuild_version: str) -> Path:
    """Three small apps over the shared packages, installed and committed."""
    root = tmp_path_factory.mktemp("handover") / "ws"
    generate(root, 3, esbuild_version=esbuild_version, lines=10, shared_functions=10)
    _npm(["install", "--no-audit", "--no-fund", "--prefer-offline"], root)
    git_init(root)
    mark_installed(load_workspace(root))
    return root


def env_of(live: Live, token: str | None = None, **more: str) -> dict[str, str]:  # noqa: F811
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREIGHT_")}
    return {**env, **live.env(token), "FREIGHT_CGROUP_PARENT": live.settings.cgroup_parent, **more}


def freight(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real `freight` entry, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "freight.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_changed_app_then_a_cached_build_run_on_the_server(live: Live, ws: Path) -> None:  # noqa: F811
    (ws / "apps/app-02/src/main.js").open("a").write("export const handed = 1;\n")
    first = freight(env_of(live), "build", "--cwd", str(ws), "--no-publish")
    assert first.returncode == 0, first.stderr
    assert "@sample/app-02#build: built in" in first.stderr  # the server's progress, replayed here
    assert first.stderr.startswith("build ") and "error" not in first.stderr
    assert "TASK" in first.stdout and "built" in first.stdout

    again = freight(env_of(live), "build", "--cwd", str(ws), "--no-publish", "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["status"] == "ok" and summary["trigger"] == "api"
    assert {t["status"] for t in summary["tasks"]} <= {"cached", "noop"}
    assert "@sample/app-02#build: cache hit (local)" in again.stderr
    record = httpx.get(
        f"{live.url}/api/v1/builds/{summary['id']}", headers={"Authorization": f"Bearer {live.admin}"}
    ).json()
    assert record["state"] == "succeeded" and record["summary"] == summary
    # the server's first build wrote the plan memo: it answered this one with its fast path
    assert FastBuild(live.settings, Options(cwd=ws), os.environ, publish=False).check() is not None
    row = BuildStore(live.service.engine).run(summary["id"])
    assert row is not None and row["trigger"] == "api" and row["status"] == "ok"


def test_a_failing_task_exits_1(live: Live, ws: Path) -> None:  # noqa: F811
    main = ws / "apps/app-03/src/main.js"
    before = main.read_text()
    main.write_text("syntax error (\n")
    try:
        failed = freight(env_of(live), "build", "--cwd", str(ws), "--no-publish", "--continue")
    finally:
        main.write_text(before)
    assert failed.returncode == 1, failed.stderr
    assert "failed" in failed.stdout and "@sample/app-03#build: failed" in failed.stderr


def test_auth_and_bad_input_are_one_line_exit_2(live: Live, ws: Path) -> None:  # noqa: F811
    _, reader = create_token(live.service.engine, "handover-reader")
    denied = freight(env_of(live, reader), "build", "--cwd", str(ws), "--no-publish")
    assert denied.returncode == 2 and denied.stdout == ""
    assert denied.stderr.count("\n") == 1 and denied.stderr.startswith("error: ")
    assert "admin token" in denied.stderr

    wrong = freight(env_of(live, "not-a-token"), "build", "--cwd", str(ws))
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1
    assert wrong.stderr.startswith("error: FREIGHT_TOKEN: ")

    missing = freight(env_of(live), "build", "--cwd", str(ws), "nope")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "no package 'nope'" in missing.stderr

    down = freight(env_of(live, FREIGHT_URL="http://127.0.0.1:9"), "build", "--cwd", str(ws))
    assert down.returncode == 2 and down.stderr.count("\n") == 1
    assert down.stderr.startswith("error: FREIGHT_URL: cannot reach the freight server at http://127.0.0.1:9")


def test_a_handed_over_build_imports_none_of_the_heavy_stack(live: Live, ws: Path) -> None:  # noqa: F811
    (ws / "apps/app-01/src/main.js").open("a").write("export const probe = 1;\n")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "--cwd", str(ws), "--no-publish"],
        env=env_of(live),
        capture_output=True,
        text=True,
        timeout=300,
    )
    probe: dict[str, Any] = json.loads(done.stderr.strip().splitlines()[-1])
    assert probe == {"code": 0, "heavy": []}, done.stderr
    assert "@sample/app-01#build: built in" in done.stderr


def test_the_events_long_poll_answers_an_ended_build_at_once(live: Live, ws: Path) -> None:  # noqa: F811
    admin = {"Authorization": f"Bearer {live.admin}"}
    with httpx.Client(base_url=f"{live.url}/api/v1", headers=admin, timeout=60) as http:
        started = http.post("/builds", json={"workspace": str(ws), "publish": False}).json()
        # the server holds the request until the build ends (or 25 s, then the client asks again)
        after = 0
        while True:
            page = http.get(f"/builds/{started['id']}/events", params={"after": after, "wait": 25}).json()
            after = page["next"]
            if page["state"] in ("succeeded", "failed", "cancelled"):
                break
        assert page["state"] == "succeeded" and after > 0
        again = http.get(f"/builds/{started['id']}/events", params={"after": after, "wait": 25}).json()
        assert again == {"state": "succeeded", "events": [], "next": after}
        too_long = http.get(f"/builds/{started['id']}/events", params={"wait": 3600})
        assert too_long.status_code == 422 and too_long.json()["where"] == "wait"


def test_an_option_it_does_not_handle_builds_through_the_full_cli(
    live: Live,  # noqa: F811
    ws: Path,
    tmp_path: Path,
) -> None:
    env = env_of(live, FREIGHT_HOME=str(tmp_path / "cli-home"))
    done = freight(env, "build", "--cwd", str(ws), "--no-publish", "--summarize")
    assert done.returncode == 0, done.stderr
    assert "summary: " in done.stderr and "TASK" in done.stdout
    assert list((tmp_path / "cli-home" / "builds" / "runs").glob("*.json"))  # written by the CLI


def test_options_it_does_not_handle_go_to_the_full_cli() -> None:
    for argv in (["--dry"], ["--why", "a"], ["--cancel", "x"], ["--summarize"], ["--nope"], ["-C"], ["--"]):
        assert parse(argv) is None, argv
    assert parse(["a", "-C", "ws", "--task=lint", "-t", "test", "--affected-since", "main", "--force"]) == (
        Request(Path("ws"), ("a",), ("lint", "test"), "main", force=True)
    )
    body = parse(["--no-publish", "--continue", "--cwd=/x"])
    assert body is not None and body.body() == {
        "workspace": "/x",
        "packages": [],
        "tasks": ["build"],
        "affected_since": None,
        "continue": True,
        "force": False,
        "publish": False,
    }


class _OldServer:
    """A server that answers at once, the way one without the long poll does (it ignores `wait`):
    a build that stays running for `pages` pages, then ends; or HTML where JSON should be."""

    def __init__(self, pages: int, html: bool = False) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.polls = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, body: Any) -> None:
                raw = b"<html>a gateway</html>" if html else json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send({"id": "b1", "state": "queued"})

            def do_GET(self) -> None:
                if "/events" in self.path:
                    owner.polls += 1
                    state = "running" if owner.polls <= pages else "succeeded"
                    return self._send({"state": state, "events": [], "next": 0})
                summary = RunSummary("r1", "/ws", None, 0.0, 0.0, {}, [], 0.0).to_dict()
                self._send({"id": "b1", "state": "succeeded", "summary": summary})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_server_that_does_not_hold_the_poll_is_asked_at_most_every_min_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the 0.25 s sleep of the fixed poll, a server that ignores `wait` (an older one) was
    asked again at once, in a tight loop, for as long as the build ran."""
    from freight.builds import handover

    slept: list[float] = []
    monkeypatch.setattr(handover.time, "sleep", slept.append)
    server = _OldServer(pages=3)
    try:
        env = {"FREIGHT_URL": server.url, "FREIGHT_TOKEN": "t", "FREIGHT_HOME": str(tmp_path / "home")}
        assert handover.try_remote(["--no-publish", "-C", str(tmp_path)], env) == 0
    finally:
        server.close()
    assert server.polls == 4 and slept == [handover.MIN_POLL] * 3


def test_a_url_that_is_not_a_freight_server_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from freight.builds import handover

    server = _OldServer(pages=0, html=True)
    home = str(tmp_path / "home")
    try:
        env = {"FREIGHT_URL": server.url, "FREIGHT_TOKEN": "t", "FREIGHT_HOME": home}
        assert handover.try_remote(["--no-publish", "-C", str(tmp_path)], env) == 2
    finally:
        server.close()
    bad_port = {"FREIGHT_URL": "http://127.0.0.1:abc", "FREIGHT_TOKEN": "t", "FREIGHT_HOME": home}
    assert handover.try_remote(["--no-publish", "-C", str(tmp_path)], bad_port) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err), err
    assert "not freight's JSON" in err[0] and "FREIGHT_URL" in err[1]
    assert "Traceback" not in "".join(err)


def test_a_second_ctrl_c_after_the_cancel_question_is_one_line_exit_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The cancel request and the follow after "y" were not guarded: a second Ctrl-C there printed
    http.client's traceback (the full CLI exits 130 with one line)."""
    from freight.builds import handover

    def interrupted(self: Any) -> int:
        raise KeyboardInterrupt  # as a Ctrl-C during the follow after "cancel it? y"

    monkeypatch.setattr(handover._HandedBuild, "run", interrupted)
    env = {"FREIGHT_URL": "http://127.0.0.1:9", "FREIGHT_TOKEN": "t", "FREIGHT_HOME": str(tmp_path)}
    assert handover.try_remote(["--no-publish"], env) == 130
    assert capsys.readouterr().err == "\nfreight: aborted\n"
