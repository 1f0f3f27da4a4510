"""Reap: watching running attempts for their exit (pidfds, exit records, a cluster's batched polls)
and turning what the runtime shows into outcomes."""

from __future__ import annotations

import contextlib
import logging
import selectors

from freight.jobs.scheduler.apply import Effects
from freight.jobs.scheduler.events import (
    describe,
    observe_orphan,
    outcome_of_record,
)
from freight.jobs.scheduler.state import Running, SchedulerState
from freight.jobs.store import (
    Batch,
    JobRecord,
)
from freight.runtime.base import Handle, Outcome, Recovered

log = logging.getLogger("freight.scheduler")
#: failed polls in a row after which an attempt on a live cluster node counts as unwatchable
NODE_POLL_ERRORS = 20


class Reap(SchedulerState):
    def _reap(self, batch: Batch, actions: Effects, now: float) -> None:
        polled = self._poll_many()
        #: the batched poll was asked (a cluster's runtime): it alone answers for the nodes' attempts
        polled_all = polled is not None
        polled = polled or {}
        for job_id, run in list(self.running.items()):
            if run.handle is None:
                if run.orphan_dir is not None:
                    self._reap_orphan(self.jobs[job_id], run, run.orphan_dir, batch, actions, now)
                continue
            if run.attempt_id in polled:
                outcome = polled[run.attempt_id]
                run.poll_errors = 0
            elif run.fd is not None and job_id not in self._exited:
                continue  # its shim runs: its pidfd wakes the loop when it exits (no file read per tick)
            elif self.nodes.remote and (polled_all or not self.nodes.reachable(run.node)):
                # its node's agent has not answered yet (a later batched poll answers for it), or
                # does not answer: asking it alone would hang the tick, and must not fail the job
                continue
            else:
                outcome = self._poll(run, run.handle, now)
            if outcome is not None:
                self._finish(self.jobs[job_id], run, outcome, batch, actions, now)
            elif job_id in self._exited:
                # The shim exited but left no exit record (it was killed): the attempt is lost.
                status = self._recover_status(run.attempt_id, run.handle, now)
                if isinstance(status, Outcome):
                    self._finish(self.jobs[job_id], run, status, batch, actions, now)
                elif status is Recovered.VANISHED:
                    self._unwatch(run)
                    self._discharge(self.jobs[job_id], run)
                    actions.release.append(run.handle)
                    self._end_lost(
                        self.jobs[job_id], run.number, batch, now, "its shim died with no exit record"
                    )
        self._exited.clear()

    def _reap_orphan(
        self, job: JobRecord, run: Running, record_dir: str, batch: Batch, actions: Effects, now: float
    ) -> None:
        seen = observe_orphan(record_dir)
        if seen is Recovered.RUNNING:
            return
        actions.remove_records.append(record_dir)  # after the commit of what it proves
        if isinstance(seen, Recovered):
            self._discharge(job, run)
            self._end_lost(job, run.number, batch, now, "its shim died with no exit record")
            return
        self._finish(job, run, outcome_of_record(seen), batch, actions, now)

    def _poll_many(self) -> dict[str, Outcome | None] | None:
        """A cluster's runtime answers for all of a node's attempts at once: one request per node
        and tick instead of one per attempt (None: it has no batched poll, or it failed, and the
        attempts are polled one by one)."""
        poll_many = getattr(self.runtime, "poll_many", None)
        if poll_many is None:
            return None
        handles = [r.handle for r in self.running.values() if r.handle is not None]
        if not handles:
            return {}
        try:
            found: dict[str, Outcome | None] = poll_many(handles)
        except Exception:
            log.exception("polling the cluster's nodes failed; polling attempts one by one")
            return None
        return found

    def _poll(self, run: Running, handle: Handle, now: float) -> Outcome | None:
        try:
            found = self.runtime.poll(handle)
        except Exception as exc:
            if self.nodes.remote and run.poll_errors < NODE_POLL_ERRORS:
                # its node may be dying: the next look at the nodes says lost (retried), not failed
                run.poll_errors += 1
                self.watch.request()
                return None
            return self._unwatchable(run.attempt_id, handle, exc, now)
        run.poll_errors = 0
        return found

    def _recover_status(self, attempt_id: str, handle: Handle, now: float) -> Outcome | Recovered:
        try:
            return self.runtime.recover(handle)
        except Exception as exc:
            return self._unwatchable(attempt_id, handle, exc, now)

    def _unwatchable(self, attempt_id: str, handle: Handle, exc: Exception, now: float) -> Outcome:
        """The runtime failed on this attempt alone: stop it (so it cannot run on unseen) and fail it
        with the reason, rather than let the error end the tick for every job."""
        log.exception("could not watch attempt %s", attempt_id)
        self._guarded("kill", attempt_id, self.runtime.kill, handle)
        return Outcome(None, None, False, None, None, now, now, error=f"could not watch it: {describe(exc)}")

    def _watch(self, run: Running) -> None:
        assert run.handle is not None
        try:
            fd = self.runtime.fileno(run.handle)
        except Exception:
            log.exception("cannot watch attempt %s for its exit; polling it", run.attempt_id)
            fd = None
        if fd is not None:
            try:
                self._selector.register(fd, selectors.EVENT_READ, run.job_id)
                run.fd = fd
            except (KeyError, ValueError, OSError):
                run.fd = None

    def _unwatch(self, run: Running) -> None:
        if run.fd is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(run.fd)
            run.fd = None
