"""The real `freight` binary: exit codes, one-line errors, nothing stored on bad input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from freight.config import Settings
from tests.builds.helpers import sigint_as_at_a_terminal


def freight(settings: Settings, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        FREIGHT_HOME=str(settings.home),
        FREIGHT_CGROUP_PARENT=settings.cgroup_parent,
        FREIGHT_CPUS="2",
        FREIGHT_MEMORY="4G",
    )
    env.pop("FREIGHT_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "freight.cli.main", *args], env=env, capture_output=True, text=True, cwd=cwd
    )


def job_count(settings: Settings) -> int:
    out = freight(settings, "jobs", "ls", "--json")

    return len(json.loads(out.stdout)) if out.returncode == 0 and out.stdout.strip() else 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "--memory", "lots", "--", "true"], "resources.memory: 'lots' is not a size"),
        (["submit", "--cpus", "0", "--", "true"], "cpus must be more than 0"),
        (["submit", "--memory", "0", "--", "true"], "memory must be at least 1M (there is no unlimited)"),
        (["run", "--memory", "0", "--", "true"], "memory must be at least 1M (there is no unlimited)"),
        (["submit", "--cpus", "64", "--", "true"], "resources.cpus: asks for 64 cpus; a node here has 2"),
        (["submit", "--env", "NOEQUALS", "--", "true"], "--env: expected KEY=VALUE"),
        (["submit"], "nothing to run"),
        (["submit", "--definition", "missing"], "no job definition 'missing'"),
        (["jobs", "show", "nope"], "no job 'nope'"),
        (["jobs", "ls", "--state", "sleeping"], "unknown state 'sleeping'"),
        # `printf 'caf\xe9'`: a byte that is not UTF-8 reaches Python as U+DCE9 (surrogateescape)
        (
            ["submit", "--", "echo", "caf\udce9"],
            "arguments: command.1: not UTF-8 text: it holds the byte 0xe9",
        ),
        (["submit", "--env", "K=\udcff", "--", "true"], "arguments: env.K: not UTF-8 text"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_stores_nothing(
    settings: Settings, args: list[str], message: str
) -> None:
    result = freight(settings, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:")
    assert job_count(settings) == 0


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("name: x\ncommand: " + "[" * 5000 + "]" * 5000 + "\n", ":2: nested deeper than 64 levels"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
            )
            + "command: [*i]\n",
            ":6: aliases expand to more than 200,000 values",
        ),
    ],
)
def test_hostile_yaml_is_one_line_in_submit_and_definitions(
    settings: Settings, tmp_path: Path, content: str, said: str
) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(content)
    for args in (["submit", "--file", str(spec)], ["definitions", "register", "d", str(spec)]):
        result = freight(settings, *args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and f"{spec}{said}" in result.stderr
    assert job_count(settings) == 0


def test_definitions_can_be_deleted(settings: Settings, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("command: [echo, hi]\n")
    for _ in range(2):
        assert freight(settings, "definitions", "register", "hello", str(spec)).returncode == 0
    assert freight(settings, "definitions", "rm", "hello:1").stdout == "deleted 1 version of hello\n"
    assert freight(settings, "definitions").stdout.splitlines()[1].split()[:2] == ["hello", "2"]
    assert freight(settings, "definitions", "rm", "hello").stdout == "deleted 1 version of hello\n"
    missing = freight(settings, "definitions", "rm", "hello")
    assert missing.returncode == 2 and "no job definition 'hello'" in missing.stderr


def test_bad_spec_file_names_file_and_line(settings: Settings, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("command: [echo, hi]\nresources:\n  cpus: 1\n  memory: 1Q\n")
    result = freight(settings, "submit", "--file", str(spec))
    assert result.returncode == 2
    assert f"{spec}:4: resources.memory: '1Q' is not a size" in result.stderr
    assert job_count(settings) == 0


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["--", "sh", "-c", "echo out; exit 3"], 3, "exited with code 3"),
        (["--memory", "64M", "--", "python3", "-c", "x = bytearray(512 << 20)"], 137, "out of memory"),
        (["--timeout", "1s", "--", "sleep", "30"], 124, "timed out after 1.0s"),
    ],
)
def test_run_exits_like_the_job_and_says_why(
    settings: Settings, args: list[str], code: int, said: str
) -> None:
    result = freight(settings, "run", *args)
    assert result.returncode == code, result.stderr
    assert said in result.stderr


def test_jobs_show_says_which_node_each_attempt_ran_on(settings: Settings) -> None:
    assert freight(settings, "run", "--", "true").returncode == 0
    job_id = json.loads(freight(settings, "jobs", "ls", "--json").stdout)[0]["id"]
    shown = freight(settings, "jobs", "show", job_id)
    header, row = (line.split() for line in shown.stdout.splitlines()[-2:])
    assert header[:4] == ["#", "STATE", "NODE", "EXIT"], shown.stdout
    assert row[:4] == ["1", "succeeded", socket.gethostname()[:20], "0"], shown.stdout


def test_run_streams_output(settings: Settings) -> None:
    result = freight(settings, "run", "--", "sh", "-c", "echo one; echo two >&2")
    assert result.returncode == 0
    assert result.stdout == "one\ntwo\n"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_run_cancels_the_job_and_shows_it_stopping(settings: Settings, sig: int) -> None:
    """Ctrl-C in `freight run` cancels the job (as srun does), and what the job prints while it
    stops still comes through; SIGTERM (a CI runner stopping) does the same."""
    env = {
        **os.environ,
        "FREIGHT_HOME": str(settings.home),
        "FREIGHT_CGROUP_PARENT": settings.cgroup_parent,
    }
    env.pop("FREIGHT_URL", None)
    script = 'trap "echo stopping; exit 5" TERM; echo started; while :; do sleep 0.05; done'
    proc = subprocess.Popen(
        [sys.executable, "-m", "freight.cli.main", "run", "--", "sh", "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_at_a_terminal,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "started\n"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert out.endswith("stopping\n") and "started" not in out  # nothing shown twice
    assert "cancelling job" in err and "cancelled while running" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["run", "--bogus", "--", "true"], "error: No such option: --bogus"),
        (["jobs", "ls", "--limit", "0"], "error: Invalid value for '--limit'"),
        (["jobs", "nosuch"], "error: No such command 'nosuch'."),
    ],
)
def test_a_mistyped_command_line_is_one_line_too(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    said: str,
) -> None:
    from freight.cli.main import main

    monkeypatch.setenv("FREIGHT_HOME", str(settings.home))
    monkeypatch.setattr(sys, "argv", ["freight", *args])
    with pytest.raises(SystemExit) as exited:
        main(leave=False)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(said) and err.count("\n") == 1, err
    assert "--help`)" in err


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "--memory", "lots", "--", "true"],
        ["run", "--queue", "no spaces", "--", "true"],
        ["submit", "--file", "{bad}"],
    ],
)
def test_bad_input_leaves_no_store_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    from freight.cli.main import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("command: [echo, hi]\ncolour: red\n")
    home = tmp_path / "home"
    monkeypatch.setenv("FREIGHT_HOME", str(home))
    monkeypatch.delenv("FREIGHT_URL", raising=False)
    monkeypatch.setattr(sys, "argv", ["freight", *(a.replace("{bad}", str(bad)) for a in args)])
    with pytest.raises(SystemExit) as exited:
        main(leave=False)
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not home.exists()


def test_a_locked_store_is_one_line_not_a_traceback(settings: Settings) -> None:
    from sqlalchemy import insert

    from freight.db.engine import open_engine
    from freight.db.schema import queues

    assert freight(settings, "jobs", "ls").returncode == 0  # makes the store
    stuck = open_engine(settings.database_url)  # another process, stuck mid-write
    with stuck.begin() as conn:
        conn.execute(insert(queues).values(name="x", priority=0, weight=1.0, paused=False, created_at=0))
        out = freight(settings, "submit", "--", "true")
    assert out.returncode in (1, 2)
    assert "database is locked" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert job_count(settings) == 0
