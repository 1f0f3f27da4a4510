"""What the shim runtime needs from an isolation mechanism (cgroup slots or rlimits)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from freight.runtime.base import Handle, Limits
from freight.runtime.records import ShimStatus


@dataclass(frozen=True)
class Placement:
    """Where an attempt will run, and the baselines its outcome is measured against."""

    slot: str | None
    oom_base: int
    #: the slot's CPU counter when the attempt starts (in the counter's own unit)
    cpu_base: int
    #: cgroup.procs files the job joins before exec
    procs: tuple[str, ...]
    #: counters the shim reads when the job ends ("name:field:path")
    counters: tuple[str, ...]
    #: rlimits the job sets before exec: "-" or "as=BYTES,nproc=N"
    rlimits: str
    #: a descriptor holding the slot's flock, for the shim to keep while the attempt lives
    lock: int | None = None


@dataclass(frozen=True)
class Measures:
    oom_killed: bool
    peak_memory: int | None
    cpu_seconds: float | None


class Isolation(Protocol):
    #: Handle.isolation: "cgroup-v1", "cgroup-v2" or "rlimits"
    kind: str
    description: str

    def place(self, attempt_id: str, limits: Limits) -> Placement:
        """Reserve and prepare what the attempt runs in (busy until release)."""
        ...

    def unplace(self, attempt_id: str, placement: Placement) -> None:
        """Give back a placement whose attempt never started."""
        ...

    def claim(self, handle: Handle) -> None:
        """After a restart: mark what a recovered attempt holds as its own again. Only recovered
        attempts and attempts started by this instance can be signalled, killed or released."""
        ...

    def signal(self, handle: Handle, signum: int) -> None: ...

    def kill(self, handle: Handle) -> None:
        """SIGKILL every process of the attempt; returns once they are gone (or given up on)."""
        ...

    def release(self, handle: Handle) -> None:
        """Kill whatever the attempt left behind and make its slot reusable."""
        ...

    def measure(self, handle: Handle, status: ShimStatus) -> Measures: ...

    def usage(self, handle: Handle) -> tuple[int | None, float | None]: ...

    def prewarm(self, count: int) -> None:
        """Have `count` slots ready before the first attempts need them."""
        ...

    def close(self) -> None:
        """Let go of what this instance holds; running attempts are not touched."""
        ...

    def destroy(self) -> None:
        """Kill everything still running and delete what the isolation created (slot cgroups)."""
        ...
