"""Recovery on start: re-attach to attempts that still run, settle those that ended while no
scheduler ran, then admit what waits (the loop's collections are a cache rebuilt from the store)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from freight.db.schema import attempts, jobs
from freight.jobs.scheduler.apply import Effects
from freight.jobs.scheduler.decide import Step, recovery_step
from freight.jobs.scheduler.events import (
    observe_attempt,
)
from freight.jobs.scheduler.settle import ended_row
from freight.jobs.scheduler.state import Running, SchedulerState
from freight.jobs.states import JobState
from freight.jobs.store import (
    Batch,
    JobRecord,
    load_jobs,
)


class Recovery(SchedulerState):
    def recover(self) -> None:
        """Re-attach to attempts that are still running and settle those that ended meanwhile."""
        now = self.clock()
        batch = Batch()
        with self.engine.connect() as conn:
            self._load_queues(conn)
            self.changes.restart(conn, now)  # before the scan: what commits after it is in the feed
            rows = conn.execute(
                select(jobs.c.id).where(jobs.c.state.in_([s.value for s in JobState if not s.terminal]))
            ).all()
            records = load_jobs(conn, [r.id for r in rows])
            active = [j for j in records if j.state.active]
            current = {f"{j.id}-{j.attempts}" for j in active}
            attempt_rows = {
                r.job_id: r for r in conn.execute(select(attempts).where(attempts.c.id.in_(current)))
            }
        actions = Effects()
        for job in records:
            self.jobs[job.id] = job
        for job in active:
            self._recover_active(job, attempt_rows.get(job.id), batch, actions, now)
        # Waiting jobs, and active ones recovery sent back to the queue; not those it just settled
        # (they left self.jobs, or went to the retry timer already).
        was_active = {j.id for j in active}
        waiting = [
            j
            for j in records
            if self.jobs.get(j.id) is j
            and (j.state is JobState.QUEUED or (j.state is JobState.RETRYING and j.id not in was_active))
        ]
        # Commit what recovery settled first: a dependency that ended while no scheduler ran has left
        # self.jobs, so admitting reads its state from the store, which must already say it ended
        # (else its dependents would wait for an end that has passed).
        self._commit(batch, now)
        batch = Batch()
        with self.engine.connect() as conn:
            self._admit(waiting, conn, batch, now)
        self._commit(batch, now)
        self._act(actions, now)
        # logs of attempts that ended before the last scheduler could archive them
        self.archiver.catch_up()

    def _recover_active(self, job: JobRecord, row: Any, batch: Batch, actions: Effects, now: float) -> None:
        attempt_id = row.id if row is not None else f"{job.id}-{job.attempts}"
        mine = self.nodes if self.nodes.remote else self.node_name
        seen = observe_attempt(self.runtime, self.settings.run_dir, attempt_id, row, mine)
        step = recovery_step(seen, mine, running=job.state is JobState.RUNNING)
        if step.step is Step.REQUEUE:
            # It never ran: it does not count against the retry policy, and its attempt (number
            # and row) is reused by the next claim instead of leaving a phantom attempt behind.
            if row is not None:
                batch.dropped_attempts.append(row.id)
                job.attempts = row.number - 1
            batch.move(job, JobState.QUEUED, now, step.reason)
            return
        if step.step is Step.LOST_FOR_GOOD:
            batch.ended_attempts.append(ended_row(row.id, JobState.LOST.value, now, None, step.reason))
            job.ended_at = now
            job.reason = f"lost: {step.reason}"
            self._terminal(job, JobState.LOST, batch, now, job.reason)
            return
        if step.step is Step.LOST:
            if seen.handle is not None and seen.runtime_error is not None:
                # it may still run: stop it before the retry policy can start it again
                self._guarded("kill", row.id, self.runtime.kill, seen.handle)
            self._end_lost(job, row.number, batch, now, step.reason)
            return
        run = Running(
            job_id=job.id,
            attempt_id=row.id,
            number=row.number,
            cpus=row.cpus,
            memory=row.memory,
            handle=seen.handle,
            started_at=row.started_at or now,
            stop_reason=row.stop_reason,
            node=row.node or self.node_name,
        )
        if seen.handle is not None and seen.handle_from_file:
            batch.running_attempts.append(
                {
                    "b_id": row.id,
                    "state": "running",
                    "handle": seen.handle.to_json(),
                    "started_at": run.started_at,
                }
            )
        self._charge(job, run)  # _finish discharges it
        if step.step is Step.FINISH:
            assert step.outcome is not None
            if seen.handle is None:
                run.started_at = step.outcome.started_at
                # after the commit only: a crash before it must find the record again
                actions.remove_records.append(str(self.settings.run_dir / row.id))
            self._finish(job, run, step.outcome, batch, actions, now)
            return
        if job.spec.timeout is not None:
            run.deadline = run.started_at + job.spec.timeout
        if run.stop_reason:
            run.kill_at = now  # it was being stopped when the old scheduler went away
        if step.step is Step.ADOPT:
            run.orphan_dir = str(self.settings.run_dir / row.id)
        else:
            self._watch(run)
        if job.state is JobState.STARTING:
            batch.move(job, JobState.RUNNING, now, step.reason)
