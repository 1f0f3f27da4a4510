"""kill() and signal() reach every process of an attempt, however it hides."""

from __future__ import annotations

import signal
from pathlib import Path

from freight.runtime import records
from freight.runtime.base import Handle
from freight.runtime.process import ShimRuntime
from freight.runtime.slots import SlotPool
from tests.runtime.helpers import eventually, gone, job_pid, request

# sh, a child, a setsid'd child (new session), and a nested sh with its own child
TREE = 'sleep 300 & setsid sleep 301 & sh -c "sleep 302 & wait" & wait'


def members(runtime: ShimRuntime, handle: Handle) -> list[int]:
    assert isinstance(runtime.isolation, SlotPool)
    return runtime.isolation.members(handle)


def at_least(count: int, runtime: ShimRuntime, handle: Handle) -> list[int]:
    def enough() -> list[int] | None:
        pids = members(runtime, handle)
        return pids if len(pids) >= count else None

    pids = eventually(enough, f"{count} processes in the attempt's cgroup")
    assert isinstance(pids, list)
    return pids


def session_of(pid: int) -> int | None:
    fields = records.proc_stat(pid)
    return int(fields[3]) if fields else None  # stat field 6


def test_kill_reaches_children_grandchildren_and_new_sessions(runtime: ShimRuntime, tmp_path: Path) -> None:
    handle = runtime.start(request(tmp_path, ["sh", "-c", TREE]))

    def tree_ready() -> list[int] | None:
        pids = at_least(5, runtime, handle)
        # the setsid'd sleep has left the job's session
        return pids if len({session_of(pid) for pid in pids}) == 2 else None

    pids = eventually(tree_ready, "the setsid'd sleep to start its own session")
    assert isinstance(pids, list)
    main = job_pid(handle)
    runtime.kill(handle)
    outcome = runtime.wait(handle, timeout=30)
    assert outcome is not None
    assert outcome.signal == signal.SIGKILL and not outcome.oom_killed
    assert main in pids and all(gone(pid) for pid in pids)
    assert members(runtime, handle) == []
    runtime.release(handle)


def test_signal_reaches_every_process(runtime: ShimRuntime, tmp_path: Path) -> None:
    req = request(tmp_path, ["sh", "-c", 'trap "echo got-term; exit 0" TERM; sleep 300 & wait'])
    handle = runtime.start(req)
    pids = at_least(2, runtime, handle)
    runtime.signal(handle, signal.SIGTERM)
    outcome = runtime.wait(handle, timeout=30)
    assert outcome is not None and outcome.exit_code == 0
    assert req.log_path.read_text() == "got-term\n"
    eventually(lambda: all(gone(pid) for pid in pids), "the sleep to die of SIGTERM too")
    runtime.release(handle)


def test_a_kill_right_after_start_is_never_lost(runtime: ShimRuntime, tmp_path: Path) -> None:
    """Whether the job has exec'ed yet or not, it dies: before exec it sees the kill request."""
    for _ in range(20):
        handle = runtime.start(request(tmp_path, ["sleep", "300"]))
        runtime.kill(handle)
        outcome = runtime.wait(handle, timeout=30)
        assert outcome is not None and outcome.signal == signal.SIGKILL and not outcome.oom_killed
        runtime.release(handle)


def test_release_kills_what_the_job_left_behind(runtime: ShimRuntime, tmp_path: Path) -> None:
    handle = runtime.start(request(tmp_path, ["sh", "-c", "setsid sleep 300 & echo started"]))
    outcome = runtime.wait(handle, timeout=30)
    assert outcome is not None and outcome.ok
    leftovers = members(runtime, handle)
    assert len(leftovers) == 1  # the daemonised sleep outlived the job
    runtime.release(handle)
    assert gone(leftovers[0])
