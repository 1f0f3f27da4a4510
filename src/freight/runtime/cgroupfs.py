"""Where the cgroup hierarchies are mounted, where this process sits in them, and small file helpers.

Plain os.open/os.read/os.write on purpose: each cgroup file access costs ~3 µs this way, and the
runtime touches a handful per attempt.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

#: the v1 controllers freight uses; others mounted beside them are ignored
V1_CONTROLLERS = frozenset({"memory", "cpu", "cpuacct", "pids"})
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    version: int
    path: Path
    #: the cgroup the mount shows as its root (not "/" inside a container without a cgroup namespace)
    root: str
    controllers: frozenset[str]

    def dir_of(self, cgroup: str) -> Path:
        """The directory of `cgroup` (a path as /proc/self/cgroup writes it) inside this mount."""
        relative = cgroup[len(self.root) :] if cgroup.startswith(self.root) else cgroup
        return self.path / relative.lstrip("/")


def read_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """cgroup (v1) and cgroup2 mounts, first mount of each hierarchy only."""
    mounts: list[Mount] = []
    seen: set[frozenset[str] | int] = set()
    with open(mountinfo, encoding="utf-8") as file:
        for line in file:
            left, _, right = line.partition(" - ")
            fields, extra = left.split(), right.split()
            if len(fields) < 5 or len(extra) < 3 or extra[0] not in ("cgroup", "cgroup2"):
                continue
            path = Path(_OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))
            if extra[0] == "cgroup2":
                key: frozenset[str] | int = 2
                mount = Mount(2, path, fields[3], frozenset())
            else:
                controllers = frozenset(extra[2].split(",")) & V1_CONTROLLERS
                if not controllers:
                    continue
                key = controllers
                mount = Mount(1, path, fields[3], controllers)
            if key not in seen:
                seen.add(key)
                mounts.append(mount)
    return mounts


def own_cgroups(path: str = "/proc/self/cgroup") -> dict[str, str]:
    """Controller name → this process's cgroup path; "" is the cgroup v2 (unified) entry."""
    owned: dict[str, str] = {}
    with open(path, encoding="utf-8") as file:
        for line in file:
            _, controllers, cgroup = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                owned[controller] = cgroup
    return owned


def read_text(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536).decode()
    finally:
        os.close(fd)


def write_text(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)  # as `echo value > file` does
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read_int(path: str) -> int:
    return int(read_text(path).split()[0])


def read_key(path: str, key: str) -> int:
    """The number on the line "KEY N" of a flat-keyed file (memory.events, memory.oom_control, cpu.stat)."""
    for line in read_text(path).splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    raise KeyError(f"{path} has no {key!r} line")


def read_pids(procs: str) -> list[int]:
    try:
        return [int(pid) for pid in read_text(procs).split()]
    except FileNotFoundError:
        return []


def signal_all(procs: str, signum: int) -> int:
    """Send `signum` to every process listed in a cgroup.procs file; returns how many were listed."""
    pids = read_pids(procs)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
    return len(pids)


def kill_until_empty(procs: str, timeout: float = 5.0) -> bool:
    """SIGKILL everything in the cgroup until it is empty. False if processes remain after `timeout`.

    A process that forks while we read the list is caught on the next round: the kernel refuses a
    fork while a fatal signal is pending, so each round can only shrink what is left.
    """
    deadline = time.monotonic() + timeout
    pause = 0.0002
    while signal_all(procs, signal.SIGKILL):
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.02)
    return True


def wait_until_empty(procs: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    pause = 0.0002
    while read_pids(procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.02)
    return True
