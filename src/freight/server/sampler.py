"""Samples capacity in use over time (for the capacity chart and /metrics) and submit->start latency.

A background thread, one sample every `interval` seconds, kept in a ring buffer (an hour by default).
The numbers come from the in-process scheduler's snapshot when it runs here, else from the store
(attempts holding resources) against this machine's capacity.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import and_, func, select

from freight.db.schema import attempts, events, jobs
from freight.jobs.eventfeed import EventFollower
from freight.jobs.scheduler import detect_capacity
from freight.jobs.service import JobService
from freight.jobs.states import JobState

log = logging.getLogger("freight.server.sampler")


@dataclass(frozen=True)
class Sample:
    t: float
    cpus: float
    used_cpus: float
    memory: int
    used_memory: int
    running: int
    queued: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _count(value: Any) -> int:
    """The snapshot's queue depth: a number, or a count per queue."""
    if isinstance(value, dict):
        return sum(int(v) for v in value.values())
    return int(value)


class Sampler:
    def __init__(
        self,
        service: JobService,
        *,
        interval: float = 2.0,
        keep: int = 1800,
        on_started: Callable[[float], None] | None = None,
    ) -> None:
        self.service = service
        self.interval = interval
        self.on_started = on_started
        self._samples: deque[Sample] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._capacity: tuple[float, int] | None = None
        # follows the events table for first starts; the first sample starts it
        self._starts = EventFollower()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="freight-sampler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:  # the store may blip; the next sample will do
                log.warning("capacity sample failed", exc_info=True)
            self._stop.wait(self.interval)

    def sample(self) -> Sample:
        """Take one sample now and keep it."""
        now = time.time()
        current = self.current(now)
        with self._lock:
            self._samples.append(current)
        self._observe_starts()
        return current

    def series(self, since: float | None = None) -> list[Sample]:
        with self._lock:
            return [s for s in self._samples if since is None or s.t > since]

    def current(self, now: float | None = None) -> Sample:
        now = time.time() if now is None else now
        scheduler = self.service.scheduler
        if scheduler is not None:
            snap = scheduler.snapshot()
            return Sample(
                t=now,
                cpus=float(snap["cpus"]),
                used_cpus=max(0.0, round(float(snap["used_cpus"]), 6)),
                memory=int(snap["memory"]),
                used_memory=max(0, int(snap["used_memory"])),
                running=int(snap["running"]),
                queued=_count(snap["queued"]),
            )
        if self._capacity is None:
            self._capacity = detect_capacity(self.service.settings)
        cpus, memory = self._capacity
        active = [JobState.STARTING.value, JobState.RUNNING.value]
        with self.service.engine.connect() as conn:
            used = conn.execute(
                select(
                    func.coalesce(func.sum(attempts.c.cpus), 0.0),
                    func.coalesce(func.sum(attempts.c.memory), 0),
                    func.count(),
                ).where(attempts.c.state.in_(active))
            ).one()
            queued = conn.execute(
                select(func.count()).select_from(jobs).where(jobs.c.state == JobState.QUEUED.value)
            ).scalar_one()
        return Sample(
            t=now,
            cpus=cpus,
            used_cpus=round(float(used[0]), 6),
            memory=memory,
            used_memory=int(used[1]),
            running=int(used[2]),
            queued=int(queued),
        )

    def _observe_starts(self) -> None:
        """Feed the submit->start latency of jobs whose first attempt started since the last sample
        to the histogram. Follows the events table (jobs/eventfeed.py: a start that commits after
        later events on PostgreSQL is still read, by the next sample)."""
        if self.on_started is None:
            return
        now = time.monotonic()
        with self.service.engine.connect() as conn:
            if not self._starts.started:
                self._starts.start(conn, now)
                return
            rows = self._starts.read(
                conn,
                now,
                [events.c.id, events.c.at, jobs.c.submitted_at],
                match=and_(
                    events.c.to_state == JobState.RUNNING.value,
                    events.c.from_state == JobState.STARTING.value,
                    events.c.attempt == 1,
                    # a re-attach after a restart carries a detail; a fresh start does not
                    events.c.detail.is_(None),
                    jobs.c.id.is_not(None),
                ),
                select_from=events.outerjoin(jobs, jobs.c.id == events.c.job_id),
            )
        for row in rows:
            self.on_started(max(0.0, row.at - row.submitted_at))
