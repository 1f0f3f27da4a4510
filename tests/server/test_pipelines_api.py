"""Pipeline runs on a real server: /api/v1/pipelines/runs, and `freight pipeline ...` with FREIGHT_URL
set printing what embedded mode prints. Both modes use the live server's store, so the same run must
render identically; the steps are real jobs (extract a CSV, transform with SQL, load into DuckDB)."""

from __future__ import annotations

import json
import socket
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from freight.errors import UserError
from freight.jobs.remote import RemoteJobClient
from freight.pipelines.loader import load_pipeline
from freight.pipelines.remote import RemotePipelines
from freight.pipelines.runner import PipelineRunner
from freight.pipelines.store import Run, RunStore
from freight.server import create_app
from freight.server.tokens import create_token
from tests.pipelines.test_cli import NAP, SLOW
from tests.server.conftest import Live
from tests.server.test_live import until
from tests.server.test_remote_cli import Out, cli, embedded, remote

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PIPELINE = """
name: {name}
steps:
  - name: raw
    type: extract-files
    path: in/*.csv
  - name: totals
    type: transform-sql
    inputs: [raw]
    sql: SELECT sku, sum(qty) AS qty FROM raw GROUP BY sku ORDER BY sku
  - name: load
    type: load
    inputs: [totals]
    table: {name}_totals
    mode: replace
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with the pipeline's input and a connections file with none (the DuckDB default)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("sku,qty\nS1,2\nS2,5\nS1,3\n")
    (tmp_path / "freight.toml").write_text("")
    return tmp_path


def _name() -> str:
    return f"p{uuid.uuid4().hex[:8]}"


def _write(project: Path, text: str, name: str) -> Path:
    path = project / f"{name}.yaml"
    path.write_text(text.format(name=name))
    return path


def _env(live: Live, project: Path, token: str | None = None, *, far: bool = True) -> dict[str, Any]:
    env = remote(live, token) if far else embedded(live)
    return {**env, "FREIGHT_CONFIG": str(project / "freight.toml")}


def _both(live: Live, project: Path, args: list[str]) -> tuple[Out, Out]:
    return cli(args, _env(live, project, far=False)), cli(args, _env(live, project))


def _http(live: Live, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token or live.admin}"} if token != "" else {}
    return httpx.Client(base_url=f"{live.url}/api/v1", headers=headers, timeout=30)


def _progress(stderr: str) -> list[str]:
    """The lines of steps that ended, without the measured parts (rows, times, peaks)."""
    lines = [" ".join(line.split()[:2]) for line in stderr.splitlines() if line.startswith("  ")]
    return [line for line in lines if not line.startswith("..")]


def test_remote_run_prints_what_embedded_prints(live: Live, project: Path) -> None:
    name = _name()
    path = _write(project, PIPELINE, name)
    local, far = _both(live, project, ["pipeline", "run", str(path)])
    assert local.code == far.code == 0, (local.stdout, far.stdout, far.error)
    run_id = far.stdout.split()[1]
    assert far.stdout.startswith(f"run {run_id}  pipeline {name}  succeeded")
    # the same steps end, in the same order, with the same marks (whether a step is seen running
    # depends on when it is looked at, in either mode)
    assert _progress(far.stderr) == _progress(local.stderr) == ["ok raw", "ok totals", "ok load"]
    # the remote run's final output is what embedded mode prints for that run, and vice versa
    for args in (["pipeline", "show", run_id], ["pipeline", "show", run_id, "--json"]):
        shown_local, shown_far = _both(live, project, args)
        assert shown_local.stdout == shown_far.stdout, args
    assert cli(["pipeline", "show", run_id], _env(live, project, far=False)).stdout == far.stdout
    local_id = local.stdout.split()[1]
    assert cli(["pipeline", "show", local_id], _env(live, project)).stdout == local.stdout
    as_json = cli(["pipeline", "run", str(path), "--json"], _env(live, project))
    assert as_json.code == 0 and as_json.stderr == ""
    run = json.loads(as_json.stdout)
    assert [s["rows"] for s in run["steps"]] == [3, 2, 2]
    shown = cli(["pipeline", "show", run["id"], "--json"], _env(live, project, far=False))
    assert json.loads(shown.stdout) == run
    for args in (
        ["pipeline", "runs", "--pipeline", name],
        ["pipeline", "runs", "--pipeline", name, "--json"],
        ["pipeline", "runs", "-n", "2"],
    ):
        listed_local, listed_far = _both(live, project, args)
        assert listed_local.code == listed_far.code == 0
        assert listed_far.stdout == listed_local.stdout, args
        if "--json" in args:
            assert [r["id"] for r in json.loads(listed_far.stdout)] == [run["id"], run_id, local_id]


def test_a_failed_step_cascades_and_reruns_from_failed(live: Live, project: Path) -> None:
    name = _name()
    path = _write(project, PIPELINE.replace("sum(qty)", "sum(nope)"), name)
    failed = cli(["pipeline", "run", str(path)], _env(live, project))
    assert failed.code == 1, (failed.stdout, failed.error)
    run_id = failed.stdout.split()[1]
    assert _progress(failed.stderr)[-2:] == ["FAIL totals", "skip load"]
    shown = json.loads(cli(["pipeline", "show", run_id, "--json"], _env(live, project)).stdout)
    assert [s["state"] for s in shown["steps"]] == ["succeeded", "failed", "upstream_failed"]
    assert shown["state"] == "failed" and "nope" in shown["error"]
    assert cli(["pipeline", "show", run_id], _env(live, project, far=False)).stdout == failed.stdout
    path.write_text(PIPELINE.format(name=name))  # the fix; a rerun reads the file again
    again = cli(["pipeline", "rerun", run_id, "--json"], _env(live, project))
    assert again.code == 0, (again.stdout, again.error)
    rerun = json.loads(again.stdout)
    assert rerun["rerun_of"] == run_id
    assert [(s["state"], s["reused_from"]) for s in rerun["steps"]] == [
        ("reused", run_id),
        ("succeeded", None),
        ("succeeded", None),
    ]
    nothing = cli(["pipeline", "rerun", rerun["id"]], _env(live, project))
    assert nothing.code == 2 and "has no failed steps" in str(nothing.error)


def test_cancel_and_follow(live: Live, project: Path) -> None:
    (project / "nap.py").write_text(NAP)
    (project / "nap-seconds").write_text("60")  # the step's working folder is the pipeline's
    path = project / "slow.yaml"
    path.write_text(SLOW)
    body = {"spec": load_pipeline(path).spec.model_dump(mode="json"), "base_dir": str(project)}
    with _http(live) as http:
        started = http.post("/pipelines/runs", json=body)
        assert started.status_code == 201, started.text
        run = started.json()
        assert run["state"] == "running" and [s["state"] for s in run["steps"]] == ["queued", "queued"]
        step = f"/pipelines/runs/{run['id']}"
        until(lambda: http.get(step).json()["steps"][0]["state"] == "running", "the step to start")
    cancelled = cli(["pipeline", "cancel", run["id"], "--json"], _env(live, project))
    assert cancelled.code == 1, cancelled.error
    ended = json.loads(cancelled.stdout)
    assert ended["state"] == "failed"
    assert [s["state"] for s in ended["steps"]] == ["cancelled", "cancelled"]
    followed = cli(["pipeline", "follow", run["id"], "--json"], _env(live, project))
    assert (followed.code, json.loads(followed.stdout)) == (1, ended)


def test_bad_input_changes_nothing(live: Live, project: Path) -> None:
    name = _name()
    spec = load_pipeline(_write(project, PIPELINE, name)).spec.model_dump(mode="json")
    with _http(live) as http:
        before = http.get("/pipelines/runs", params={"limit": 1000}).json()["runs"]
        bad_type = {**spec, "steps": [spec["steps"][0], {**spec["steps"][1], "type": "transform-sq"}]}
        for body, where, says in (
            ({"spec": bad_type, "base_dir": str(project)}, "spec.steps.1.type", "unknown step type"),
            ({"spec": {**spec, "nme": 1}, "base_dir": str(project)}, "spec.nme", "unknown field"),
            ({"spec": spec, "base_dir": "relative"}, "base_dir", "must be an absolute path"),
            ({"spec": spec, "base_dir": str(project / "gone")}, "base_dir", "cannot read the folder"),
            ({"spec": spec, "config_path": "/nowhere/freight.toml"}, "config_path", "/nowhere/freight.toml"),
            ({"spec": "name: x"}, "spec", "dictionary"),
            (  # checked against the connections file before anything is recorded
                {"spec": {**spec, "steps": [*spec["steps"][:2], {**spec["steps"][2], "warehouse": "nope"}]}},
                "spec.steps.2.warehouse",
                "unknown connection 'nope'",
            ),
        ):
            answer = http.post("/pipelines/runs", json=body)
            assert answer.status_code in (400, 422), answer.text
            error = answer.json()
            assert error["where"] == where and says in error["message"], error
        sql_file = {**spec, "steps": [spec["steps"][0], {**spec["steps"][1], "sql": None, "file": "t.sql"}]}
        answer = http.post("/pipelines/runs", json={"spec": sql_file, "base_dir": str(project)})
        assert answer.status_code == 400 and "no such file 't.sql'" in answer.json()["message"]
        # the CLI checks the file itself, then prints the server's answer as one line
        path = str(project / f"{name}.yaml")
        missing = str(project / "nowhere" / "x.toml")
        unread = cli(["pipeline", "run", path, "-c", missing], _env(live, project))
        assert unread.code == 2
        assert str(unread.error).startswith(f"config_path: the server cannot read the file '{missing}'")
        outside = cli(["pipeline", "run", path, "-c", "/nowhere/x.toml"], _env(live, project))
        assert outside.code == 2  # outside FREIGHT_PIPELINE_ROOTS: refused before the server looks
        assert "'/nowhere/x.toml' is not under a folder this server takes pipelines" in str(outside.error)
        (project / "nowh.yaml").write_text(PIPELINE.format(name=name) + "    warehouse: nope\n")
        unknown = cli(["pipeline", "run", str(project / "nowh.yaml")], _env(live, project))
        assert unknown.code == 2  # checked here: the error names the file's line
        assert str(unknown.error).startswith(
            f"{project / 'nowh.yaml'}:16: steps.load.warehouse: unknown connection"
        )
        assert http.get("/pipelines/runs", params={"limit": 1000}).json()["runs"] == before
        missing = http.get("/pipelines/runs/nope")
        assert missing.status_code == 404 and missing.json()["message"] == "no pipeline run 'nope'"
    local, far = _both(live, project, ["pipeline", "show", "nope"])
    assert local.code == far.code == 2 and far.error == local.error


def test_tokens_and_queue_scope(live: Live, project: Path) -> None:
    name = _name()
    path = _write(project, PIPELINE, name)
    body = {"spec": load_pipeline(path).spec.model_dump(mode="json"), "base_dir": str(project)}
    with _http(live, "") as anonymous:
        assert anonymous.get("/pipelines/runs").status_code == 401
        assert anonymous.post("/pipelines/runs", json=body).status_code == 401
    _, other = create_token(live.service.engine, f"{name}-other", queues=["elsewhere"])
    _, default = create_token(live.service.engine, f"{name}-default", queues=["default"])
    with _http(live, other) as http:
        denied = http.post("/pipelines/runs", json=body)
        assert denied.status_code == 403 and "may not use queue 'default'" in denied.json()["message"]
        assert http.get("/pipelines/runs", params={"pipeline": name}).json()["runs"] == []
    run = cli(["pipeline", "run", str(path), "--json"], _env(live, project, default))
    assert run.code == 0, run.error
    run_id = json.loads(run.stdout)["id"]
    with _http(live, other) as http:  # a run of another queue looks like no run at all
        assert http.get(f"/pipelines/runs/{run_id}").status_code == 404
        assert run_id not in {r["id"] for r in http.get("/pipelines/runs").json()["runs"]}
        assert http.post(f"/pipelines/runs/{run_id}/rerun", json={"from_failed": False}).status_code == 404
        assert http.post(f"/pipelines/runs/{run_id}/cancel").status_code == 404
    with _http(live, default) as http:
        assert http.get(f"/pipelines/runs/{run_id}").status_code == 200
        assert run_id in {r["id"] for r in http.get("/pipelines/runs").json()["runs"]}
    denied_cli = cli(["pipeline", "run", str(path)], _env(live, project, other))
    assert denied_cli.code == 2 and "may not use queue 'default'" in str(denied_cli.error)


def test_a_restarted_server_follows_runs_left_running(live: Live, project: Path) -> None:
    """A run whose follower went away (the server stopped) is taken up when a server starts."""
    name = _name()
    path = _write(project, PIPELINE, name)
    store = RunStore(live.service.engine)
    runner = PipelineRunner(live.service, store, live.settings, config_path=project / "freight.toml")
    run_id = runner.start(load_pipeline(path), spec_path=str(path))  # and nobody follows it
    with TestClient(create_app(service=live.service)) as client:
        headers = {"Authorization": f"Bearer {live.admin}"}

        def ended() -> dict[str, Any] | None:
            run = client.get(f"/api/v1/pipelines/runs/{run_id}", headers=headers).json()
            return None if run["state"] == "running" else dict(run)

        done = until(ended, "the run to end", 120)
        assert done["state"] == "succeeded"
        assert [s["state"] for s in done["steps"]] == ["succeeded"] * 3
    assert not [t for t in threading.enumerate() if t.name == f"pipeline-run-{run_id}"]


def test_waiting_rides_out_a_server_that_does_not_answer_for_a_while(live: Live, project: Path) -> None:
    """A CLI waiting on a run keeps waiting while its server restarts: here a second server on the
    same store, whose port refuses connections until it starts listening a moment later."""
    path = _write(project, PIPELINE, _name())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
    later = uvicorn.Server(
        uvicorn.Config(create_app(service=live.service), log_config=None, access_log=False, lifespan="on")
    )
    with _http(live) as http:
        body = {"spec": load_pipeline(path).spec.model_dump(mode="json"), "base_dir": str(project)}
        started = Run.from_dict(http.post("/pipelines/runs", json=body).json())
    far = RemotePipelines(RemoteJobClient(f"http://127.0.0.1:{sock.getsockname()[1]}", live.admin), poll=0.1)
    timer = threading.Timer(1.0, later.run, kwargs={"sockets": [sock]})
    timer.start()
    try:
        with far:
            done = far.wait(started)
    finally:
        later.should_exit = True
        timer.join(timeout=30)
        sock.close()
    assert done.state == "succeeded" and [s.state for s in done.steps] == ["succeeded"] * 3
    nobody = RemotePipelines(RemoteJobClient("http://127.0.0.1:9", live.admin), poll=0.01, outage=0.2)
    with nobody, pytest.raises(UserError) as gave_up:
        nobody.wait(started)  # as it was when it started: running
    assert gave_up.value.where == "FREIGHT_URL"
    assert f"`freight pipeline follow {started.id}` watches it again" in str(gave_up.value)
