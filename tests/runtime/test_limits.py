"""Limits are enforced by the kernel: memory (OOM kill), CPU quota, pids."""

from __future__ import annotations

import sys
from pathlib import Path

from freight.runtime.process import ShimRuntime
from tests.runtime.helpers import eventually, job_pid, read, request, slot_dir

MiB = 1 << 20
HOG = [sys.executable, "-c", "data = b'x' * (200 << 20)"]


def test_an_oom_kill_is_reported_while_neighbours_succeed(runtime: ShimRuntime, tmp_path: Path) -> None:
    hog = runtime.start(request(tmp_path, HOG, memory="64M"))
    neighbours = [
        runtime.start(request(tmp_path, [sys.executable, "-c", "data = b'x' * (20 << 20)"], memory="128M"))
        for _ in range(5)
    ]
    outcome = runtime.wait(hog, timeout=60)
    assert outcome is not None
    assert outcome.oom_killed and not outcome.ok
    assert outcome.signal == 9 and outcome.exit_code is None
    assert outcome.peak_memory is not None and 56 * MiB <= outcome.peak_memory <= 64 * MiB
    for handle in neighbours:
        done = runtime.wait(handle, timeout=60)
        assert done is not None and done.ok and not done.oom_killed
        assert done.peak_memory is not None and 20 * MiB < done.peak_memory < 128 * MiB
    for handle in [hog, *neighbours]:
        runtime.release(handle)


def test_limits_are_written_to_the_job_cgroup(runtime: ShimRuntime, tmp_path: Path) -> None:
    go_on = tmp_path / "go-on"
    req = request(
        tmp_path,
        ["sh", "-c", f"while [ ! -e {go_on} ]; do sleep 0.01; done"],
        memory="64M",
        cpus=0.5,
        pids=32,
    )
    handle = runtime.start(req)
    pid = job_pid(handle)
    if handle.isolation == "cgroup-v1":
        expected = {
            ("cpu", "cpu.cfs_quota_us"): "50000",
            ("cpu", "cpu.cfs_period_us"): "100000",
            ("memory", "memory.limit_in_bytes"): str(64 * MiB),
            ("memory", "memory.memsw.limit_in_bytes"): str(64 * MiB),
            ("memory", "memory.swappiness"): "0",
            ("pids", "pids.max"): "32",
        }
    else:
        expected = {
            ("", "cpu.max"): "50000 100000",
            ("", "memory.max"): str(64 * MiB),
            ("", "memory.swap.max"): "0",
            ("", "pids.max"): "32",
        }
    for (controller, file), value in expected.items():
        directory = slot_dir(runtime, controller, handle)
        assert read(directory / file) == value, file
        assert str(pid) in read(directory / "cgroup.procs").split()
    # the shim is outside the job's cgroups: an OOM kill in the job cannot take the exit record along
    memory_cgroup = slot_dir(runtime, "memory", handle)
    assert str(handle.shim_pid) not in read(memory_cgroup / "cgroup.procs").split()
    go_on.touch()
    assert runtime.wait(handle, timeout=30) is not None
    runtime.release(handle)


def test_the_pids_limit_caps_a_fork_loop(runtime: ShimRuntime, tmp_path: Path) -> None:
    fork_loop = """
import os, signal, time
children = []
for _ in range(100):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    children.append(pid)
print("forked", len(children), flush=True)
for pid in children:
    os.kill(pid, signal.SIGKILL)
"""
    req = request(tmp_path, [sys.executable, "-c", fork_loop], pids=20)
    handle = runtime.start(req)
    outcome = runtime.wait(handle, timeout=60)
    assert outcome is not None and outcome.ok
    words = req.log_path.read_text().split()
    assert words[0] == "forked"
    assert 0 < int(words[1]) <= 19  # the interpreter itself is the 20th
    runtime.release(handle)


def test_usage_reports_a_running_attempt(runtime: ShimRuntime, tmp_path: Path) -> None:
    go_on = tmp_path / "go-on"
    hold = f"""
import os, time
data = b"x" * (30 << 20)
while not os.path.exists({str(go_on)!r}):
    time.sleep(0.01)
"""
    handle = runtime.start(request(tmp_path, [sys.executable, "-c", hold]))
    memory = eventually(lambda: (runtime.usage(handle)[0] or 0) > 30 * MiB, "the job to hold 30M")
    assert memory
    _, cpu = runtime.usage(handle)
    assert cpu is not None and cpu > 0
    go_on.touch()
    assert runtime.wait(handle, timeout=30) is not None
    runtime.release(handle)
    assert runtime.usage(handle) == (None, None)
