"""The pool of reusable cgroup slots: a reused slot looks fresh to the next attempt."""

from __future__ import annotations

import sys
from pathlib import Path

from freight.config import Settings
from freight.runtime import create_runtime
from freight.runtime.base import Limits, Recovered
from freight.runtime.cgroups import Slot
from freight.runtime.process import ShimRuntime
from freight.runtime.slots import SlotPool
from tests.runtime.conftest import MAKE_SETTINGS
from tests.runtime.helpers import read, request, slot_dir

MiB = 1 << 20
HOG = [sys.executable, "-c", "data = b'x' * (200 << 20)"]


def test_reuse_leaks_neither_oom_state_nor_peak_memory(runtime: ShimRuntime, tmp_path: Path) -> None:
    first = runtime.start(request(tmp_path, HOG, memory="64M"))
    outcome = runtime.wait(first, timeout=60)
    assert outcome is not None and outcome.oom_killed and outcome.peak_memory is not None
    assert outcome.peak_memory > 56 * MiB
    runtime.release(first)

    second = runtime.start(request(tmp_path, ["true"], memory="64M"))
    assert second.slot == first.slot  # the slot just released is the one reused
    assert second.oom_base > first.oom_base  # the slot's OOM counter stays; the baseline moves
    after = runtime.wait(second, timeout=30)
    assert after is not None and after.ok and not after.oom_killed
    assert after.peak_memory is not None and after.peak_memory < 8 * MiB
    runtime.release(second)


def test_page_cache_left_by_an_attempt_is_not_the_next_ones_peak(
    runtime: ShimRuntime, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    first = runtime.start(request(tmp_path, ["sh", "-c", f"head -c 48M /dev/zero > {data}"]))
    outcome = runtime.wait(first, timeout=60)
    assert outcome is not None and outcome.ok
    assert outcome.peak_memory is not None and outcome.peak_memory > 40 * MiB  # the file's pages count
    runtime.release(first)

    second = runtime.start(request(tmp_path, ["true"]))
    assert second.slot == first.slot
    after = runtime.wait(second, timeout=30)
    assert after is not None and after.peak_memory is not None and after.peak_memory < 8 * MiB
    runtime.release(second)


def test_limits_change_with_the_attempt_and_are_written_only_when_they_change(
    runtime: ShimRuntime, tmp_path: Path
) -> None:
    memory_file = "memory.limit_in_bytes"
    first = runtime.start(request(tmp_path, ["true"], memory="64M", cpus=2))
    assert runtime.wait(first, timeout=30) is not None
    assert read(slot_dir(runtime, "memory", first) / memory_file) == str(64 * MiB)
    assert read(slot_dir(runtime, "cpu", first) / "cpu.cfs_quota_us") == "200000"
    runtime.release(first)

    second = runtime.start(request(tmp_path, ["true"], memory="96M", cpus=0.25))
    assert second.slot == first.slot
    assert read(slot_dir(runtime, "memory", second) / memory_file) == str(96 * MiB)
    assert read(slot_dir(runtime, "memory", second) / "memory.memsw.limit_in_bytes") == str(96 * MiB)
    assert read(slot_dir(runtime, "cpu", second) / "cpu.cfs_quota_us") == "25000"
    assert runtime.wait(second, timeout=30) is not None
    runtime.release(second)

    # nobody else writes a slot's files, so an unchanged limit is not written again: a value set
    # behind the runtime's back survives the next start with the same limits
    (slot_dir(runtime, "memory", second) / memory_file).write_text(str(80 * MiB))
    third = runtime.start(request(tmp_path, ["true"], memory="96M", cpus=0.25))
    assert third.slot == second.slot
    assert read(slot_dir(runtime, "memory", third) / memory_file) == str(80 * MiB)
    assert runtime.wait(third, timeout=30) is not None
    runtime.release(third)


def test_a_restarted_runtime_never_takes_a_running_attempts_slot(
    runtime: ShimRuntime, settings: Settings, tmp_path: Path
) -> None:
    """Even before the job has joined its cgroup: the shim holds the slot's claim from the start."""
    for _ in range(10):
        busy = runtime.start(request(tmp_path, ["sleep", "300"]))
        runtime.close()  # the scheduler goes away; its attempt runs on
        restarted = create_runtime(settings)  # knows nothing of `busy` until it recovers it
        other = restarted.start(request(tmp_path, ["true"]))
        assert other.slot != busy.slot
        assert restarted.wait(other, timeout=30) is not None
        restarted.release(other)
        assert restarted.recover(busy) is Recovered.RUNNING
        restarted.kill(busy)
        assert restarted.wait(busy, timeout=30) is not None
        restarted.release(busy)
        restarted.close()


def test_runtimes_sharing_a_cgroup_parent_never_share_a_slot(
    make_settings: MAKE_SETTINGS, tmp_path: Path
) -> None:
    """Two runtimes with different homes (think: two test sessions) and one cgroup parent."""
    first = create_runtime(make_settings())
    second = create_runtime(make_settings().with_home(tmp_path / "other-home"))
    try:
        done = first.start(request(tmp_path, ["true"]))
        assert first.wait(done, timeout=30) is not None
        first.release(done)  # free, but still first's
        mine = second.start(request(tmp_path, ["true"]))
        assert mine.slot != done.slot
        assert second.wait(mine, timeout=30) is not None
        second.release(mine)
    finally:
        first.close()
        second.close()


def test_prewarm_creates_free_slots(runtime: ShimRuntime) -> None:
    assert isinstance(runtime.isolation, SlotPool)
    runtime.prewarm(3)
    assert len(runtime.isolation.driver.slot_names()) >= 3


def test_a_slot_emptied_by_release_is_reused_without_reading_its_members_again(
    runtime: ShimRuntime, tmp_path: Path
) -> None:
    pool = runtime.isolation
    assert isinstance(pool, SlotPool)
    reads: list[str] = []
    is_empty = pool.driver.is_empty

    def counting(slot: Slot) -> bool:
        reads.append(slot.name)
        return is_empty(slot)

    pool.driver.is_empty = counting  # type: ignore[method-assign]
    first = runtime.start(request(tmp_path, ["true"]))
    assert runtime.wait(first, timeout=30) is not None
    runtime.release(first)  # kills until empty: the pool knows it is empty
    reads.clear()
    second = runtime.start(request(tmp_path, ["true"]))
    assert second.slot == first.slot and reads == []
    assert runtime.wait(second, timeout=30) is not None

    placement = pool.place("never-started", Limits(cpus=1.0, memory=64 * MiB))
    pool.unplace("never-started", placement)  # back without release: looked at again when taken
    runtime.release(second)
    reads.clear()
    third = pool.place("third", Limits(cpus=1.0, memory=64 * MiB))
    assert third.slot == second.slot and reads == []
    pool.unplace("third", third)
    fourth = pool.place("fourth", Limits(cpus=1.0, memory=64 * MiB))
    assert fourth.slot == third.slot and reads == [fourth.slot]
    pool.unplace("fourth", fourth)
