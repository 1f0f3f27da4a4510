"""Sync: what other processes changed (submissions, retries, cancellations, queue settings), read from
the change feed or a full rescan, and admitting waiting jobs: to the retry timer, to wait on their
dependencies, or into their queue."""

from __future__ import annotations

import heapq
from typing import Any

from sqlalchemy import select

from freight.db.schema import jobs, queues
from freight.jobs.scheduler.state import SchedulerState
from freight.jobs.states import JobState
from freight.jobs.store import (
    Batch,
    JobRecord,
    load_jobs,
)

#: the states of jobs that wait for this scheduler (to be placed, or for their retry backoff)
_WAITING = (JobState.QUEUED.value, JobState.RETRYING.value)


class Sync(SchedulerState):
    def _load_queues(self, conn: Any) -> None:
        for row in conn.execute(select(queues)):
            self.queues.configure(row.name, priority=row.priority, weight=row.weight, paused=row.paused)

    def _sync(self, batch: Batch, now: float) -> None:
        self._last_sync = now
        with self.engine.connect() as conn:
            self._load_queues(conn)
            if self.changes.full_due(now):
                self._sync_all(conn, batch, now)
            else:
                self._sync_changes(conn, batch, now)
            # by primary key, among the jobs running here: its cost follows what runs, not the table
            held = list(self.running)
            cancels = [
                row
                for start in range(0, len(held), 500)
                for row in conn.execute(
                    select(jobs.c.id).where(
                        jobs.c.id.in_(held[start : start + 500]),
                        jobs.c.cancel_requested.is_(True),
                        jobs.c.state.in_([JobState.STARTING.value, JobState.RUNNING.value]),
                    )
                )
            ]
        for row in cancels:
            run = self.running.get(row.id)
            if run is not None and run.stop_reason is None:
                self._request_stop(run, "cancel", batch, now)
            batch.clear_cancel.append(row.id)

    def _sync_all(self, conn: Any, batch: Batch, now: float) -> None:
        """Every waiting job in the store against those held here (the change feed's safety net)."""
        self.changes.restart(conn, now)
        rows = conn.execute(select(jobs.c.id, jobs.c.state).where(jobs.c.state.in_(_WAITING))).all()
        in_store = {r.id for r in rows}
        # Jobs we hold as waiting that someone else moved on (cancelled by another process).
        for job_id in [j for j, rec in self.jobs.items() if not rec.state.active and j not in in_store]:
            self._forget_external(job_id, conn, batch, now)
        self._load_new([r.id for r in rows if r.id not in self.jobs], conn, batch, now)

    def _sync_changes(self, conn: Any, batch: Batch, now: float) -> None:
        """Only the jobs whose state changed since the last look: new or retried ones to admit, and
        waiting ones another process moved on (this scheduler's own moves find them active or gone)."""
        new_ids = []
        for change in self.changes.read(conn, now):
            held = self.jobs.get(change.job_id)
            if held is None:
                if change.to_state in _WAITING:
                    new_ids.append(change.job_id)
            elif not held.state.active and change.to_state not in _WAITING:
                self._forget_external(change.job_id, conn, batch, now)
        self._load_new(new_ids, conn, batch, now)

    def _load_new(self, job_ids: list[str], conn: Any, batch: Batch, now: float) -> None:
        if not job_ids:
            return
        records = [j for j in load_jobs(conn, job_ids) if j.state.value in _WAITING]
        for job in records:
            self.jobs[job.id] = job
        self._admit(records, conn, batch, now)

    def _admit_submitted(self, batch: Batch, now: float) -> None:
        records = []
        while self._submitted:
            job = self._submitted.popleft()
            if job.id not in self.jobs and job.state is JobState.QUEUED:
                self.jobs[job.id] = job
                records.append(job)
        if not records:
            return
        if any(job.spec.depends_on for job in records):
            with self.engine.connect() as conn:
                self._admit(records, conn, batch, now)
        else:
            self._admit(records, None, batch, now)

    def _forget_external(self, job_id: str, conn: Any, batch: Batch, now: float) -> None:
        job = self.jobs.pop(job_id)
        self.queues.discard(job.queue, job_id)
        self.waiting.pop(job_id, None)
        fresh = load_jobs(conn, [job_id])
        if fresh and fresh[0].state.terminal:
            self._notify_dependents(fresh[0], batch, now)

    def _admit(self, records: list[JobRecord], conn: Any, batch: Batch, now: float) -> None:
        """Route waiting jobs: to the retry timer, to wait on dependencies, or into their queue."""
        # A job's dependencies are in its spec; only those not held here need a look at the store.
        by_job = {
            j.id: [(d.job, d.condition) for d in j.spec.depends_on] for j in records if j.spec.depends_on
        }
        unknown = {dep for deps in by_job.values() for dep, _ in deps if dep not in self.jobs}
        dep_states = {j.id: j.state for j in load_jobs(conn, unknown)} if unknown else {}
        for job in records:
            if job.broken is not None:
                job.ended_at = now
                job.reason = f"its spec cannot be read: {job.broken}"
                self._terminal(job, JobState.FAILED, batch, now, job.reason)
                continue
            if job.state is JobState.RETRYING:
                heapq.heappush(self.delayed, (job.not_before or now, job.id))
                continue
            pending: set[str] = set()
            failed_dep: str | None = None
            for dep, cond in by_job.get(job.id, []):
                dep_job = self.jobs.get(dep)
                state = dep_job.state if dep_job is not None else dep_states.get(dep)
                if state is None:
                    failed_dep = dep  # dependency deleted: cannot be satisfied
                elif not state.terminal:
                    pending.add(dep)
                    self.dependents.setdefault(dep, []).append((job.id, cond))
                elif cond == "after_ok" and state is not JobState.SUCCEEDED:
                    failed_dep = dep
            if failed_dep is not None:
                self._cascade(job, failed_dep, batch, now)
            elif pending:
                self.waiting[job.id] = pending
                self._set_reason(
                    job, f"waiting for {len(pending)} dependenc{'y' if len(pending) == 1 else 'ies'}", batch
                )
            else:
                self.queues.push(job.queue, job.id, job.priority)

    def _cascade(self, job: JobRecord, dep: str, batch: Batch, now: float) -> None:
        job.ended_at = now
        job.reason = f"dependency {dep} did not succeed"
        self._terminal(job, JobState.CANCELLED, batch, now, job.reason)

    def _notify_dependents(self, job: JobRecord, batch: Batch, now: float) -> None:
        for dependent_id, cond in self.dependents.pop(job.id, []):
            dependent = self.jobs.get(dependent_id)
            pending = self.waiting.get(dependent_id)
            if dependent is None or pending is None:
                continue
            if cond == "after_ok" and job.state is not JobState.SUCCEEDED:
                self.waiting.pop(dependent_id, None)
                self._cascade(dependent, job.id, batch, now)
                continue
            pending.discard(job.id)
            if not pending:
                self.waiting.pop(dependent_id, None)
                self._set_reason(dependent, None, batch)
                self.queues.push(dependent.queue, dependent.id, dependent.priority)
