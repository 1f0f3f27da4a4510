"""Why a queued job waits, said on reading where the scheduler has not said (or cannot): its queue is
paused, or no scheduler serves the store. Never stored: it may change. The job service
(jobs/explain.py) and the quick listing (jobs/listing.py) both say it through this one rule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from freight.jobs.states import JobState


class Waiting(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def state(self) -> JobState: ...
    @property
    def reason(self) -> str | None: ...


def waiting_reasons(jobs: Iterable[Waiting], *, paused: set[str], scheduled: bool) -> dict[str, str]:
    """The reason each queued job of `jobs` waits, by id, where there is one to add."""
    reasons: dict[str, str] = {}
    for job in jobs:
        if job.state is not JobState.QUEUED:
            continue
        if job.queue in paused and (job.reason is None or job.reason.startswith("waiting for capacity")):
            reasons[job.id] = (
                f"queue {job.queue} is paused (resume it: `freight queues set {job.queue} --resume`)"
            )
        elif not scheduled and job.reason is None:
            reasons[job.id] = "no scheduler is running (start one with `freight up`)"
    return reasons
