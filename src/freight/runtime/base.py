"""The runtime contract: start one attempt, learn how it ended, stop it, re-attach after a restart.

A runtime never touches the store. The scheduler persists each `Handle` (as JSON) before it relies on
it, so a restarted scheduler can hand the handle back to `recover`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Limits:
    cpus: float
    memory: int
    pids: int = 1024


@dataclass(frozen=True)
class Mount:
    """A host path seen inside a container at `target`."""

    source: str
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class Container:
    """Run the attempt's argv inside this OCI image (see runtime/container.py)."""

    #: a pinned reference: REGISTRY/NAME@sha256:..., or a local image id
    image: str
    #: "none" (default: no network at all), "host" or "bridge"
    network: str = "none"
    mounts: tuple[Mount, ...] = ()


@dataclass(frozen=True)
class AttemptRequest:
    """One attempt to run. `attempt_id` is unique and names the attempt's record directory."""

    attempt_id: str
    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    limits: Limits
    log_path: Path
    #: (uid, gid) the job runs as, with no supplementary groups; None: the runtime's own user
    user: tuple[int, int] | None = None
    #: run argv in this container image instead of directly on the host
    container: Container | None = None
    #: the node the scheduler placed it on (a cluster runtime starts it there; a local one ignores it)
    node: str | None = None


@dataclass(frozen=True)
class Handle:
    """Enough to find a running attempt again after the scheduler restarts. JSON-serialisable."""

    attempt_id: str
    #: pid of the shim that waits for the job and records its exit; the job itself is its child.
    shim_pid: int
    #: the shim's start time (clock ticks since boot, /proc/PID/stat field 22): guards against pid reuse.
    shim_start: int
    #: directory holding the shim's records (pid, status, lock).
    record_dir: str
    #: "cgroup-v1", "cgroup-v2" or "rlimits".
    isolation: str
    #: the cgroup slot the job runs in, when isolation is a cgroup.
    slot: str | None = None
    #: baseline of the slot's OOM-kill counter when the attempt started.
    oom_base: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Handle:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, measured, never guessed."""

    exit_code: int | None
    signal: int | None
    #: True only when the kernel's OOM killer acted in the attempt's cgroup (its oom_kill counter rose).
    oom_killed: bool
    peak_memory: int | None
    cpu_seconds: float | None
    started_at: float
    ended_at: float
    #: set when the command could not be started at all (e.g. "no such file: foo").
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.oom_killed and self.error is None


class Recovered(StrEnum):
    RUNNING = "running"
    #: no process and no exit record: the attempt is lost.
    VANISHED = "vanished"


class Runtime(Protocol):
    """Runs attempts. All methods are non-blocking unless they say otherwise."""

    #: Human description, e.g. "cgroup v1 (memory, cpu, cpuacct, pids)" or "rlimits (no cgroups)".
    description: str

    def start(self, request: AttemptRequest) -> Handle:
        """Start the attempt; returns once the shim runs. Raises FreightError if it cannot start."""
        ...

    def poll(self, handle: Handle) -> Outcome | None:
        """The outcome if the attempt has ended (its exit is recorded), else None."""
        ...

    def wait(self, handle: Handle, timeout: float | None = None) -> Outcome | None:
        """Block until the attempt ends or `timeout` passes."""
        ...

    def signal(self, handle: Handle, signum: int) -> None:
        """Send `signum` to every process of the attempt (the whole cgroup or process group)."""
        ...

    def terminate(self, handle: Handle) -> None:
        """Ask the attempt to stop: SIGTERM to every process of it; a job that has not exec'ed yet
        (it is just being started) never runs its command. kill() follows after the grace."""
        ...

    def kill(self, handle: Handle) -> None:
        """SIGKILL every process of the attempt, children and grandchildren included."""
        ...

    def recover(self, handle: Handle) -> Outcome | Recovered:
        """After a restart: the outcome if it ended meanwhile, RUNNING if still running, else VANISHED."""
        ...

    def release(self, handle: Handle) -> None:
        """Give back what the attempt held (its cgroup slot) once its outcome has been persisted."""
        ...

    def fileno(self, handle: Handle) -> int | None:
        """A file descriptor that becomes readable when the attempt ends (a pidfd), if available."""
        ...

    def usage(self, handle: Handle) -> tuple[int | None, float | None]:
        """Current (memory bytes, cpu seconds) of a running attempt, when measurable."""
        ...
