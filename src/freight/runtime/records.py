"""The files a shim keeps in an attempt's record directory, and how to read them.

    .       the directory itself is flock'ed for the shim's whole life (taken by the runtime before it
            spawns the shim, which inherits it as descriptor 3)
    pid     the job's pid, written by the job itself once it sits in its cgroups / process group
            (not atomically: an empty file means "no pid yet")
    kill    created by kill(); a job that has not exec'ed yet sees it and dies instead
    status  the exit record, written once (temp + rename) when the job has ended

The C shim (shim.c) and the Python shim (pyshim.py) write the same files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from dataclasses import dataclass, field

PID = "pid"
KILL = "kill"
STATUS = "status"


@dataclass(frozen=True)
class ShimStatus:
    exit_code: int | None
    signal: int | None
    error: str | None
    pid: int | None
    started: float
    ended: float
    cpu_seconds: float
    #: ru_maxrss of the job (and its waited-for descendants), in bytes
    max_rss: int
    #: cgroup counters the shim read when the job ended ("cg.NAME=N" lines)
    counters: dict[str, int] = field(default_factory=dict)


def parse_status(text: str) -> ShimStatus:
    values: dict[str, str] = {}
    counters: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key.startswith("cg."):
            counters[key[3:]] = int(value)
        else:
            values[key] = value

    def number(key: str) -> int | None:
        return int(values[key]) if key in values else None

    return ShimStatus(
        exit_code=number("exit"),
        signal=number("signal"),
        error=values.get("error") or None,
        pid=number("pid"),
        started=float(values.get("started", "0")),
        ended=float(values.get("ended", "0")),
        cpu_seconds=float(values.get("utime", "0")) + float(values.get("stime", "0")),
        max_rss=int(values.get("maxrss", "0")) * 1024,
        counters=counters,
    )


def read_status(record_dir: str) -> ShimStatus | None:
    try:
        fd = os.open(os.path.join(record_dir, STATUS), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        return parse_status(os.read(fd, 65536).decode(errors="replace"))
    finally:
        os.close(fd)


def remove_record(record_dir: str) -> None:
    """Delete a record directory: whatever files it holds (the shim's, and those others keep beside
    them, like the scheduler's handle), then the directory. One listing instead of trying each name,
    and no tree walk: this runs once per attempt."""
    try:
        names = os.listdir(record_dir)
    except FileNotFoundError:
        return
    try:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(record_dir, name))
        os.rmdir(record_dir)
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(record_dir, ignore_errors=True)  # something unexpected in it (a directory)


def read_pid(record_dir: str) -> int | None:
    try:
        with open(os.path.join(record_dir, PID), "rb") as file:
            return int(file.read())
    except (FileNotFoundError, ValueError):
        return None


def request_kill(record_dir: str) -> None:
    with contextlib.suppress(FileNotFoundError):  # no record directory: the attempt was released
        os.close(os.open(os.path.join(record_dir, KILL), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def lock_held(record_dir: str) -> bool:
    """True while a shim holds the record's lock, i.e. while it is alive."""
    try:
        fd = os.open(record_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if we took it
    return False


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from field 3 (state) on, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    return text[text.rindex(b")") + 2 :].decode().split()


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot): with the pid, names one process for good."""
    fields = proc_stat(pid)
    return int(fields[19]) if fields else None


def process_alive(pid: int, started: int) -> bool:
    """True when `pid` is still the process that started at `started`, and not a zombie."""
    fields = proc_stat(pid)
    return fields is not None and int(fields[19]) == started and fields[0] not in ("Z", "X")
