"""cgroup v1 and v2 drivers: create slot cgroups, set their limits, read their counters, empty them.

A slot is a cgroup (one directory per v1 hierarchy, one in v2) named `<parent>/slot-N`. Slots are
reused across attempts (see slots.py); a driver makes a reused slot look fresh: peak memory reset,
CPU and OOM-kill counters read as baselines, and only the limits that changed rewritten.

    v1 (per controller)                      v2 (unified)
    memory.limit_in_bytes (+ memsw, no swap) memory.max, memory.swap.max = 0
    cpu.cfs_quota_us / cpu.cfs_period_us     cpu.max "QUOTA PERIOD"
    pids.max                                 pids.max
    memory.oom_control "oom_kill N"          memory.events "oom_kill N"
    memory.max_usage_in_bytes (write 0)      memory.peak (reset per descriptor, by the shim)
    cpuacct.usage (ns, write 0)              cpu.stat "usage_usec N"
"""

from __future__ import annotations

import errno
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from freight.runtime.base import Limits
from freight.runtime.cgroupfs import (
    Mount,
    kill_until_empty,
    own_cgroups,
    read_int,
    read_key,
    read_mounts,
    read_pids,
    read_text,
    signal_all,
    wait_until_empty,
    write_text,
)

CPU_PERIOD_US = 100_000
#: leftover charge (page cache of the previous attempt's files) above which a reused v1 slot is
#: emptied before its peak is reset, so the next attempt's peak is its own
LEFTOVER_BYTES = 1 << 20
V2_CONTROLLERS = ("memory", "cpu", "pids")


class CgroupUnavailable(Exception):
    """cgroups cannot be used here; the message says why."""


@dataclass
class Slot:
    name: str
    #: the cgroup.procs files a job joins (one per hierarchy)
    procs: tuple[str, ...]
    #: counters the shim reads when the job ends ("name:field:path", see shim.c)
    counters: tuple[str, ...]
    #: the procs file listing the slot's processes
    members: str
    #: the directory whose flock claims the slot (see slots.py): memory's in v1
    path: str
    #: controller → the slot's directory for it (v2: "" → the one directory)
    dirs: dict[str, str]
    #: last value written per limit: a start writes only what changed
    written: dict[str, int | str] = field(default_factory=dict)
    #: this pool's descriptor holding the slot's flock, once taken
    lock: int | None = None


def cpu_quota(cpus: float) -> int:
    return max(1000, round(cpus * CPU_PERIOD_US)) if cpus > 0 else -1


class CgroupDriver(ABC):
    kind: str
    description: str
    #: name of the shim counter holding CPU time, and seconds per unit of it
    cpu_counter: str
    cpu_unit: float

    def __init__(self, parents: dict[str, Path]) -> None:
        #: controller → freight's parent cgroup directory for it (v2: the single key "")
        self.parents = parents
        self.hierarchies = sorted(set(parents.values()))

    def slot_names(self) -> list[str]:
        """Slots left by an earlier run, to be reused."""
        names = [p.name for p in self.hierarchies[0].iterdir() if p.name.startswith("slot-") and p.is_dir()]
        return sorted(names, key=lambda name: (len(name), name))  # slot-2 before slot-10

    def exists(self, name: str) -> bool:
        return (self.hierarchies[0] / name).is_dir()

    def open_slot(self, name: str) -> Slot:
        """The slot `name`, created if it does not exist yet."""
        for parent in self.hierarchies:
            try:
                (parent / name).mkdir()
                self._init_slot(parent / name)
            except FileExistsError:
                pass
        return self._slot(name)

    def is_empty(self, slot: Slot) -> bool:
        return not read_pids(slot.members)

    def pids(self, slot: Slot) -> list[int]:
        return read_pids(slot.members)

    def signal(self, slot: Slot, signum: int) -> None:
        signal_all(slot.members, signum)

    def kill(self, slot: Slot, timeout: float = 5.0) -> bool:
        return kill_until_empty(slot.members, timeout)

    def remove(self, name: str, timeout: float = 10.0) -> None:
        """Delete a slot (its processes must be gone).

        A killed process that init has not reaped yet is no longer listed in cgroup.procs but still
        keeps its cgroup populated, so rmdir says EBUSY for a while: try again until it goes.
        """
        deadline = time.monotonic() + timeout
        for parent in self.hierarchies:
            while True:
                try:
                    (parent / name).rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def remove_parents(self) -> None:
        for parent in self.hierarchies:
            try:
                parent.rmdir()
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
                    raise

    def _write_once(self, slot: Slot, key: str, path: str, value: int | str) -> None:
        if slot.written.get(key) != value:
            write_text(path, str(value))
            slot.written[key] = value

    @abstractmethod
    def _init_slot(self, path: Path) -> None: ...

    @abstractmethod
    def _slot(self, name: str) -> Slot: ...

    @abstractmethod
    def prepare(self, slot: Slot, limits: Limits) -> tuple[int, int]:
        """Make an empty slot ready for an attempt; returns (oom_kill baseline, cpu counter baseline)."""

    @abstractmethod
    def oom_count(self, slot: Slot) -> int: ...

    @abstractmethod
    def usage(self, slot: Slot) -> tuple[int, int]:
        """(memory bytes now, cpu counter now)."""


