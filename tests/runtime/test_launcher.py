"""The launcher: forks each attempt's shim; its death, restart and failures lose nothing."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from freight.config import Settings
from freight.errors import TerminalError
from freight.runtime import create_runtime, records
from freight.runtime.base import Handle, Outcome, Recovered
from freight.runtime.launcher import Request, Started
from freight.runtime.notices import forget_warnings
from freight.runtime.process import ShimRuntime
from tests.runtime.helpers import eventually, gone, job_pid, request, slot_dir


def launcher_pid(runtime: ShimRuntime) -> int:
    assert runtime.launcher is not None and runtime.launcher.pid is not None
    return runtime.launcher.pid


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := records.proc_stat(int(entry))) and int(fields[1]) == pid:
            found.append((int(entry), fields[0]))
    return found


def fd_target(pid: int, fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except FileNotFoundError:
        return None


def test_attempts_are_forked_by_the_launcher_with_their_descriptors(
    runtime: ShimRuntime, tmp_path: Path
) -> None:
    gate = tmp_path / "go-on"
    req = request(tmp_path, ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.01; done; ls /proc/self/fd"])
    handle = runtime.start(req)
    launcher = launcher_pid(runtime)
    assert records.proc_stat(handle.shim_pid) is not None
    assert int(records.proc_stat(handle.shim_pid)[1]) == launcher  # type: ignore[index]
    assert records.process_alive(handle.shim_pid, handle.shim_start)  # the start time the shim sent
    job = job_pid(handle)
    # the shim holds the record's lock (3) and the slot's claim (4), received from the runtime;
    # its stdio is the log; the job gets only its stdio
    assert fd_target(handle.shim_pid, 3) == handle.record_dir
    assert fd_target(handle.shim_pid, 4) == str(slot_dir(runtime, "memory", handle))
    assert fd_target(handle.shim_pid, 1) == fd_target(handle.shim_pid, 2) == str(req.log_path)
    assert fd_target(handle.shim_pid, 0) == "/dev/null"
    assert fd_target(job, 0) == "/dev/null" and fd_target(job, 1) == str(req.log_path)
    # nothing else of the launcher's (its socket, its signalfd) once the job runs
    shim_fds = f"/proc/{handle.shim_pid}/fd"
    eventually(
        lambda: sorted(os.listdir(shim_fds)) == ["0", "1", "2", "3", "4"], "the shim's error pipe to close"
    )
    assert records.lock_held(handle.record_dir)
    # a session of its own: neither the scheduler's nor the launcher's
    assert int(records.proc_stat(handle.shim_pid)[3]) == handle.shim_pid  # type: ignore[index]
    fd = runtime.fileno(handle)  # the pidfd the shim sent
    assert fd is not None and select.select([fd], [], [], 0)[0] == []
    assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC  # no other child of ours inherits it
    gate.touch()
    outcome = runtime.wait(handle, timeout=30)
    assert outcome is not None and outcome.ok
    assert select.select([fd], [], [], 0)[0] == [fd]
    assert req.log_path.read_text().split() == ["0", "1", "2", "3"]
    runtime.release(handle)
    assert not os.path.exists(handle.record_dir)


def test_the_job_gets_exactly_the_requested_environment(runtime: ShimRuntime, tmp_path: Path) -> None:
    req = request(tmp_path, ["env"], env={"ODD": "a=b c\tž", "EMPTY": ""})
    handle = runtime.start(req)
    assert runtime.wait(handle, timeout=30) is not None
    lines = req.log_path.read_text().splitlines()
    assert sorted(lines) == sorted(f"{k}={v}" for k, v in req.env.items())
    runtime.release(handle)


def test_the_launcher_reaps_its_shims(runtime: ShimRuntime, tmp_path: Path) -> None:
    handles = [runtime.start(request(tmp_path, ["true"])) for _ in range(20)]
    for handle in handles:
        assert runtime.wait(handle, timeout=30) is not None
        runtime.release(handle)
    launcher = launcher_pid(runtime)
    eventually(lambda: not children_of(launcher), "the launcher to reap every shim")
    assert not gone(launcher)


def test_the_launcher_exits_when_the_runtime_closes(settings: Settings, tmp_path: Path) -> None:
    runtime = create_runtime(settings)
    handle = runtime.start(request(tmp_path, ["sleep", "300"]))
    launcher = launcher_pid(runtime)
    runtime.close()
    eventually(lambda: gone(launcher), "the launcher to exit")
    assert records.process_alive(handle.shim_pid, handle.shim_start)  # the attempt goes on
    again = create_runtime(settings)
    assert again.recover(handle) is Recovered.RUNNING
    again.kill(handle)
    outcome = again.wait(handle, timeout=30)
    assert outcome is not None and outcome.signal == signal.SIGKILL
    again.release(handle)
    again.close()


def test_shims_outlive_a_killed_launcher_and_a_new_one_takes_over(
    runtime: ShimRuntime, tmp_path: Path
) -> None:
    gate = tmp_path / "go-on"
    script = f"while [ ! -e {gate} ]; do sleep 0.01; done; exit 5"
    running = [runtime.start(request(tmp_path, ["sh", "-c", script])) for _ in range(3)]
    jobs = [job_pid(handle) for handle in running]
    first = launcher_pid(runtime)
    os.kill(first, signal.SIGKILL)
    eventually(lambda: gone(first), "the launcher to die")
    for handle, job in zip(running, jobs, strict=True):
        assert records.process_alive(handle.shim_pid, handle.shim_start) and not gone(job)
        assert runtime.poll(handle) is None
    # the next start notices the launcher is gone and starts another; no attempt is lost or doubled
    later = runtime.start(request(tmp_path, ["sh", "-c", "exit 6"]))
    assert runtime.launcher is not None and runtime.launcher.starts == 2
    assert launcher_pid(runtime) != first
    gate.touch()
    for handle in running:
        outcome = runtime.wait(handle, timeout=30)
        assert outcome is not None and outcome.exit_code == 5 and outcome.error is None
        runtime.release(handle)
    outcome = runtime.wait(later, timeout=30)
    assert outcome is not None and outcome.exit_code == 6
    runtime.release(later)
    assert sorted(p.name for p in runtime.run_dir.iterdir() if p.name.startswith("t-")) == []


def test_a_launcher_killed_while_a_start_waits_on_it_is_replaced(
    runtime: ShimRuntime, tmp_path: Path
) -> None:
    warm = runtime.start(request(tmp_path, ["true"]))
    assert runtime.wait(warm, timeout=30) is not None
    runtime.release(warm)
    first = launcher_pid(runtime)
    os.kill(first, signal.SIGSTOP)  # the request waits in its socket, unread
    req = request(tmp_path, ["sh", "-c", "echo once >> " + str(tmp_path / "ran") + "; exit 4"])
    started: list[Handle] = []
    starter = threading.Thread(target=lambda: started.append(runtime.start(req)))
    starter.start()
    assert runtime.launcher is not None
    eventually(runtime.launcher._lock.locked, "the start to reach the launcher")
    os.kill(first, signal.SIGKILL)
    starter.join(timeout=30)
    assert started, "start() did not return"
    handle = started[0]
    assert runtime.launcher.starts == 2 and launcher_pid(runtime) != first
    outcome = runtime.wait(handle, timeout=30)
    assert outcome is not None and outcome.exit_code == 4
    assert (tmp_path / "ran").read_text() == "once\n"
    runtime.release(handle)


def test_a_stopped_launcher_is_replaced_after_the_reply_timeout(runtime: ShimRuntime, tmp_path: Path) -> None:
    warm = runtime.start(request(tmp_path, ["true"]))
    assert runtime.wait(warm, timeout=30) is not None
    runtime.release(warm)
    first = launcher_pid(runtime)
    assert runtime.launcher is not None
    runtime.launcher.reply_timeout = 0.2
    os.kill(first, signal.SIGSTOP)  # wedged: alive, holding its socket, never answering
    ran = tmp_path / "ran"
    handle = runtime.start(request(tmp_path, ["sh", "-c", f"echo once >> {ran}; exit 4"]))
    assert runtime.launcher.starts == 2 and launcher_pid(runtime) != first
    eventually(lambda: gone(first), "the stopped launcher to be killed")
    outcome = runtime.wait(handle, timeout=30)
    assert outcome is not None and outcome.exit_code == 4
    assert ran.read_text() == "once\n"
    runtime.release(handle)


def test_a_killed_shim_does_not_confuse_later_starts(runtime: ShimRuntime, tmp_path: Path) -> None:
    """The launcher tells of a shim killed by a signal; for a shim that had replied, that is stale."""
    handle = runtime.start(request(tmp_path, ["sleep", "300"]))
    job_pid(handle)
    os.kill(handle.shim_pid, signal.SIGKILL)
    eventually(lambda: gone(handle.shim_pid), "the shim to die")
    for _ in range(3):
        fine = runtime.start(request(tmp_path, ["sh", "-c", "exit 2"]))
        outcome = runtime.wait(fine, timeout=30)
        assert outcome is not None and outcome.exit_code == 2
        runtime.release(fine)
    assert runtime.recover(handle) is Recovered.VANISHED
    runtime.release(handle)


def test_concurrent_starts_each_get_their_own_shim(runtime: ShimRuntime, tmp_path: Path) -> None:
    handles: list[Handle] = []
    lock = threading.Lock()

    def start_some(code: int) -> None:
        for _ in range(10):
            handle = runtime.start(request(tmp_path, ["sh", "-c", f"exit {code}"]))
            with lock:
                handles.append(handle)

    threads = [threading.Thread(target=start_some, args=(code,)) for code in (3, 4, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({h.shim_pid for h in handles}) == len({h.record_dir for h in handles}) == 30
    codes: list[int] = []
    for handle in handles:
        outcome = runtime.wait(handle, timeout=30)
        assert outcome is not None and outcome.exit_code is not None
        codes.append(outcome.exit_code)
        runtime.release(handle)
    assert sorted(codes) == [3] * 10 + [4] * 10 + [5] * 10


def test_a_batch_of_starts_is_one_round_trip_and_failures_stay_with_their_attempt(
    runtime: ShimRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runtime.launcher is not None
    batches: list[int] = []
    start_many = runtime.launcher.start_many

    def counted(requests: list[Request]) -> list[Started | Exception]:
        batches.append(len(requests))
        return start_many(requests)

    monkeypatch.setattr(runtime.launcher, "start_many", counted)
    blocked = tmp_path / "a-file"
    blocked.touch()
    fine = [request(tmp_path, ["sh", "-c", f"exit {code}"]) for code in (3, 4, 5)]
    unloggable = dataclasses.replace(request(tmp_path, ["true"]), log_path=blocked / "x.log")
    nul = request(tmp_path, ["echo", "a\0b"])
    huge = request(
        tmp_path,
        ["sh", "-c", 'test "${#BIG}" = 100000'],
        env={"BIG": "x" * 100_000} | {f"MORE{i}": "y" * 100_000 for i in range(2)},
    )
    empty = request(tmp_path, [])
    results = runtime.start_many([fine[0], unloggable, fine[1], nul, huge, empty, fine[2]])
    assert batches == [5]  # the three fine ones and two the shim refuses; not the huge or empty one
    handles = [results[i] for i in (0, 2, 6)]
    assert all(isinstance(h, Handle) and h.shim_pid not in runtime._children for h in handles)
    assert isinstance(results[1], Exception) and "Not a directory" in str(results[1])
    assert not (runtime.run_dir / unloggable.attempt_id).exists()
    assert isinstance(results[3], ValueError) and "embedded null byte" in str(results[3])
    assert isinstance(results[4], Handle) and results[4].shim_pid in runtime._children  # spawned
    assert isinstance(results[5], TerminalError)
    for handle, code in [*zip(handles, (3, 4, 5), strict=True), (results[4], 0)]:
        assert isinstance(handle, Handle)
        outcome = runtime.wait(handle, timeout=30)
        assert outcome is not None and outcome.exit_code == code
        runtime.release(handle)
    # the slots and the attempt ids of the failed ones are free again
    again = runtime.start_many(
        [unloggable_fixed := dataclasses.replace(unloggable, log_path=tmp_path / "ok.log")]
    )
    assert isinstance(again[0], Handle) and again[0].attempt_id == unloggable_fixed.attempt_id
    assert runtime.wait(again[0], timeout=30) is not None
    runtime.release(again[0])


def test_a_batch_sent_to_a_dead_launcher_is_started_by_a_new_one(
    runtime: ShimRuntime, tmp_path: Path
) -> None:
    first = runtime.start(request(tmp_path, ["true"]))
    assert runtime.wait(first, timeout=30) is not None
    runtime.release(first)
    old = launcher_pid(runtime)
    os.kill(old, signal.SIGKILL)
    eventually(lambda: gone(old), "the launcher to die")
    results = runtime.start_many([request(tmp_path, ["sh", "-c", f"exit {code}"]) for code in (6, 7, 8)])
    assert runtime.launcher is not None and runtime.launcher.starts == 2
    codes = []
    for handle in results:
        assert isinstance(handle, Handle)
        assert handle.shim_pid not in runtime._children  # forked by the new launcher, not spawned
        outcome = runtime.wait(handle, timeout=30)
        assert outcome is not None and outcome.exit_code is not None
        codes.append(outcome.exit_code)
        runtime.release(handle)
    assert codes == [6, 7, 8]


def test_start_failures_in_the_shim_are_reported_and_leave_nothing(
    runtime: ShimRuntime, tmp_path: Path
) -> None:
    taken = request(tmp_path, ["true"])
    os.mkdir(runtime.run_dir / taken.attempt_id)  # another runtime's attempt, say
    with pytest.raises(TerminalError, match="started before"):
        runtime.start(taken)
    assert (runtime.run_dir / taken.attempt_id).is_dir()  # not ours to remove
    os.rmdir(runtime.run_dir / taken.attempt_id)

    blocked = tmp_path / "a-file"
    blocked.touch()
    unloggable = dataclasses.replace(request(tmp_path, ["true"]), log_path=blocked / "x.log")
    with pytest.raises(Exception, match="cannot start attempt") as info:
        runtime.start(unloggable)
    assert "Not a directory" in str(info.value)
    assert not (runtime.run_dir / unloggable.attempt_id).exists()

    with pytest.raises(ValueError, match="embedded null byte"):
        runtime.start(request(tmp_path, ["echo", "a\0b"]))
    # the slots and the launcher are fine afterwards
    handle = runtime.start(request(tmp_path, ["true"]))
    assert runtime.wait(handle, timeout=30) is not None
    runtime.release(handle)


def test_huge_requests_and_a_broken_launcher_fall_back_to_spawning_the_shim(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    forget_warnings()
    runtime = create_runtime(settings)
    try:
        # over the launcher's message size, within what exec takes (each string < 128 KiB)
        huge = {f"BIG{i}": "x" * 100_000 for i in range(3)}
        big = request(tmp_path, ["sh", "-c", 'test "${#BIG0}${#BIG2}" = 100000100000'], env=huge)
        handle = runtime.start(big)
        assert runtime.launcher is not None and runtime.launcher.pid is None  # never needed
        outcome = runtime.wait(handle, timeout=30)
        assert outcome is not None and outcome.ok
        runtime.release(handle)

        # a request that does not fit the socket's buffer is spawned too
        fine = runtime.start(request(tmp_path, ["true"]))  # starts the launcher
        assert runtime.wait(fine, timeout=30) is not None
        runtime.release(fine)
        sock = runtime.launcher._sock
        assert sock is not None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        roomy = request(tmp_path, ["sh", "-c", 'test "${#ROOMY}" = 50000'], env={"ROOMY": "y" * 50_000})
        handle = runtime.start(roomy)
        assert handle.shim_pid in runtime._children  # spawned by us, not forked by the launcher
        outcome = runtime.wait(handle, timeout=30)
        assert outcome is not None and outcome.ok
        runtime.release(handle)
        assert runtime.launcher.broken is None and runtime.launcher.starts == 1

        runtime.launcher.close()
        runtime.launcher.executable = "/bin/true"  # exits at once: no launcher can be had
        with caplog.at_level(logging.WARNING, logger="freight.runtime"):
            handles = [runtime.start(request(tmp_path, ["sh", "-c", "exit 7"])) for _ in range(2)]
        assert runtime.launcher.broken is not None
        assert caplog.text.count("spawning a shim per attempt") == 1
        for handle in handles:
            outcome = runtime.wait(handle, timeout=30)
            assert outcome is not None and outcome.exit_code == 7
            runtime.release(handle)
    finally:
        runtime.close()


SCHEDULER_THAT_DIES = """
import os, signal, sys, json
from pathlib import Path
from freight.config import load_settings
from freight.runtime import create_runtime
from freight.runtime.base import AttemptRequest, Limits

