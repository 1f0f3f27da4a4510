"""Timers: timeouts (SIGTERM, then SIGKILL after the grace) and retry backoffs that elapsed."""

from __future__ import annotations

from freight.jobs.scheduler.apply import Effects
from freight.jobs.scheduler.decide import Watched, due_timers
from freight.jobs.scheduler.state import HOLD_RUNNING, Running, SchedulerState
from freight.jobs.states import JobState
from freight.jobs.store import (
    Batch,
)


class Timers(SchedulerState):
    def _next_timer_in(self, now: float) -> float:
        wait = self.poll_interval
        if self._held is not None:
            wait = min(wait, HOLD_RUNNING)
        if self.delayed:
            wait = min(wait, self.delayed[0][0] - now)
        for run in self.running.values():
            if run.kill_at is not None:
                wait = min(wait, run.kill_at - now)
            elif run.deadline is not None and run.stop_reason is None:
                wait = min(wait, run.deadline - now)
            if run.fd is None:
                wait = min(wait, 0.05)  # no pidfd: poll for the exit record
        return max(wait, 0.0)

    def _timers(self, batch: Batch, actions: Effects, now: float) -> None:
        watched = [Watched(r.job_id, r.deadline, r.stop_reason, r.kill_at) for r in self.running.values()]
        plan = due_timers(watched, self.delayed, now)
        for job_id in plan.kill:
            run = self.running[job_id]
            actions.kill.append(run)
            run.kill_at = now + 1.0  # keep killing until the exit is recorded
        for job_id in plan.time_out:
            self._request_stop(self.running[job_id], "timeout", batch, now)
        for job_id in plan.requeue:
            job = self.jobs.get(job_id)
            if job is None or job.state is not JobState.RETRYING:
                continue
            job.not_before = None
            batch.move(job, JobState.QUEUED, now, "backoff elapsed")
            self.queues.push(job.queue, job.id, job.priority)

    def _request_stop(self, run: Running, reason: str, batch: Batch, now: float) -> None:
        job = self.jobs[run.job_id]
        run.stop_reason = reason
        # Persisted with this tick's commit, before the signal: a restart knows why it died.
        batch.stop_reasons.append({"b_id": run.attempt_id, "stop_reason": reason})
        run.kill_at = now + job.spec.grace
        self._pending_term.append(run)
