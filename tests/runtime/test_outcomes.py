"""How attempts end: exit codes, signals, exec failures, logs, env and cwd (cgroup isolation)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from freight.errors import TerminalError
from freight.runtime.process import ShimRuntime
from tests.runtime.helpers import eventually, request


def test_exit_codes_are_recorded(runtime: ShimRuntime, tmp_path: Path) -> None:
    ok = runtime.start(request(tmp_path, ["sh", "-c", "exit 0"]))
    bad = runtime.start(request(tmp_path, ["sh", "-c", "exit 3"]))
    good, failed = runtime.wait(ok, timeout=30), runtime.wait(bad, timeout=30)
    assert good is not None and good.ok and good.exit_code == 0 and good.signal is None
    assert failed is not None and failed.exit_code == 3 and not failed.ok and failed.error is None
    for outcome in (good, failed):
        assert not outcome.oom_killed
        assert outcome.peak_memory is not None and outcome.peak_memory > 0
        assert outcome.cpu_seconds is not None and outcome.cpu_seconds >= 0
        assert 0 < outcome.started_at <= outcome.ended_at
    assert ok.isolation == "cgroup-v1" and ok.slot is not None
    runtime.release(ok)
    runtime.release(bad)


def test_death_by_signal(runtime: ShimRuntime, tmp_path: Path) -> None:
    handle = runtime.start(request(tmp_path, ["sh", "-c", "kill -TERM $$"]))
    outcome = runtime.wait(handle, timeout=30)
    assert outcome is not None
    assert (outcome.exit_code, outcome.signal, outcome.oom_killed) == (None, signal.SIGTERM, False)
    runtime.release(handle)


def test_a_command_that_cannot_run_is_a_clear_error(runtime: ShimRuntime, tmp_path: Path) -> None:
    req = request(tmp_path, ["definitely-not-a-command-xyz", "--flag"])
    handle = runtime.start(req)
    outcome = runtime.wait(handle, timeout=30)
    assert outcome is not None and not outcome.ok
    assert outcome.error == "cannot run 'definitely-not-a-command-xyz': No such file or directory"
    assert outcome.exit_code == 127
    assert "freight: cannot run 'definitely-not-a-command-xyz'" in req.log_path.read_text()
    runtime.release(handle)


def test_a_missing_working_directory_is_a_clear_error(runtime: ShimRuntime, tmp_path: Path) -> None:
    handle = runtime.start(request(tmp_path, ["true"], cwd=str(tmp_path / "nope")))
    outcome = runtime.wait(handle, timeout=30)
    assert outcome is not None
    assert outcome.error == f"cannot enter directory '{tmp_path / 'nope'}': No such file or directory"
    runtime.release(handle)


def test_env_and_cwd_reach_the_job(runtime: ShimRuntime, tmp_path: Path) -> None:
    req = request(
        tmp_path, ["sh", "-c", 'echo "$GREETING from $(pwd)"'], cwd=str(tmp_path), env={"GREETING": "hi"}
    )
    handle = runtime.start(req)
    assert runtime.wait(handle, timeout=30) is not None
    assert req.log_path.read_text() == f"hi from {tmp_path}\n"
    runtime.release(handle)


def test_logs_are_captured_and_readable_while_the_job_runs(runtime: ShimRuntime, tmp_path: Path) -> None:
    go_on = tmp_path / "go-on"
    script = f"echo started; echo oops >&2; while [ ! -e {go_on} ]; do sleep 0.01; done; echo finished"
    req = request(tmp_path, ["sh", "-c", script])
    handle = runtime.start(req)
    eventually(lambda: "oops" in req.log_path.read_text(), "the log to show stdout and stderr")
    assert runtime.poll(handle) is None
    go_on.touch()
    assert runtime.wait(handle, timeout=30) is not None
    assert req.log_path.read_text() == "started\noops\nfinished\n"
    runtime.release(handle)


def test_cpu_seconds_are_measured(runtime: ShimRuntime, tmp_path: Path) -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    handle = runtime.start(request(tmp_path, [sys.executable, "-c", burn]))
    outcome = runtime.wait(handle, timeout=60)
    assert outcome is not None and outcome.ok
    assert outcome.cpu_seconds is not None and outcome.cpu_seconds >= 0.3
    runtime.release(handle)


def test_only_stdio_reaches_the_job(runtime: ShimRuntime, tmp_path: Path) -> None:
    """No descriptor of the scheduler (or the shim's lock) leaks into the job."""
    req = request(tmp_path, ["sh", "-c", "ls /proc/self/fd"])
    handle = runtime.start(req)
    assert runtime.wait(handle, timeout=30) is not None
    # 0-2 and the descriptor ls opens to list the directory
    assert req.log_path.read_text().split() == ["0", "1", "2", "3"]
    runtime.release(handle)


def test_a_started_attempt_cannot_be_started_again(runtime: ShimRuntime, tmp_path: Path) -> None:
    req = request(tmp_path, ["true"])
    handle = runtime.start(req)
    with pytest.raises(TerminalError, match="started before"):
        runtime.start(req)
    assert runtime.wait(handle, timeout=30) is not None
    runtime.release(handle)
