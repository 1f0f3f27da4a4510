"""Commit and act: a tick's batch committed (fenced), then the side effects: signals, releases,
spawns handed to the pool and collected on a later tick."""

from __future__ import annotations

import logging
from collections.abc import Callable

from freight.jobs.lease import LeaseLostError
from freight.jobs.scheduler.apply import Effects, Leader, commit
from freight.jobs.scheduler.events import (
    describe,
)
from freight.jobs.scheduler.spawn import attempt_request
from freight.jobs.scheduler.state import LEASE, LEASE_TTL, Running, SchedulerState
from freight.jobs.states import JobState
from freight.jobs.store import (
    Batch,
    JobRecord,
)
from freight.runtime import records
from freight.runtime.base import AttemptRequest, Handle, Outcome

log = logging.getLogger("freight.scheduler")


class Act(SchedulerState):
    def _commit(self, batch: Batch, now: float, *, notify: bool = True) -> bool:
        """Commit a tick's batch (fenced); True if there was one. `notify=False`: the caller tells
        the waiters itself (the tick does, once its spawns are handed over: a woken waiter must not
        take the interpreter from the spawn threads first)."""
        if not batch:
            return False
        try:
            lost = commit(self.engine, Leader(LEASE, self.holder, self.token, LEASE_TTL), batch, now)
        except LeaseLostError:
            self._step_down()
            raise
        self._last_lease = now
        ended = [job.id for job, _, new, _, _ in batch.transitions if new.terminal]
        if ended or any(new is JobState.QUEUED for _, _, new, _, _ in batch.transitions):
            self.ends.record(ended)
        if batch.ended_attempts:
            self.archiver.submit(row["b_id"] for row in batch.ended_attempts)
        for job_id in lost:
            # Someone else changed it first (e.g. cancelled it); their word stands.
            self._drop_claim(job_id)
        if notify and self.on_commit is not None:
            self.on_commit()
        return True

    def _drop_claim(self, job_id: str) -> None:
        job = self.jobs.pop(job_id, None)
        run = self.running.pop(job_id, None)
        if job is not None and run is not None and run.handle is None:
            self._discharge(job, run)
            run.attempt_id = ""  # _act skips it
        if job is not None:
            self.queues.discard(job.queue, job_id)

    def _act(self, actions: Effects, now: float) -> None:
        waiting: list[Running] = []  # stops asked for mid-spawn: signalled once the handle is collected
        # a node whose agent does not answer is not asked (that would hang the tick): the kill after
        # the grace is asked again every second, so it reaches the attempt once the node answers
        for run in self._pending_term:
            if run.handle is not None:
                if self.nodes.reachable(run.node):
                    self._guarded("stop", run.attempt_id, self.runtime.terminate, run.handle)
            elif self.running.get(run.job_id) is run:
                waiting.append(run)
        self._pending_term = waiting
        for run in actions.kill:
            if run.handle is not None and self.nodes.reachable(run.node):
                self._guarded("kill", run.attempt_id, self.runtime.kill, run.handle)
        self.spawner.release(actions.release)
        for record_dir in actions.remove_records:
            records.remove_record(record_dir)
        items: list[tuple[JobRecord, Running, AttemptRequest | str]] = []
        for job, run in actions.start:
            if not run.attempt_id:  # its claim lost to another writer
                continue
            try:
                items.append(
                    (job, run, attempt_request(job, run, self.settings, self._base_env, self.job_user))
                )
            except Exception as exc:  # e.g. a spec read back from the store that cannot be encoded
                log.exception("preparing attempt %s failed", run.attempt_id)
                items.append((job, run, describe(exc)))
        self.spawner.start(items)

    def _guarded(
        self, what: str, attempt_id: str, action: Callable[[Handle], object], handle: Handle
    ) -> None:
        """A side effect on one attempt: what it raises is logged and stays with that attempt (a stop
        or kill is asked again by the timers, and an exit is still reaped)."""
        try:
            action(handle)
        except Exception:
            log.exception("could not %s attempt %s", what, attempt_id)

    def _collect_spawned(self, batch: Batch, now: float) -> None:
        """Record attempts whose spawn finished: running with their handle, or failed to start."""
        for job, run, (handle, error, at) in self.spawner.collect():
            if handle is None and self._node_went_away(run):
                self.running.pop(job.id, None)
                self._discharge(job, run)
                self._end_lost(
                    job, run.number, batch, now, f"its node {run.node[:12]} was lost as it started"
                )
                continue
            if handle is None:
                outcome = Outcome(None, None, False, None, None, at, at, error=f"could not start: {error}")
                self._finish(job, run, outcome, batch, Effects(), now)
                continue
            run.handle = handle
            run.started_at = at
            if job.spec.timeout is not None:
                run.deadline = run.started_at + job.spec.timeout
            job.started_at = job.started_at or run.started_at
            batch.running_attempts.append(
                {"b_id": run.attempt_id, "state": "running", "handle": handle.to_json(), "started_at": at}
            )
            batch.move(job, JobState.RUNNING, now)
            self._watch(run)
