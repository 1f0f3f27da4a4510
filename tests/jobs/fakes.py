"""A fake runtime and clock for deterministic scheduler tests: the test says when an attempt ends,
how, and whether its spawn is held up; nothing depends on timing."""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from freight.runtime.base import AttemptRequest, Handle, Outcome, Recovered


@dataclass
class FakeClock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeRuntime:
    run_dir: Path
    description: str = "fake"
    #: while cleared, start() waits (a spawn in flight); set by default
    gate: threading.Event = field(default_factory=threading.Event)
    #: start() raises this once the gate opens (the process that asked is gone)
    dead: bool = False
    ended: dict[str, Outcome | Recovered] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gate.set()

    def handle(self, attempt_id: str) -> Handle:
        return Handle(attempt_id, 0, 0, str(self.run_dir / attempt_id), "fake")

    def start(self, request: AttemptRequest) -> Handle:
        self.gate.wait(60)
        if self.dead:
            raise RuntimeError("the runtime went away")
        (self.run_dir / request.attempt_id).mkdir(parents=True, exist_ok=True)
        self.started.append(request.attempt_id)
        return self.handle(request.attempt_id)

    def end(self, attempt_id: str, exit_code: int = 0, signal: int | None = None) -> None:
        self.ended[attempt_id] = Outcome(
            exit_code if signal is None else None, signal, False, None, None, 0, 0
        )

    def poll(self, handle: Handle) -> Outcome | None:
        status = self.ended.get(handle.attempt_id)
        return status if isinstance(status, Outcome) else None

    def wait(self, handle: Handle, timeout: float | None = None) -> Outcome | None:
        return self.poll(handle)

    def signal(self, handle: Handle, signum: int) -> None:
        self.end(handle.attempt_id, signal=signum)

    def terminate(self, handle: Handle) -> None:
        self.terminated.append(handle.attempt_id)
        self.end(handle.attempt_id, signal=15)

    def kill(self, handle: Handle) -> None:
        self.killed.append(handle.attempt_id)
        self.end(handle.attempt_id, signal=9)

    def recover(self, handle: Handle) -> Outcome | Recovered:
        return self.ended.get(handle.attempt_id, Recovered.RUNNING)

    def release(self, handle: Handle) -> None:
        self.released.append(handle.attempt_id)
        shutil.rmtree(handle.record_dir, ignore_errors=True)

    def fileno(self, handle: Handle) -> int | None:
        return None

    def usage(self, handle: Handle) -> tuple[int | None, float | None]:
        return None, None
