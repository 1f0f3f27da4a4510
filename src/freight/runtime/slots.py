"""Cgroup isolation through a pool of reusable slot cgroups.

Creating a cgroup per attempt costs milliseconds; reusing `<parent>/slot-N` costs a few file writes.
A slot is busy from place() until release(). Free slots are tracked in memory only: after a restart
the pool starts from the slot directories it finds, and takes one it has not used yet only when the
cgroup is empty and no running shim holds a record under `<run_dir>/<slot>/` (the job may not have
joined its cgroup yet). So a slot still running an attempt that has not been recovered is never
handed out; a finished attempt's measures live in its shim's status file, so reusing its slot
loses nothing.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from freight.errors import TransientError
from freight.runtime import records
from freight.runtime.base import Handle, Limits
from freight.runtime.cgroups import CgroupDriver, Slot
from freight.runtime.isolation import Measures, Placement
from freight.runtime.notices import logger
from freight.runtime.records import ShimStatus


class SlotPool:
    def __init__(self, driver: CgroupDriver, run_dir: Path) -> None:
        self.driver = driver
        self.run_dir = run_dir
        self.kind = driver.kind
        self.description = driver.description
        self._lock = threading.Lock()
        self._slots: dict[str, Slot] = {}
        self._owner: dict[str, str] = {}
        #: free slots, most recently released last (reused first: its limits are likeliest unchanged)
        self._free = driver.slot_names()
        #: slots found busy when taken: maybe an earlier run's attempt, not recovered yet
        self._stale: set[str] = set()
        #: slots this instance has checked for records of an earlier run's running shims
        self._checked: set[str] = set()
        numbers = [int(name[5:]) for name in self._free if name[5:].isdigit()]
        self._next = max(numbers, default=-1) + 1

    def prewarm(self, count: int) -> None:
        """Create slots until `count` are free, so the first attempts do not pay for mkdir."""
        with self._lock:
            while len(self._free) < count:
                self._free.insert(0, self._new_slot().name)

    def place(self, attempt_id: str, limits: Limits) -> Placement:
        slot = self._take(attempt_id)
        try:
            oom_base, cpu_base = self.driver.prepare(slot, limits)
        except OSError as exc:
            slot.written.clear()  # a half-done update leaves the kernel's values unknown
            with self._lock:
                del self._owner[slot.name]
                self._free.append(slot.name)
            problem = f"{exc.strerror} ({exc.filename})"
            raise TransientError(f"cannot prepare cgroup {slot.name}: {problem}") from exc
        return Placement(slot.name, oom_base, cpu_base, slot.procs, slot.counters, "-")

    def unplace(self, attempt_id: str, placement: Placement) -> None:
        with self._lock:
            if placement.slot is not None and self._owner.get(placement.slot) == attempt_id:
                del self._owner[placement.slot]
                self._free.append(placement.slot)

    def claim(self, handle: Handle) -> None:
        self._slot_of(handle, claim=True)

    def signal(self, handle: Handle, signum: int) -> None:
        slot = self._slot_of(handle, claim=True)
        if slot is not None:
            self.driver.signal(slot, signum)

    def kill(self, handle: Handle) -> None:
        slot = self._slot_of(handle, claim=True)
        if slot is not None and not self.driver.kill(slot):
            logger.warning("freight: attempt %s has processes surviving SIGKILL", handle.attempt_id)

    def release(self, handle: Handle) -> None:
        slot = self._slot_of(handle, claim=True)
        if slot is None:
            return
        emptied = self.driver.kill(slot)
        with self._lock:
            del self._owner[slot.name]
            if emptied:
                self._free.append(slot.name)
            else:
                self._stale.add(slot.name)
        if not emptied:
            logger.warning("freight: %s still holds processes after SIGKILL; not reusing it", slot.name)

    def measure(self, handle: Handle, status: ShimStatus) -> Measures:
        counters = status.counters
        oom = counters.get("oom_kill")
        if status.signal == signal.SIGKILL and (oom is None or oom <= handle.oom_base):
            # the OOM killer signals its victim before it counts the kill: look again
            slot = self._slot_of(handle, claim=False)
            if slot is not None:
                oom = self.driver.oom_count(slot)
        cpu = counters.get(self.driver.cpu_counter)
        cpu_base = int(handle.extra.get("cpu_base", 0))
        return Measures(
            oom_killed=oom is not None and oom > handle.oom_base,
            peak_memory=counters.get("peak", status.max_rss or None),
            cpu_seconds=(cpu - cpu_base) * self.driver.cpu_unit if cpu is not None else status.cpu_seconds,
        )

    def usage(self, handle: Handle) -> tuple[int | None, float | None]:
        slot = self._slot_of(handle, claim=False)
        if slot is None:
            return None, None
        memory, cpu = self.driver.usage(slot)
        return memory, (cpu - int(handle.extra.get("cpu_base", 0))) * self.driver.cpu_unit

    def members(self, handle: Handle) -> list[int]:
        """Pids in the attempt's slot (for inspection and tests)."""
        slot = self._slot_of(handle, claim=False)
        return self.driver.pids(slot) if slot is not None else []

    def destroy(self) -> None:
        """Kill everything in every slot and delete the slots and the parent cgroup."""
        with self._lock:
            names = set(self._free) | self._stale | set(self._owner) | set(self.driver.slot_names())
            for name in names:
                self.driver.kill(self._open(name))
                self.driver.remove(name)
            self._free, self._stale, self._owner, self._slots = [], set(), {}, {}
            self.driver.remove_parents()

    def _take(self, attempt_id: str) -> Slot:
        with self._lock:
            while self._free:
                name = self._free.pop()
                if self._usable(slot := self._open(name)):
                    self._owner[name] = attempt_id
                    return slot
                self._stale.add(name)
            for name in sorted(self._stale):
                if self._usable(slot := self._open(name)):
                    self._stale.discard(name)
                    self._owner[name] = attempt_id
                    return slot
            slot = self._new_slot()
            self._checked.add(slot.name)
            self._owner[slot.name] = attempt_id
            return slot

    def _usable(self, slot: Slot) -> bool:
        if not self.driver.is_empty(slot):
            return False
        if slot.name not in self._checked:
            if records.held_by_a_shim(self.run_dir / slot.name):
                return False
            self._checked.add(slot.name)
        return True

    def _new_slot(self) -> Slot:
        name = f"slot-{self._next}"
        self._next += 1
        return self._open(name)

    def _open(self, name: str) -> Slot:
        slot = self._slots.get(name)
        if slot is None:
            slot = self._slots[name] = self.driver.open_slot(name)
        return slot

    def _slot_of(self, handle: Handle, *, claim: bool) -> Slot | None:
        """The handle's slot if this attempt holds it; with `claim`, take it if nobody holds it."""
        name = handle.slot
        if name is None:
            return None
        with self._lock:
            owner = self._owner.get(name)
            if owner == handle.attempt_id:
                return self._slots[name]
            if owner is not None or not claim or not self.driver.exists(name):
                return None  # another attempt has it: this one ended long ago
            if name in self._free:
                self._free.remove(name)
            self._stale.discard(name)
            self._owner[name] = handle.attempt_id
            return self._open(name)
