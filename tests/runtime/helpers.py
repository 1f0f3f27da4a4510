"""Helpers shared by the runtime tests."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from freight.runtime import records
from freight.runtime.base import AttemptRequest, Handle, Limits
from freight.runtime.process import ShimRuntime
from freight.runtime.slots import SlotPool
from freight.units import parse_bytes

#: unique per test session; removed at the end (see conftest.home)
CGROUP_PARENT = f"freight-test-{os.getpid()}"


def request(
    tmp_path: Path,
    argv: list[str],
    *,
    memory: str = "256M",
    cpus: float = 1.0,
    pids: int = 256,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> AttemptRequest:
    attempt_id = f"t-{uuid.uuid4().hex[:12]}"
    return AttemptRequest(
        attempt_id=attempt_id,
        argv=argv,
        env={"PATH": os.environ["PATH"], **(env or {})},
        cwd=cwd,
        limits=Limits(cpus=cpus, memory=parse_bytes(memory), pids=pids),
        log_path=tmp_path / "logs" / f"{attempt_id}.log",
    )


def eventually(check: Callable[[], object], what: str, timeout: float = 20.0) -> object:
    """Poll `check` until it returns something truthy; a hang guard, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)
    return value


def job_pid(handle: Handle) -> int:
    pid = eventually(lambda: records.read_pid(handle.record_dir), "the job's pid file")
    assert isinstance(pid, int)
    return pid


def gone(pid: int) -> bool:
    """The process is dead: no /proc entry, or a zombie waiting for init to reap it."""
    fields = records.proc_stat(pid)
    return fields is None or fields[0] in ("Z", "X")


def slot_dir(runtime: ShimRuntime, controller: str, handle: Handle) -> Path:
    """The attempt's cgroup directory for `controller` ("" in cgroup v2)."""
    assert isinstance(runtime.isolation, SlotPool) and handle.slot is not None
    parents = runtime.isolation.driver.parents
    return (parents[controller] if controller in parents else parents[""]) / handle.slot


def read(path: Path) -> str:
    return path.read_text().strip()