class CgroupV1(CgroupDriver):
    kind = "cgroup-v1"
    cpu_counter = "cpu_ns"
    cpu_unit = 1e-9

    def __init__(self, parents: dict[str, Path]) -> None:
        super().__init__(parents)
        self.memsw = (parents["memory"] / "memory.memsw.limit_in_bytes").exists()
        self.description = f"cgroup v1 ({', '.join(sorted(parents))})"

    def _init_slot(self, path: Path) -> None:
        for file, value in (("memory.swappiness", 0), ("cpu.cfs_period_us", CPU_PERIOD_US)):
            if (path / file).exists() and read_int(str(path / file)) != value:
                write_text(str(path / file), str(value))

    def _slot(self, name: str) -> Slot:
        dirs = {controller: str(parent / name) for controller, parent in self.parents.items()}
        memory = dirs["memory"]
        counters = [
            f"oom_kill:oom_kill:{memory}/memory.oom_control",
            f"peak:-:{memory}/memory.max_usage_in_bytes",
        ]
        if "cpuacct" in dirs:
            counters.append(f"cpu_ns:-:{dirs['cpuacct']}/cpuacct.usage")
        return Slot(
            name=name,
            procs=tuple(str(parent / name / "cgroup.procs") for parent in self.hierarchies),
            counters=tuple(counters),
            members=f"{memory}/cgroup.procs",
            path=memory,
            dirs=dirs,
        )

    def prepare(self, slot: Slot, limits: Limits) -> tuple[int, int]:
        dirs = slot.dirs
        memory = dirs["memory"]
        self._set_memory(slot, memory, limits.memory if limits.memory > 0 else -1)
        if "cpu" in dirs:
            self._write_once(slot, "cpu", f"{dirs['cpu']}/cpu.cfs_quota_us", cpu_quota(limits.cpus))
        if "pids" in dirs:
            self._write_once(
                slot, "pids", f"{dirs['pids']}/pids.max", limits.pids if limits.pids > 0 else "max"
            )
        if read_int(f"{memory}/memory.usage_in_bytes") > LEFTOVER_BYTES:
            write_text(f"{memory}/memory.force_empty", "0")
        write_text(f"{memory}/memory.max_usage_in_bytes", "0")
        if "cpuacct" in dirs:
            write_text(f"{dirs['cpuacct']}/cpuacct.usage", "0")
        return read_key(f"{memory}/memory.oom_control", "oom_kill"), 0

    def _set_memory(self, slot: Slot, memory: str, value: int) -> None:
        if slot.written.get("memory") == value:
            return
        limit = f"{memory}/memory.limit_in_bytes"
        if not self.memsw:
            write_text(limit, str(value))
        else:
            # the kernel keeps limit <= memsw limit at every step: grow memsw first, shrink it last
            memsw = f"{memory}/memory.memsw.limit_in_bytes"
            current = slot.written.get("memory")
            before = read_int(memsw) if current is None else int(current)
            growing = value == -1 or (before != -1 and value > before)
            for path in (memsw, limit) if growing else (limit, memsw):
                write_text(path, str(value))
        slot.written["memory"] = value

    def oom_count(self, slot: Slot) -> int:
        return read_key(f"{slot.dirs['memory']}/memory.oom_control", "oom_kill")

    def usage(self, slot: Slot) -> tuple[int, int]:
        memory = read_int(f"{slot.dirs['memory']}/memory.usage_in_bytes")
        cpu = read_int(f"{slot.dirs['cpuacct']}/cpuacct.usage") if "cpuacct" in slot.dirs else 0
        return memory, cpu


