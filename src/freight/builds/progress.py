"""What a build tells the person watching it: tasks starting and ending, replayed logs, warnings."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Protocol, TextIO

from freight.builds.results import TaskResult
from freight.units import format_duration


class Reporter(Protocol):
    def started(self, total: int) -> None: ...

    def task_started(self, task: str, job_id: str | None) -> None: ...

    def task_finished(self, result: TaskResult) -> None: ...

    def warning(self, message: str) -> None: ...

    def info(self, message: str) -> None: ...

    def finished(self) -> None: ...


class NullReporter:
    def started(self, total: int) -> None:
        pass

    def task_started(self, task: str, job_id: str | None) -> None:
        pass

    def task_finished(self, result: TaskResult) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def finished(self) -> None:
        pass


class PlainReporter:
    """Line by line: each finished task's log (fresh or replayed from the cache), prefixed with its id.

    With `live`, a status line (`[7/12] running: a, b`) is redrawn in place between log lines.
    """

    def __init__(self, out: TextIO | None = None, *, logs: bool = True, live: bool | None = None) -> None:
        self.out = out or sys.stderr
        self.logs = logs
        self.live = self.out.isatty() if live is None else live
        self.total = 0
        self.done = 0
        self.running: dict[str, float] = {}
        self._lock = threading.Lock()
        self._status_shown = False

    def _clear_status(self) -> None:
        if self._status_shown:
            self.out.write("\r\x1b[2K")
            self._status_shown = False

    def _draw_status(self) -> None:
        if not self.live:
            return
        names = ", ".join(sorted(self.running)[:4]) + (" ..." if len(self.running) > 4 else "")
        self.out.write(f"\r\x1b[2K[{self.done}/{self.total}] running: {names or '-'}")
        self.out.flush()
        self._status_shown = True

    def _print(self, text: str) -> None:
        with self._lock:
            self._clear_status()
            self.out.write(text + "\n")
            self._draw_status()

    def started(self, total: int) -> None:
        self.total = total

    def task_started(self, task: str, job_id: str | None) -> None:
        with self._lock:
            self.running[task] = time.monotonic()
        self._print(f"{task}: started" + (f" (job {job_id})" if job_id else ""))

    def task_finished(self, result: TaskResult) -> None:
        with self._lock:
            self.running.pop(result.task, None)
            self.done += 1
        lines: list[str] = []
        if result.status == "noop":
            return
        if self.logs and result.log:
            text = result.log.decode(errors="replace").rstrip("\n")
            lines.extend(f"{result.task}: {line}" for line in text.splitlines())
        if result.status == "cached":
            head = f"cache hit ({result.cache}), replaying log; saved {format_duration(result.saved)}"
        elif result.status == "built":
            head = f"built in {format_duration(result.duration)}"
        else:
            head = result.status + (f": {result.reason}" if result.reason else "")
        self._print("\n".join([f"{result.task}: {head}", *lines]))

    def warning(self, message: str) -> None:
        self._print(f"WARNING: {message}")

    def info(self, message: str) -> None:
        self._print(message)

    def finished(self) -> None:
        with self._lock:
            self._clear_status()
            self.out.flush()


class EventSink(Protocol):
    def append(self, event: dict[str, Any], /) -> None: ...


class RecordingReporter:
    """Appends what it is told to `events` as JSON-ready dicts (a server-side build's progress), so a
    client can `replay` them through its own reporter and print what a local build prints."""

    def __init__(self, events: EventSink) -> None:
        self.events = events

    def started(self, total: int) -> None:
        self.events.append({"kind": "started", "total": total})

    def task_started(self, task: str, job_id: str | None) -> None:
        self.events.append({"kind": "task_started", "task": task, "job_id": job_id})

    def task_finished(self, result: TaskResult) -> None:
        data = {**result.to_dict(), "log": result.log.decode(errors="replace")}
        self.events.append({"kind": "task_finished", "result": data})

    def warning(self, message: str) -> None:
        self.events.append({"kind": "warning", "message": message})

    def info(self, message: str) -> None:
        self.events.append({"kind": "info", "message": message})

    def finished(self) -> None:
        self.events.append({"kind": "finished"})


def replay(event: dict[str, Any], reporter: Reporter) -> None:
    """Tell `reporter` what a RecordingReporter recorded."""
    kind = event.get("kind")
    if kind == "started":
        reporter.started(int(event["total"]))
    elif kind == "task_started":
        reporter.task_started(str(event["task"]), event.get("job_id"))
    elif kind == "task_finished":
        reporter.task_finished(TaskResult.from_dict(event["result"]))
    elif kind == "warning":
        reporter.warning(str(event["message"]))
    elif kind == "info":
        reporter.info(str(event["message"]))
    elif kind == "finished":
        reporter.finished()
