"""The rlimits fallback: same protocol, weaker isolation, said once."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import pytest

from freight.errors import UserError
from freight.runtime import create_runtime, records
from freight.runtime.notices import forget_warnings
from freight.runtime.process import ShimRuntime
from tests.runtime.conftest import MAKE_SETTINGS
from tests.runtime.helpers import eventually, gone, job_pid, request


def test_rlimits_runs_attempts_and_warns_once(
    make_settings: MAKE_SETTINGS, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    forget_warnings()
    with caplog.at_level(logging.WARNING, logger="freight.runtime"):
        runtimes = [create_runtime(make_settings("rlimits")) for _ in range(2)]
        handles = [runtime.start(request(tmp_path, ["sh", "-c", "exit 5"])) for runtime in runtimes]
        outcomes = [
            runtime.wait(handle, timeout=30) for runtime, handle in zip(runtimes, handles, strict=True)
        ]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "rlimits" in warnings[0].getMessage() and "RLIMIT_AS" in warnings[0].getMessage()
    for runtime, handle, outcome in zip(runtimes, handles, outcomes, strict=True):
        assert handle.isolation == "rlimits" and handle.slot is None
        assert outcome is not None and outcome.exit_code == 5 and not outcome.oom_killed
        assert outcome.peak_memory is not None and outcome.cpu_seconds is not None
        runtime.release(handle)
        runtime.close()


def test_memory_is_capped_as_address_space(rlimits_runtime: ShimRuntime, tmp_path: Path) -> None:
    req = request(tmp_path, [sys.executable, "-c", "data = b'x' * (300 << 20)"], memory="200M")
    handle = rlimits_runtime.start(req)
    outcome = rlimits_runtime.wait(handle, timeout=60)
    assert outcome is not None and outcome.exit_code == 1 and not outcome.oom_killed
    assert "MemoryError" in req.log_path.read_text()
    rlimits_runtime.release(handle)


def test_kill_reaches_the_whole_process_group(rlimits_runtime: ShimRuntime, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    script = f'sleep 300 & echo $! >> {pids_file}; sh -c "sleep 301 & echo \\$! >> {pids_file}; wait" & wait'
    handle = rlimits_runtime.start(request(tmp_path, ["sh", "-c", script]))
    main = job_pid(handle)
    eventually(lambda: pids_file.exists() and len(pids_file.read_text().split()) == 2, "both sleeps")
    sleeps = [int(pid) for pid in pids_file.read_text().split()]
    memory, cpu = rlimits_runtime.usage(handle)
    assert memory is not None and memory > 0 and cpu is not None
    rlimits_runtime.kill(handle)
    outcome = rlimits_runtime.wait(handle, timeout=30)
    assert outcome is not None and outcome.signal == signal.SIGKILL and not outcome.oom_killed
    # killpg sends; unlike a cgroup, a process group cannot be watched until it is empty
    eventually(lambda: all(gone(pid) for pid in [main, *sleeps]), "the whole group to die")
    rlimits_runtime.release(handle)


def test_release_kills_what_the_job_left_in_its_group(rlimits_runtime: ShimRuntime, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    handle = rlimits_runtime.start(request(tmp_path, ["sh", "-c", f"sleep 300 & echo $! > {pid_file}"]))
    outcome = rlimits_runtime.wait(handle, timeout=30)
    assert outcome is not None and outcome.ok
    text = eventually(lambda: pid_file.exists() and pid_file.read_text().strip(), "the sleep's pid")
    leftover = int(str(text))
    assert not gone(leftover)
    rlimits_runtime.release(handle)
    eventually(lambda: gone(leftover), "the leftover sleep to die")


def test_recover_in_rlimits_mode(
    rlimits_runtime: ShimRuntime, make_settings: MAKE_SETTINGS, tmp_path: Path
) -> None:
    handle = rlimits_runtime.start(request(tmp_path, ["sleep", "300"]))
    restarted = create_runtime(make_settings("rlimits"))
    assert restarted.recover(handle).value == "running"  # type: ignore[union-attr]
    restarted.kill(handle)
    outcome = restarted.wait(handle, timeout=30)
    assert outcome is not None and outcome.signal == signal.SIGKILL
    assert records.read_status(handle.record_dir) is not None
    restarted.release(handle)
    restarted.close()


def test_auto_falls_back_to_rlimits_where_cgroups_cannot_be_used(
    make_settings: MAKE_SETTINGS, caplog: pytest.LogCaptureFixture
) -> None:
    forget_warnings()
    # a parent that cannot name a cgroup makes the cgroup path fail for a real reason
    with caplog.at_level(logging.WARNING, logger="freight.runtime"):
        runtime = create_runtime(make_settings("auto", FREIGHT_CGROUP_PARENT="../escape"))
    assert runtime.isolation.kind == "rlimits"
    assert "cgroups cannot be used" in caplog.text and "falling back to rlimits" in caplog.text
    with pytest.raises(UserError) as error:
        create_runtime(make_settings("cgroups", FREIGHT_CGROUP_PARENT="../escape"))
    assert error.value.where == "FREIGHT_ISOLATION" and error.value.hint
