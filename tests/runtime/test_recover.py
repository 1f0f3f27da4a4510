"""recover(): a restarted scheduler re-attaches to attempts from the handles it persisted."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

from freight.config import Settings
from freight.runtime import create_runtime, records
from freight.runtime.base import Handle, Outcome, Recovered
from freight.runtime.process import ShimRuntime
from tests.runtime.helpers import eventually, gone, job_pid, request

SCHEDULER = """
import os, sys
from pathlib import Path
from freight.config import load_settings
from freight.runtime import create_runtime
from freight.runtime.base import AttemptRequest, Limits

runtime = create_runtime(load_settings())
env, limits = {"PATH": os.environ["PATH"]}, Limits(1.0, 256 << 20)
attempt = AttemptRequest(sys.argv[1], sys.argv[3:], env, None, limits, Path(sys.argv[2]))
print(runtime.start(attempt).to_json())
"""


def start_in_a_scheduler_that_exits(settings: Settings, tmp_path: Path, argv: list[str]) -> Handle:
    """Start an attempt from another process that then exits, leaving the shim to init."""
    req = request(tmp_path, argv)
    env = {
        **os.environ,
        "FREIGHT_HOME": str(settings.home),
        "FREIGHT_CGROUP_PARENT": settings.cgroup_parent,
        "FREIGHT_ISOLATION": settings.isolation,
    }
    done = subprocess.run(
        [sys.executable, "-c", SCHEDULER, req.attempt_id, str(req.log_path), *argv],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return Handle.from_json(done.stdout)


def test_a_running_attempt_is_running_after_a_restart(settings: Settings, tmp_path: Path) -> None:
    handle = start_in_a_scheduler_that_exits(settings, tmp_path, ["sleep", "300"])
    runtime = create_runtime(settings)
    assert runtime.recover(handle) is Recovered.RUNNING
    assert runtime.poll(handle) is None
    fd = runtime.fileno(handle)  # a pidfd on a shim that is not our child
    assert fd is not None and select.select([fd], [], [], 0)[0] == []
    memory, cpu = runtime.usage(handle)
    assert memory is not None and cpu is not None
    runtime.kill(handle)
    assert select.select([fd], [], [], 30)[0] == [fd]
    outcome = runtime.wait(handle, timeout=30)
    assert outcome is not None and outcome.signal == signal.SIGKILL and not outcome.oom_killed
    runtime.release(handle)
    runtime.close()


def test_an_attempt_that_ended_meanwhile_returns_its_outcome(settings: Settings, tmp_path: Path) -> None:
    handle = start_in_a_scheduler_that_exits(settings, tmp_path, ["sh", "-c", "echo bye; exit 7"])
    eventually(lambda: records.read_status(handle.record_dir), "the shim to record the exit")
    runtime = create_runtime(settings)
    outcome = runtime.recover(handle)
    assert isinstance(outcome, Outcome)
    assert outcome.exit_code == 7 and not outcome.oom_killed and outcome.error is None
    assert outcome.peak_memory is not None and outcome.cpu_seconds is not None
    fd = runtime.fileno(handle)  # the shim is gone: readable at once
    assert fd is not None and select.select([fd], [], [], 0)[0] == [fd]
    runtime.release(handle)
    assert not os.path.exists(handle.record_dir)
    runtime.close()


def test_an_attempt_whose_shim_died_has_vanished(
    runtime: ShimRuntime, settings: Settings, tmp_path: Path
) -> None:
    handle = runtime.start(request(tmp_path, ["sleep", "300"]))
    job = job_pid(handle)
    os.kill(handle.shim_pid, signal.SIGKILL)
    eventually(lambda: gone(handle.shim_pid), "the shim to die")  # its launcher reaps it
    restarted = create_runtime(settings)  # the old instance is gone as far as the attempt knows
    assert restarted.recover(handle) is Recovered.VANISHED
    assert restarted.poll(handle) is None  # no exit is recorded, and none will be
    lost = restarted.wait(handle)  # returns rather than blocking forever
    assert lost is not None and lost.error is not None and lost.error.startswith("lost:")
    assert not lost.ok and lost.exit_code is None
    assert not gone(job)  # still running, unsupervised, until release cleans up
    restarted.release(handle)
    assert gone(job)
    restarted.close()


def test_recover_in_the_same_instance(runtime: ShimRuntime, tmp_path: Path) -> None:
    handle = runtime.start(request(tmp_path, ["sh", "-c", "exit 4"]))
    outcome = runtime.wait(handle, timeout=30)
    assert isinstance(outcome, Outcome)
    assert runtime.recover(handle) == outcome
    runtime.release(handle)


def test_a_released_attempt_can_no_longer_touch_its_slot(runtime: ShimRuntime, tmp_path: Path) -> None:
    """A late kill() of a released attempt must not hit (or take) the slot's next attempt."""
    done = runtime.start(request(tmp_path, ["true"]))
    assert runtime.wait(done, timeout=30) is not None
    runtime.release(done)
    successor = runtime.start(request(tmp_path, ["sleep", "300"]))
    assert successor.slot == done.slot
    job = job_pid(successor)
    runtime.kill(done)
    runtime.signal(done, signal.SIGTERM)
    runtime.release(done)
    assert not gone(job) and runtime.poll(successor) is None
    runtime.kill(successor)
    assert runtime.wait(successor, timeout=30) is not None
    runtime.release(successor)
