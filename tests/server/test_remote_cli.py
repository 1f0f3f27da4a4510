"""The CLI with FREIGHT_URL set talks to a real server and prints what embedded mode prints.

Both modes run against the same store (the live server's), so the same jobs must render identically.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from freight.cli import main as cli_main
from freight.cli.jobs import Follower
from freight.errors import UserError
from freight.jobs.remote import RemoteJobClient
from freight.server.tokencache import TOKEN_TTL
from freight.server.tokens import create_token
from tests.server.conftest import Live

runner = CliRunner()


class Out:
    def __init__(self, code: int, stdout: str, stderr: str, error: str | None) -> None:
        self.code, self.stdout, self.stderr, self.error = code, stdout, stderr, error


def cli(args: list[str], env: dict[str, Any]) -> Out:
    """Run the CLI in-process as `freight` would (a UserError is one line and exit code 2)."""
    result = runner.invoke(cli_main.app, args, env=env)
    error = None
    code = result.exit_code
    if isinstance(result.exception, UserError):
        error, code = str(result.exception), 2
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Out(code, result.stdout, result.stderr, error)


def embedded(live: Live) -> dict[str, Any]:
    return {
        "FREIGHT_HOME": str(live.settings.home),
        "FREIGHT_CGROUP_PARENT": live.settings.cgroup_parent,
        "FREIGHT_URL": None,
        "FREIGHT_TOKEN": None,
    }


def remote(live: Live, token: str | None = None) -> dict[str, Any]:
    return {**embedded(live), "FREIGHT_URL": live.url, "FREIGHT_TOKEN": token or live.admin}


def both(live: Live, args: list[str]) -> tuple[Out, Out]:
    return cli(args, embedded(live)), cli(args, remote(live))


def test_run_streams_output_and_exits_like_the_job(live: Live) -> None:
    args = ["run", "--queue", "cli", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]
    local, far = both(live, args)
    assert (local.code, local.stdout) == (far.code, far.stdout) == (3, "out\nerr\n")
    assert "failed: exited with code 3" in far.stderr


def test_submit_show_ls_logs_events_render_the_same(live: Live) -> None:
    submitted = cli(
        ["submit", "--queue", "cli-same", "--name", "same", "--json", "--", "echo", "hello"], remote(live)
    )
    assert submitted.code == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    local_job = json.loads(
        cli(["submit", "--queue", "cli-same", "--json", "--", "echo", "x"], embedded(live)).stdout
    )
    assert job.keys() == local_job.keys()
    live.service.wait([job["id"], local_job["id"]], timeout=60)
    for args in (
        ["jobs", "show", job["id"]],
        ["jobs", "show", job["id"], "--json"],
        ["jobs", "ls", "--queue", "cli-same"],
        ["jobs", "ls", "--queue", "cli-same", "--json"],
        ["jobs", "logs", job["id"]],
        ["jobs", "logs", job["id"], "--follow"],
        ["jobs", "events", job["id"]],
        ["queues", "--json"],
        ["queues"],
    ):
        local, far = both(live, args)
        assert local.code == far.code == 0, (args, far.stderr, far.error)
        assert far.stdout == local.stdout, args
    assert cli(["jobs", "logs", job["id"]], remote(live)).stdout == "hello\n"


def test_cancel_retry_queues_and_definitions(live: Live, tmp_path) -> None:
    cli(["queues", "set", "cli-held", "--pause"], remote(live))
    job_id = cli(["submit", "--queue", "cli-held", "--", "true"], remote(live)).stdout.strip()
    for out in both(live, ["jobs", "cancel", job_id, "nope"]):  # all or none
        assert out.code == 2 and out.error == "no job 'nope' (see `freight jobs ls`)"
    assert live.service.get(job_id).state.value == "queued"
    far = cli(["jobs", "cancel", job_id], remote(live))
    assert far.stdout == f"{job_id} cancelled\n"
    again_local, again_far = both(live, ["jobs", "cancel", job_id])
    assert again_far.code == again_local.code == 2 and again_far.error == again_local.error
    assert cli(["jobs", "retry", job_id], remote(live)).stdout == f"{job_id} queued\n"
    assert cli(["queues", "set", "cli-held", "--resume", "--weight", "2"], remote(live)).stdout == (
        "cli-held: priority 0, weight 2, active\n"
    )
    spec = tmp_path / "greet.yaml"
    spec.write_text("command: [echo, from-definition]\nqueue: cli-def\n")
    assert cli(["definitions", "register", "cli-greet", str(spec)], remote(live)).stdout == "cli-greet:1\n"
    local, far = both(live, ["definitions", "--json"])
    assert far.stdout == local.stdout and "cli-greet" in far.stdout
    run = cli(["run", "--definition", "cli-greet"], remote(live))
    assert (run.code, run.stdout) == (0, "from-definition\n")


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "show", "nope"],
        ["submit", "--memory", "lots", "--", "true"],
        ["submit", "--after", "nope", "--", "true"],
        ["jobs", "ls", "--state", "sleeping"],
        ["submit", "--", ""],
        ["jobs", "events", "nope"],
        ["submit", "--retries", "-1", "--", "true"],
        ["submit", "--retry-on", "sometimes", "--", "true"],
        ["submit", "--queue", "no spaces", "--", "true"],
        ["tokens", "create", "--name", "x", "--queue", "no spaces"],
    ],
)
def test_errors_are_the_same_line(live: Live, args: list[str]) -> None:
    local, far = both(live, args)
    assert local.code == far.code == 2
    assert far.error == local.error and far.error


def test_following_shows_every_attempt_and_ids_may_be_prefixes(
    live: Live, tmp_path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """What `freight run` and `jobs logs -f` show of a retried job: each attempt's output in turn, with
    a line on stderr between them; the same through the server."""
    spec = tmp_path / "flaky.yaml"
    spec.write_text(
        "shell: echo try-$FREIGHT_ATTEMPT; exit 3\nqueue: cli-flaky\n"
        "retry: {max_attempts: 2, retry_on: [failed], backoff: 10ms}\n"
    )
    job_id = cli(["submit", "--file", str(spec)], remote(live)).stdout.strip()
    live.service.wait([job_id], timeout=60)
    far = RemoteJobClient(live.url, live.admin)
    for svc in (live.service, far):
        capsysbinary.readouterr()
        assert Follower(svc, job_id).until_done().attempts == 2
        out, err = capsysbinary.readouterr()
        assert out == b"try-1\ntry-2\n"
        assert b"attempt 2 of 2 (attempt 1 failed, exit code 3)" in err
    far.close()
    other = cli(["submit", "--queue", "cli-flaky", "--", "true"], remote(live)).stdout.strip()
    shared = job_id[: next(i for i, (a, b) in enumerate(zip(job_id, other, strict=True)) if a != b)]
    unique = job_id[:-1]  # no other job shares all but its last (random) digit
    local, remote_ = both(live, ["jobs", "show", unique, "--json"])
    assert json.loads(remote_.stdout)["id"] == json.loads(local.stdout)["id"] == job_id
    local, remote_ = both(live, ["jobs", "logs", unique])
    assert local.stdout == remote_.stdout == "try-2\n"
    for out in both(live, ["jobs", "ls", "--queue", "cli-flaky", "--limit", "1"]):
        assert other in out.stdout and f"more may follow: add --cursor {other}" in out.stderr
    for out in both(live, ["jobs", "ls", "--queue", "cli-flaky", "--limit", "1", "--cursor", other]):
        assert job_id in out.stdout and other not in out.stdout
    local, remote_ = both(live, ["submit", "--json", "--after", f"{unique}:after_any", "--", "true"])
    for out in (local, remote_):
        assert json.loads(out.stdout)["spec"]["depends_on"] == [{"job": job_id, "condition": "after_any"}]
    local, remote_ = both(live, ["jobs", "show", shared])
    assert local.code == remote_.code == 2 and remote_.error == local.error
    assert "matches several jobs" in remote_.error


def test_following_a_job_that_cannot_start_says_why(
    live: Live, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """`freight run` into a paused queue does not wait in silence."""
    live.service.set_queue("cli-paused", paused=True)
    far = RemoteJobClient(live.url, live.admin)
    for svc in (live.service, far):
        job_id = svc.submit({"command": ["true"], "queue": "cli-paused"}).id
        follower = threading.Thread(target=Follower(svc, job_id).until_done)
        follower.start()
        deadline = time.monotonic() + 60
        err = b""
        while b"waits:" not in err:
            assert time.monotonic() < deadline, err
            err += capsysbinary.readouterr().err
            time.sleep(0.05)
        svc.cancel(job_id)
        follower.join(timeout=60)
        assert f"job {job_id} waits: queue cli-paused is paused (resume it: ".encode() in err
    far.close()


def test_queues_show_what_their_running_jobs_hold(live: Live, tmp_path) -> None:
    gate = tmp_path / "gate"
    args = ["submit", "--queue", "cli-share", "--cpus", "0.25", "--memory", "32M", "--shell", "--"]
    job_id = cli([*args, f"while [ ! -e {gate} ]; do sleep 0.02; done"], remote(live)).stdout.strip()
    deadline = time.monotonic() + 60
    while live.service.get(job_id).state.value != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        local, far = both(live, ["queues", "--json"])
        for out in (local, far):
            share = next(q for q in json.loads(out.stdout) if q["name"] == "cli-share")
            assert share["in_use"] == {"cpus": 0.25, "memory": 32 << 20}
        local, far = both(live, ["queues"])
        assert local.stdout == far.stdout and "CPUS" in far.stdout
    finally:
        gate.touch()
    live.service.wait([job_id], timeout=60)
    idle = next(q for q in live.service.queues() if q["name"] == "cli-share")
    assert idle["in_use"] == {"cpus": 0.0, "memory": 0}


def test_a_job_behind_the_head_of_its_queue_says_how_many_are_before_it(live: Live, tmp_path) -> None:
    gate = tmp_path / "gate"
    cpus = f"{live.service.scheduler.capacity.cpus:g}" if live.service.scheduler else "2"
    whole = ["submit", "--queue", "cli-turn", "--cpus", cpus, "--"]
    first = cli([*whole, "sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.02; done"], remote(live))
    head = cli([*whole, "true"], remote(live)).stdout.strip()
    behind = cli(
        ["submit", "--queue", "cli-turn", "--cpus", "0.1", "--", "true"], remote(live)
    ).stdout.strip()
    try:
        deadline = time.monotonic() + 60
        while not (live.service.get(head).reason or "").startswith("waiting for capacity"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for out in both(live, ["jobs", "show", behind, "--json"]):
            said = json.loads(out.stdout)["reason"]
            assert said == "waiting its turn: 1 job before it in queue cli-turn"
    finally:
        gate.touch()
    live.service.wait([first.stdout.strip(), head, behind], timeout=60)


def test_scoped_token_and_bad_settings(live: Live) -> None:
    _, scoped = create_token(live.service.engine, "cli-scoped", queues=["cli-mine"])
    env = remote(live, scoped)
    denied = cli(["submit", "--queue", "cli-theirs", "--", "true"], env)
    assert denied.code == 2 and denied.error.startswith("queue: this token may not use queue 'cli-theirs'")
    mine = cli(["submit", "--queue", "cli-mine", "--", "true"], env)
    assert mine.code == 0
    listed = json.loads(cli(["jobs", "ls", "--json"], env).stdout)
    assert {j["queue"] for j in listed} == {"cli-mine"}
    no_token = cli(["jobs", "ls"], {**remote(live), "FREIGHT_TOKEN": None})
    assert no_token.code == 2 and no_token.error.startswith("FREIGHT_TOKEN: this needs an API token")
    nobody = cli(["jobs", "ls"], {**remote(live), "FREIGHT_URL": "http://127.0.0.1:9"})
    assert nobody.code == 2 and nobody.error.startswith("FREIGHT_URL: cannot reach the freight server")
    schemeless = cli(["jobs", "ls"], {**remote(live), "FREIGHT_URL": "127.0.0.1:8321"})
    assert schemeless.code == 2
    assert (
        schemeless.error
        == "FREIGHT_URL: '127.0.0.1:8321' is not a server address (write it like http://host:8321)"
    )


def test_gc_through_the_server_needs_an_admin_token(live: Live) -> None:
    job_id = cli(["submit", "--queue", "cli-gc", "--", "true"], remote(live)).stdout.strip()
    live.service.wait([job_id], timeout=60)
    local, far = both(live, ["jobs", "gc", "--older-than", "0s", "--dry-run"])
    assert far.code == local.code == 0 and far.stdout == local.stdout
    assert far.stdout.startswith("would delete ")
    scoped = remote(live, create_token(live.service.engine, "cli-gc", queues=["cli-gc"])[1])
    denied = cli(["jobs", "gc", "--older-than", "0s"], scoped)
    assert denied.code == 2 and "admin token" in denied.error
    assert live.service.get(job_id).id == job_id  # nothing deleted
    bad = cli(["jobs", "gc", "--older-than", "soon"], remote(live))
    assert bad.code == 2 and bad.error.startswith("--older-than: 'soon' is not a duration")


def test_tokens_commands_local_and_remote(live: Live) -> None:
    made = cli(["tokens", "create", "--name", "cli-ci", "--queue", "cli-a", "--queue", "cli-b"], remote(live))
    token = made.stdout.strip()
    assert made.code == 0 and token.startswith("frt_") and "\n" not in token
    assert "queues cli-a, cli-b" in made.stderr
    local, far = both(live, ["tokens", "ls", "--json"])
    assert far.stdout == local.stdout
    assert any(t["name"] == "cli-ci" for t in json.loads(far.stdout))
    who = cli(["jobs", "ls"], remote(live, token))
    assert who.code == 0
    revoked = cli(["tokens", "revoke", "cli-ci"], embedded(live))
    assert revoked.stdout.startswith("revoked ")
    # Revoked straight in the store, behind the server's back: its token cache trusts a token it
    # resolved for TOKEN_TTL seconds (a revocation through the server evicts at once: test_auth.py)
    deadline = time.monotonic() + TOKEN_TTL + 30
    while (after := cli(["jobs", "ls"], remote(live, token))).code == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert after.code == 2 and "revoked" in after.error
    denied = cli(["tokens", "ls"], remote(live, create_token(live.service.engine, "plain")[1]))
    assert denied.code == 2 and "admin token" in denied.error


def test_the_real_binary_end_to_end(live: Live) -> None:
    env = {**os.environ, **{k: v for k, v in remote(live).items() if v is not None}}
    done = subprocess.run(
        [sys.executable, "-m", "freight.cli.main", "run", "--", "sh", "-c", "echo hi; exit 7"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (7, "hi\n")
    bad = subprocess.run(
        [sys.executable, "-m", "freight.cli.main", "jobs", "show", "nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: no job 'nope' (see `freight jobs ls`)"
    assert "Traceback" not in bad.stderr
