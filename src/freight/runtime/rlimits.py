"""The fallback isolation where cgroups cannot be written: rlimits and a process group per attempt.

Weaker than cgroups, and said so once when chosen:
- memory is RLIMIT_AS (address space, not resident memory): an allocation fails instead of an OOM
  kill, so `oom_killed` is never set, and runtimes that reserve address space (JVM, Go) need room;
- processes are RLIMIT_NPROC, counted per user and ignored for root: best effort only;
- no CPU quota (RLIMIT_CPU would kill a job after N CPU seconds, which is not a quota);
- a process that leaves the job's process group (setsid) escapes signal() and kill(), and kill()
  returns once SIGKILL is sent to the group, not once the group is gone;
- peak memory and CPU come from the job's rusage (itself plus the descendants it waited for).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from freight.runtime import records
from freight.runtime.base import Handle, Limits
from freight.runtime.isolation import Measures, Placement
from freight.runtime.records import ShimStatus

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class RlimitIsolation:
    kind = "rlimits"
    description = "rlimits (no cgroups): memory as RLIMIT_AS, processes as RLIMIT_NPROC, no CPU quota"

    def place(self, attempt_id: str, limits: Limits) -> Placement:
        spec = []
        if limits.memory > 0:
            spec.append(f"as={limits.memory}")
        if limits.pids > 0:
            spec.append(f"nproc={limits.pids}")
        return Placement(None, 0, 0, (), (), ",".join(spec) or "-")

    def unplace(self, attempt_id: str, placement: Placement) -> None:
        pass

    def claim(self, handle: Handle) -> None:
        pass

    def signal(self, handle: Handle, signum: int) -> None:
        group = job_group(handle.record_dir)
        if group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signum)

    def kill(self, handle: Handle) -> None:
        self.signal(handle, signal.SIGKILL)

    def release(self, handle: Handle) -> None:
        self.kill(handle)  # what the job left running in its group

    def prewarm(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass

    def destroy(self) -> None:
        pass

    def measure(self, handle: Handle, status: ShimStatus) -> Measures:
        return Measures(False, status.max_rss or None, status.cpu_seconds)

    def usage(self, handle: Handle) -> tuple[int | None, float | None]:
        """The job's main process only: its resident memory, and CPU including reaped children."""
        pid = job_group(handle.record_dir)
        fields = records.proc_stat(pid) if pid is not None else None
        if pid is None or fields is None:
            return None, None
        try:
            with open(f"/proc/{pid}/statm", "rb") as file:
                resident = int(file.read().split()[1]) * _PAGE
        except (FileNotFoundError, ProcessLookupError):
            return None, None
        # fields[0] is stat field 3: utime, stime, cutime, cstime are fields 14-17
        return resident, sum(int(value) for value in fields[11:15]) / _TICKS


def job_group(record_dir: str) -> int | None:
    """The job's process group id, unless its pid now names some other process.

    While any process of the job's group lives, the kernel keeps the group's id from being reused;
    only a live process *named* like the job but started after the job's pid file is a stranger.
    """
    pid = records.read_pid(record_dir)
    if pid is None:
        return None
    started = records.start_time(pid)
    if started is None:
        return pid
    try:
        written = os.stat(os.path.join(record_dir, records.PID)).st_mtime
    except FileNotFoundError:
        return None
    return pid if _boot_time() + started / _TICKS <= written + 1.0 else None


def _boot_time() -> float:
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