runtime = create_runtime(load_settings())
env, limits = {"PATH": os.environ["PATH"]}, Limits(1.0, 256 << 20)
attempt = AttemptRequest(sys.argv[1], sys.argv[3:], env, None, limits, Path(sys.argv[2]))
handle = runtime.start(attempt)
print(json.dumps({"handle": handle.to_json(), "launcher": runtime.launcher.pid}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_recover_after_the_scheduler_process_is_killed(settings: Settings, tmp_path: Path) -> None:
    gate = tmp_path / "go-on"
    argv = ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.01; done; echo done; exit 3"]
    req = request(tmp_path, argv)
    env = {
        **os.environ,
        "FREIGHT_HOME": str(settings.home),
        "FREIGHT_CGROUP_PARENT": settings.cgroup_parent,
        "FREIGHT_ISOLATION": settings.isolation,
    }
    died = subprocess.run(
        [sys.executable, "-c", SCHEDULER_THAT_DIES, req.attempt_id, str(req.log_path), *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert died.returncode == -signal.SIGKILL, died.stderr
    said = json.loads(died.stdout)
    handle = Handle.from_json(said["handle"])
    eventually(lambda: gone(said["launcher"]), "the orphaned launcher to exit")
    runtime = create_runtime(settings)
    assert runtime.recover(handle) is Recovered.RUNNING
    gate.touch()
    outcome = runtime.wait(handle, timeout=30)
    assert isinstance(outcome, Outcome) and outcome.exit_code == 3
    assert req.log_path.read_text() == "done\n"
    assert runtime.recover(handle) == outcome
    runtime.release(handle)
    runtime.close()
