"""Cgroup isolation through a pool of reusable slot cgroups.

Creating a cgroup per attempt costs milliseconds; reusing `<parent>/slot-N` costs a few file writes.
A slot is busy from place() until release(), tracked in memory. Across processes a slot is claimed
by an flock on its cgroup directory: the pool takes it when it first uses the slot and keeps it, and
each attempt's shim inherits it (descriptor 4) for its whole life. So another runtime sharing the
cgroup parent never takes our slots, and after a restart a slot whose attempt still runs stays
claimed by that attempt's shim even before its job has joined the cgroup. A finished attempt's
measures live in its shim's status file, so reusing its slot loses nothing.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
import weakref

from freight.errors import TransientError
from freight.runtime.base import Handle, Limits
from freight.runtime.cgroups import CgroupDriver, Slot
from freight.runtime.isolation import Measures, Placement
from freight.runtime.notices import logger
from freight.runtime.records import ShimStatus

#: slot locks are kept above the descriptors a spawn rewires (0-4), so file actions cannot clobber them
_LOCK_FLOOR = 10
#: seconds between looks at slots that could not be taken
STALE_RECHECK = 1.0


class SlotPool:
    def __init__(self, driver: CgroupDriver) -> None:
        self.driver = driver
        self.kind = driver.kind
        self.description = driver.description
        self._lock = threading.Lock()
        self._slots: dict[str, Slot] = {}
        # a pool dropped without close() must not keep its slots claimed for the life of the process
        weakref.finalize(self, _unlock_all, self._slots)
        self._owner: dict[str, str] = {}
        #: free slots, most recently released last (reused first: its limits are likeliest unchanged)
        self._free = driver.slot_names()
        #: slots that could not be taken: claimed elsewhere, or processes still in them
        self._stale: set[str] = set()
        #: free slots this pool emptied itself (release killed until empty, under its lock): taking
        #: one needs no second read of its member list (on cgroup v1 a read costs ~0.5 ms)
        self._emptied: set[str] = set()
        self._stale_checked = -STALE_RECHECK
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
        return Placement(slot.name, oom_base, cpu_base, slot.procs, slot.counters, "-", slot.lock)

    def unplace(self, attempt_id: str, placement: Placement) -> None:
        with self._lock:
            if placement.slot is not None and self._owner.get(placement.slot) == attempt_id:
                del self._owner[placement.slot]
                self._free.append(placement.slot)

    def claim(self, handle: Handle) -> None:
        self._slot_of(handle, claim=True)

    def signal(self, handle: Handle, signum: int) -> None:
        slot = self._slot_of(handle, claim=False)
        if slot is not None:
            self.driver.signal(slot, signum)

    def kill(self, handle: Handle) -> None:
        slot = self._slot_of(handle, claim=False)
        if slot is not None and not self.driver.kill(slot):
            logger.warning("freight: attempt %s has processes surviving SIGKILL", handle.attempt_id)

    def release(self, handle: Handle) -> None:
        slot = self._slot_of(handle, claim=False)
        if slot is None:
            return
        emptied = self.driver.kill(slot)
        with self._lock:
            del self._owner[slot.name]
            # a recovered attempt's shim may still hold the slot's lock for a moment
            if emptied and self._lock_slot(slot):
                self._free.append(slot.name)
                self._emptied.add(slot.name)
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

    def close(self) -> None:
        """Let go of every slot (running attempts keep theirs claimed through their shims)."""
        with self._lock:
            self._forget_all()

    def destroy(self) -> None:
        """Kill everything in every slot and delete the slots and the parent cgroup."""
        with self._lock:
            for name in set(self._slots) | set(self.driver.slot_names()):
                self.driver.kill(self._open(name))
                self.driver.remove(name)
            self._forget_all()
            self.driver.remove_parents()

    def _forget_all(self) -> None:
        _unlock_all(self._slots)
        self._free, self._stale, self._owner, self._emptied = [], set(), {}, set()

    def _take(self, attempt_id: str) -> Slot:
        with self._lock:
            while self._free:
                name = self._free.pop()
                if name in self._emptied and (slot := self._open(name)).lock is not None:
                    self._emptied.discard(name)
                    self._owner[name] = attempt_id
                    return slot
                self._emptied.discard(name)
                if self._usable(slot := self._open(name)):
                    self._owner[name] = attempt_id
                    return slot
                self._stale.add(name)
            now = time.monotonic()
            if now - self._stale_checked >= STALE_RECHECK:  # at most this often: each look costs syscalls
                self._stale_checked = now
                for name in sorted(self._stale):
                    if self._usable(slot := self._open(name)):
                        self._stale.discard(name)
                        self._owner[name] = attempt_id
                        return slot
            for _ in range(100):
                if self._usable(slot := self._new_slot()):
                    self._owner[slot.name] = attempt_id
                    return slot
                self._stale.add(slot.name)  # another runtime created the same name first
        raise TransientError(f"no usable cgroup slot under {self.driver.hierarchies[0]}")

    def _usable(self, slot: Slot) -> bool:
        return self._lock_slot(slot) and self.driver.is_empty(slot)

    def _lock_slot(self, slot: Slot) -> bool:
        """Claim the slot for this pool, unless another runtime or a running shim holds it."""
        if slot.lock is not None:
            return True
        try:
            fd = os.open(slot.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            slot.lock = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _LOCK_FLOOR)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
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
        """The handle's slot if this attempt holds it here; with `claim` (recovery only), take it if
        no attempt of this runtime does. Without it, a handle whose slot this runtime does not hold
        for it (released, or not recovered) touches nothing: its slot may be free or someone else's."""
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
            self._emptied.discard(name)
            self._owner[name] = handle.attempt_id
            return self._open(name)


def _unlock_all(slots: dict[str, Slot]) -> None:
    for slot in slots.values():
        if slot.lock is not None:
            os.close(slot.lock)
            slot.lock = None
    slots.clear()
