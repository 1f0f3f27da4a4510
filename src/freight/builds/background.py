"""Builds a server runs in the background: a git push (`builds.hooks`) or `POST /api/v1/builds`.

Each request gets a record (`BackgroundRun`: id, state, run id, error, times) answered at once, and a
thread that does the work. Work on the same key (a repository, a workspace folder) runs one at a time:
two builds writing the same `dist/` folders at once would clobber each other.

A workspace build (`start_build`) also records what its reporter saw (tasks starting and ending, their
logs, warnings) as events, so a remote `freight build` can print the same progress as a local one.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, TypeVar

from freight.builds.api import Builds
from freight.builds.fastpath import Checked, FastBuild
from freight.builds.feed import EventFeed
from freight.builds.plan import Plan
from freight.builds.progress import RecordingReporter
from freight.builds.runner import RunOptions, cancel_jobs, check_routes
from freight.errors import FreightError
from freight.jobs.client import JobClient

#: Finished records kept for status look-ups; older ones are forgotten (the run stays in the store).
KEEP_FINISHED = 500
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
#: States a record ends in.
ENDED = ("succeeded", "failed", "cancelled")


def new_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class BackgroundRun:
    id: str
    #: queued | running | succeeded | failed | cancelled
    state: str = "queued"
    run_id: str | None = None
    error: str | None = None
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def done(self) -> bool:
        return self.state in ENDED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def ended(self) -> None:
        """Called once the record's final state and end time are set."""


R = TypeVar("R", bound=BackgroundRun)


class BackgroundRuns:
    """Records by id, one thread per record, one record at a time per key."""

    def __init__(self, *, background: bool = True) -> None:
        self.background = background
        self.records: dict[str, BackgroundRun] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def start(self, record: R, key: str, work: Callable[[R], None]) -> R:
        """Register `record` and run `work(record)` (in a thread unless `background` is off)."""
        with self._guard:
            self._forget_old()
            self.records[record.id] = record
            lock = self._locks.setdefault(key, threading.Lock())
        if not self.background:
            self._run(record, lock, work)
            return record
        thread = threading.Thread(
            target=self._run, args=(record, lock, work), daemon=True, name=f"build-{record.id}"
        )
        with self._guard:
            self._threads[record.id] = thread
        thread.start()
        return record

    def get(self, record_id: str) -> BackgroundRun | None:
        return self.records.get(record_id)

    def join(self, record_id: str, timeout: float | None = None) -> BackgroundRun:
        thread = self._threads.get(record_id)
        if thread is not None:
            thread.join(timeout)
        return self.records[record_id]

    def _run(self, record: R, lock: threading.Lock, work: Callable[[R], None]) -> None:
        with lock:
            record.state = "running"
            record.started_at = time.time()
            try:
                work(record)
                if record.state == "running":  # the work may have said how it ended
                    record.state = "succeeded"
            except FreightError as exc:
                record.state = "failed"
                record.error = str(exc)
            except Exception as exc:
                record.state = "failed"
                record.error = f"{type(exc).__name__}: {exc}"
            record.ended_at = time.time()
            record.ended()
        with self._guard:
            self._threads.pop(record.id, None)

    def _forget_old(self) -> None:
        finished = [r for r in self.records.values() if r.done]
        for old in sorted(finished, key=lambda r: r.ended_at or 0.0)[: max(0, len(finished) - KEEP_FINISHED)]:
            del self.records[old.id]


@dataclass(kw_only=True)
class WorkspaceBuild(BackgroundRun):
    """A build of a workspace folder the server can read, started through the API."""

    workspace: str
    #: `RunSummary.to_dict()` once the run is over
    summary: dict[str, Any] | None = None
    #: what its reporter saw, long-polled by clients (GET /builds/{id}/events?wait=)
    events: EventFeed = field(default_factory=EventFeed)
    #: Set by `cancel()`; the runner stops starting tasks and cancels its jobs.
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("events", "cancelled")}

    def ended(self) -> None:
        self.events.close()

    def cancel(self, client: JobClient) -> list[str]:
        """Stop the build: nothing new starts, and every unfinished job it has is cancelled (the
        runner, seeing its jobs end cancelled, records the run as cancelled). The cancelled job ids."""
        self.cancelled.set()
        return cancel_jobs(client, self.id)


def start_build(
    runs: BackgroundRuns,
    builds: Builds,
    client: JobClient,
    plan: Plan,
    options: RunOptions,
) -> WorkspaceBuild:
    """Run `plan` in the background; the record's id is the run's, and its state is `failed` when a
    task failed."""
    publish = plan.ws.config.workspace.publish if options.publish is None else options.publish
    if publish:
        check_routes(builds.store, plan)  # a route a service holds: 409 now, nothing built
    record = WorkspaceBuild(id=new_id(), workspace=str(plan.ws.root))
    options = replace(options, run_id=record.id, cancel=record.cancelled)

    def work(build: WorkspaceBuild) -> None:
        summary = builds.builder(client, RecordingReporter(build.events)).run(plan, options)
        build.run_id = summary.id
        build.summary = summary.to_dict()
        if not summary.ok:
            build.state = "cancelled" if summary.cancelled else "failed"

    return runs.start(record, str(plan.ws.root), work)


def start_cached_build(
    runs: BackgroundRuns,
    builds: Builds,
    client: JobClient,
    fast: FastBuild,
    found: Checked,
    options: RunOptions,
    replan: Callable[[], Plan],
) -> WorkspaceBuild:
    """Answer a build the fast path found fully cached (`FastBuild.check`) in the background: outputs
    checked or restored, the run recorded in this server's store, no plan made. Should an entry turn
    out a miss when read, nothing has been reported yet: the build goes on as `start_build`'s would,
    with `replan()`'s plan."""
    record = WorkspaceBuild(id=new_id(), workspace=str(found.root))
    options = replace(options, run_id=record.id, cancel=record.cancelled)

    def work(build: WorkspaceBuild) -> None:
        reporter = RecordingReporter(build.events)
        summary = None
        # cancelled while it waited for its folder: the runner skips every task and records that,
        # where the fast path would restore outputs into the workspace and call it a success
        if not build.cancelled.is_set():
            summary = fast.answer(found, reporter, builds.store, run_id=build.id, trigger=options.trigger)
        if summary is None:
            summary = builds.builder(client, reporter).run(replan(), options)
        build.run_id = summary.id
        build.summary = summary.to_dict()
        if not summary.ok:
            build.state = "cancelled" if summary.cancelled else "failed"

    return runs.start(record, str(found.root), work)
