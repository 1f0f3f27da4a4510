"""Layouts this machine does not have (v2 controllers, co-mounted v1 controllers), on stand-in files.

This machine's unified hierarchy has no controllers, so the v2 driver cannot run on real cgroups
here; these tests pin the files and formats it reads and writes, per the kernel's cgroup-v2 docs.
"""

from __future__ import annotations

from pathlib import Path

from freight.runtime.base import Limits
from freight.runtime.cgroupfs import Mount, own_cgroups, read_mounts
from freight.runtime.cgroups import CgroupV2

MOUNTINFO = """\
24 30 0:22 / /sys rw,nosuid - sysfs sysfs rw
31 24 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:5 - cgroup cgroup rw,cpu,cpuacct
33 31 0:30 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 31 0:31 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
35 31 0:32 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
36 31 0:33 / /sys/fs/cgroup/my\\040unified rw - cgroup2 cgroup2 rw
37 31 0:30 /docker/abc /mnt/memory-again rw - cgroup cgroup rw,memory
"""


def test_mountinfo_co_mounted_controllers_escapes_and_namespaces(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    mounts = read_mounts(str(tmp_path / "mountinfo"))
    assert mounts == [
        Mount(1, Path("/sys/fs/cgroup/cpu,cpuacct"), "/", frozenset({"cpu", "cpuacct"})),
        Mount(1, Path("/sys/fs/cgroup/memory"), "/docker/abc", frozenset({"memory"})),
        Mount(1, Path("/sys/fs/cgroup/pids"), "/", frozenset({"pids"})),
        Mount(2, Path("/sys/fs/cgroup/my unified"), "/", frozenset()),
    ]
    memory = mounts[1]
    # without a cgroup namespace /proc/self/cgroup shows the full path; with one, it starts at "/"
    assert memory.dir_of("/docker/abc/worker") == Path("/sys/fs/cgroup/memory/worker")
    assert memory.dir_of("/") == Path("/sys/fs/cgroup/memory")


def test_own_cgroups_reads_v1_and_v2_lines(tmp_path: Path) -> None:
    (tmp_path / "cgroup").write_text("4:memory:/process_api/x\n2:cpu,cpuacct:/\n0::/init.scope\n")
    assert own_cgroups(str(tmp_path / "cgroup")) == {
        "memory": "/process_api/x",
        "cpu": "/",
        "cpuacct": "/",
        "": "/init.scope",
    }


def test_v2_slot_files(tmp_path: Path) -> None:
    slot_dir = tmp_path / "slot-0"
    slot_dir.mkdir()
    files = {
        "cgroup.procs": "",
        "memory.max": "max\n",
        "memory.swap.max": "max\n",
        "memory.peak": "0\n",
        "cpu.max": "max 100000\n",
        "pids.max": "max\n",
        "memory.events": "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\noom_group_kill 0\n",
        "cpu.stat": "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n",
    }
    for name, text in files.items():
        (slot_dir / name).write_text(text)
    driver = CgroupV2(tmp_path)
    slot = driver.open_slot("slot-0")
    assert slot.procs == (f"{slot_dir}/cgroup.procs",)
    assert slot.counters == (
        f"oom_kill:oom_kill:{slot_dir}/memory.events",
        f"cpu_us:usage_usec:{slot_dir}/cpu.stat",
        f"peak:+reset:{slot_dir}/memory.peak",
    )
    assert driver.prepare(slot, Limits(cpus=0.5, memory=64 << 20, pids=32)) == (2, 1234)
    assert (slot_dir / "memory.max").read_text() == str(64 << 20)
    assert (slot_dir / "cpu.max").read_text() == "50000 100000"
    assert (slot_dir / "pids.max").read_text() == "32"
    driver.prepare(slot, Limits(cpus=0, memory=0, pids=0))  # 0 means no limit
    assert [(slot_dir / f).read_text() for f in ("memory.max", "cpu.max", "pids.max")] == [
        "max",
        "max 100000",
        "max",
    ]
    assert driver.is_empty(slot)


def test_a_new_v2_slot_gets_no_swap(tmp_path: Path) -> None:
    """The kernel creates a cgroup's files; here a stand-in parent directory shows the write."""
    driver = CgroupV2(tmp_path)
    (tmp_path / "slot-1").mkdir()
    (tmp_path / "slot-1" / "memory.swap.max").write_text("max\n")
    driver._init_slot(tmp_path / "slot-1")
    assert (tmp_path / "slot-1" / "memory.swap.max").read_text() == "0"