class CgroupV2(CgroupDriver):
    kind = "cgroup-v2"
    cpu_counter = "cpu_us"
    cpu_unit = 1e-6
    description = "cgroup v2 (memory, cpu, pids)"

    def __init__(self, parent: Path) -> None:
        super().__init__({"": parent})
        self.parent = parent

    def _init_slot(self, path: Path) -> None:
        if (path / "memory.swap.max").exists():  # absent without swap accounting
            write_text(str(path / "memory.swap.max"), "0")

    def _slot(self, name: str) -> Slot:
        path = str(self.parent / name)
        counters = [f"oom_kill:oom_kill:{path}/memory.events", f"cpu_us:usage_usec:{path}/cpu.stat"]
        if os.path.exists(f"{path}/memory.peak"):
            counters.append(f"peak:+reset:{path}/memory.peak")
        procs = f"{path}/cgroup.procs"
        return Slot(name, (procs,), tuple(counters), members=procs, path=path, dirs={"": path})

    def prepare(self, slot: Slot, limits: Limits) -> tuple[int, int]:
        path = slot.path
        self._write_once(slot, "memory", f"{path}/memory.max", limits.memory if limits.memory > 0 else "max")
        quota = cpu_quota(limits.cpus)
        self._write_once(slot, "cpu", f"{path}/cpu.max", f"{quota if quota > 0 else 'max'} {CPU_PERIOD_US}")
        self._write_once(slot, "pids", f"{path}/pids.max", limits.pids if limits.pids > 0 else "max")
        return read_key(f"{path}/memory.events", "oom_kill"), read_key(f"{path}/cpu.stat", "usage_usec")

    def kill(self, slot: Slot, timeout: float = 5.0) -> bool:
        kill_file = f"{slot.path}/cgroup.kill"
        if not os.path.exists(kill_file):  # before Linux 5.14
            return super().kill(slot, timeout)
        if not read_pids(slot.members):
            return True
        write_text(kill_file, "1")
        return wait_until_empty(slot.members, timeout)

    def oom_count(self, slot: Slot) -> int:
        return read_key(f"{slot.path}/memory.events", "oom_kill")

    def usage(self, slot: Slot) -> tuple[int, int]:
        return read_int(f"{slot.path}/memory.current"), read_key(f"{slot.path}/cpu.stat", "usage_usec")


def open_cgroups(parent: str) -> CgroupDriver:
    """A driver for the cgroups this machine offers, with freight's parent cgroup `parent` created.

    cgroup v2 when its unified hierarchy has the memory, cpu and pids controllers; else cgroup v1.
    The parent goes under each hierarchy's root, or under this process's own cgroup when the root
    is not writable (a delegated subtree). Raises CgroupUnavailable saying why neither works.
    """
    if not parent or parent.startswith("/") or any(part in ("", ".", "..") for part in parent.split("/")):
        raise CgroupUnavailable(f"cgroup parent {parent!r} must be a relative path like 'freight'")
    try:
        mounts, own = read_mounts(), own_cgroups()
    except OSError as exc:
        raise CgroupUnavailable(f"cannot read /proc: {exc.strerror}") from None
    reasons: list[str] = []
    unified = next((m for m in mounts if m.version == 2), None)
    if unified is not None:
        available = read_text(str(unified.path / "cgroup.controllers")).split()
        if all(c in available for c in V2_CONTROLLERS):
            try:
                return CgroupV2(_v2_parent(unified, own.get("", "/"), parent))
            except OSError as exc:
                reasons.append(f"cgroup v2 at {unified.path}: {exc.strerror} ({exc.filename})")
    v1 = {c: m for m in mounts if m.version == 1 for c in m.controllers}
    if "memory" in v1:
        try:
            return CgroupV1({c: _v1_parent(m, own.get(c, "/"), parent) for c, m in v1.items()})
        except OSError as exc:
            reasons.append(f"cgroup v1: {exc.strerror} ({exc.filename})")
    elif not reasons:
        reasons.append("no cgroup hierarchy with the memory controller is mounted")
    raise CgroupUnavailable("; ".join(reasons))


def _candidates(mount: Mount, own: str, parent: str) -> list[Path]:
    return list(dict.fromkeys([mount.path / parent, mount.dir_of(own) / parent]))


def _v1_parent(mount: Mount, own: str, parent: str) -> Path:
    error: OSError | None = None
    for path in _candidates(mount, own, parent):
        try:
            path.mkdir(parents=True, exist_ok=True)
            return path
        except OSError as exc:
            error = exc
    assert error is not None
    raise error


def _v2_parent(mount: Mount, own: str, parent: str) -> Path:
    enable = " ".join(f"+{c}" for c in V2_CONTROLLERS)
    error: OSError | None = None
    for path in _candidates(mount, own, parent):
        try:
            # controllers reach a cgroup only through every ancestor's subtree_control, top down
            for ancestor in reversed(path.relative_to(mount.path).parents):
                _enable(mount.path / ancestor, enable)
            path.mkdir(exist_ok=True)
            _enable(path, enable)
            return path
        except OSError as exc:
            error = exc
    assert error is not None
    raise error


def _enable(path: Path, controllers: str) -> None:
    control = path / "cgroup.subtree_control"
    if set(controllers.replace("+", "").split()) - set(read_text(str(control)).split()):
        write_text(str(control), controllers)
