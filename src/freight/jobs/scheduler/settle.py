"""Settle: an attempt's outcome recorded, then retried per policy or made the job's final state
(dependents told)."""

from __future__ import annotations

import heapq
import logging
import os
from typing import Any

from freight.jobs.outcome import classify, should_retry
from freight.jobs.scheduler.apply import Effects
from freight.jobs.scheduler.state import Running, SchedulerState
from freight.jobs.states import JobState
from freight.jobs.store import (
    Batch,
    JobRecord,
)
from freight.runtime.base import Outcome

log = logging.getLogger("freight.scheduler")
#: free bytes below which a failed job's log disk counts as full
LOW_DISK = 64 * 1024


class Settle(SchedulerState):
    def _finish(
        self, job: JobRecord, run: Running, outcome: Outcome, batch: Batch, actions: Effects, now: float
    ) -> None:
        self._unwatch(run)
        self.running.pop(job.id, None)
        self._discharge(job, run)
        state, reason = classify(outcome, run.stop_reason, job.spec)
        if state is JobState.FAILED:
            reason = self._name_full_disk(job, run, reason)
        # When it ended by its shim's record, not when this scheduler learned it (after a restart,
        # that can be much later); but never before the start this scheduler stamped once the spawn
        # returned (a short job can be over by then) nor after now.
        ended_at = outcome.ended_at if 0 < outcome.ended_at <= now else now
        if run.started_at is not None:
            ended_at = max(ended_at, run.started_at)
        batch.ended_attempts.append(
            {
                "b_id": run.attempt_id,
                "state": state.value,
                "ended_at": ended_at,
                "exit_code": outcome.exit_code,
                "signal": outcome.signal,
                "oom_killed": outcome.oom_killed,
                "peak_memory": outcome.peak_memory,
                "cpu_seconds": outcome.cpu_seconds,
                "error": outcome.error,
            }
        )
        job.exit_code = outcome.exit_code
        if run.handle is not None:
            actions.release.append(run.handle)
        self._settle(job, state, outcome.exit_code, reason, batch, now, ended_at=ended_at)

    def _name_full_disk(self, job: JobRecord, run: Running, reason: str | None) -> str | None:
        """A failed job whose log disk is full most likely failed writing its output (`echo`
        exits 1 on ENOSPC, and its complaint is lost with the rest): say so, here and in our log."""
        path = self.settings.log_path(job.id, run.number)
        try:
            stat = os.statvfs(path.parent)
        except OSError:
            return reason
        free = stat.f_bavail * stat.f_frsize
        if free >= LOW_DISK:
            return reason
        log.error(
            "job %s failed with its log disk full: %d bytes free at %s (ENOSPC)", job.id, free, path.parent
        )
        return f"{reason}; no space left on the log disk ({path.parent}, ENOSPC): its output was cut short"

    def _settle(
        self,
        job: JobRecord,
        state: JobState,
        exit_code: int | None,
        reason: str | None,
        batch: Batch,
        now: float,
        *,
        ended_at: float | None = None,
    ) -> None:
        """An attempt ended in `state`: retry per policy, or make it the job's final state."""
        self.running.pop(job.id, None)
        if should_retry(state, exit_code, job.attempts, job.spec):
            delay = job.spec.retry.delay(job.attempts, self.rng())
            job.not_before = now + delay
            job.reason = f"attempt {job.attempts} {reason or state.value}; retrying in {delay:.1f}s"
            batch.move(job, JobState.RETRYING, now, job.reason)
            heapq.heappush(self.delayed, (job.not_before, job.id))
            return
        job.ended_at = now if ended_at is None else ended_at
        job.reason = reason
        self._terminal(job, state, batch, now, reason)

    def _terminal(
        self, job: JobRecord, state: JobState, batch: Batch, now: float, detail: str | None
    ) -> None:
        batch.move(job, state, now, detail)
        self.queues.discard(job.queue, job.id)
        self.waiting.pop(job.id, None)
        self.jobs.pop(job.id, None)
        self._notify_dependents(job, batch, now)

    def _end_lost(self, job: JobRecord, number: int, batch: Batch, now: float, why: str) -> None:
        batch.ended_attempts.append(ended_row(f"{job.id}-{number}", JobState.LOST.value, now, None, why))
        self._settle(job, JobState.LOST, None, f"lost: {why}", batch, now)


def ended_row(
    attempt_id: str, state: str, now: float, exit_code: int | None, error: str | None
) -> dict[str, Any]:
    return {
        "b_id": attempt_id,
        "state": state,
        "ended_at": now,
        "exit_code": exit_code,
        "signal": None,
        "oom_killed": False,
        "peak_memory": None,
        "cpu_seconds": None,
        "error": error,
    }
