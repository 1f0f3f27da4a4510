"""The scheduler: one loop that admits, places, starts, watches and finishes attempts.

Each tick:
  1. sync     - read new submissions, cancel requests and queue settings from the store (when poked or
                every `poll_interval`), so other processes (CLI, API servers) can submit.
  2. reap     - collect outcomes of attempts that ended (pidfds wake the loop at once).
  3. timers   - timeouts (SIGTERM, then SIGKILL after the grace), retry backoffs that elapsed.
  4. place    - pop jobs from the fair queues while they fit the node's free capacity.
  5. commit   - write all of the above in ONE transaction (write-ahead: `starting` and stop reasons are
                persisted before any process is started or signalled).
  6. act      - start the placed attempts, send the signals; persist the handles in a second commit.

The store is the source of truth; everything here is a cache rebuilt by `recover()` on start.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import os
import random
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from freight.config import Settings
from freight.db.schema import attempts, jobs, queues
from freight.errors import FreightError
from freight.jobs.autoscale import Demand
from freight.jobs.lease import LeaseLostError, fence, holder_id, release_lease, try_lease
from freight.jobs.liveness import SCHEDULER_LEASE
from freight.jobs.logarchive import LogArchive, LogArchiver
from freight.jobs.outcome import classify, should_retry
from freight.jobs.placement import Decision, Node, Request, place
from freight.jobs.queue import FairQueues
from freight.jobs.scaling import Scaler
from freight.jobs.scheduler.apply import Effects, Leader, commit
from freight.jobs.scheduler.changes import ChangeFeed
from freight.jobs.scheduler.decide import Step, Watched, due_timers, recovery_step
from freight.jobs.scheduler.events import (
    describe,
    observe_attempt,
    observe_orphan,
    outcome_of_record,
)
from freight.jobs.scheduler.nodes import LocalNodes, NodeSource, NodeTable
from freight.jobs.scheduler.spawn import Spawner, attempt_request
from freight.jobs.secrets import SecretStore
from freight.jobs.states import JobState
from freight.jobs.store import (
    Batch,
    JobRecord,
    load_jobs,
)
from freight.runtime import records
from freight.runtime.base import AttemptRequest, Handle, Outcome, Recovered, Runtime
from freight.runtime.capacity import detect_capacity
from freight.runtime.jobuser import job_user

log = logging.getLogger("freight.scheduler")

LEASE = SCHEDULER_LEASE
LEASE_TTL = 15.0
#: free bytes below which a failed job's log disk counts as full
LOW_DISK = 64 * 1024
#: failed polls in a row after which an attempt on a live cluster node counts as unwatchable
NODE_POLL_ERRORS = 20
#: beyond this many nodes, placement scans a few feasible ones (from a rotating start), not all
SCAN_ALL_NODES = 64


class LeaseHeldError(FreightError):
    """Another live scheduler holds the lease on this store."""


@dataclass
class Running:
    job_id: str
    attempt_id: str
    number: int
    cpus: float
    memory: int
    handle: Handle | None = None
    started_at: float = 0.0
    deadline: float | None = None
    stop_reason: str | None = None
    kill_at: float | None = None
    fd: int | None = None
    #: adopted after a restart without a handle (its shim runs): watched through this record dir
    orphan_dir: str | None = None
    #: the node it was placed on
    node: str = ""
    #: polls of its node that failed in a row (a cluster node may be dying: lost, not failed)
    poll_errors: int = 0


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        runtime: Runtime,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        poll_interval: float = 0.5,
        on_commit: Callable[[], None] | None = None,
        spawn_workers: int = 2,
        nodes: NodeSource | None = None,
        node_refresh: float = 1.0,
        scaler: Scaler | None = None,
    ) -> None:
        self.engine = engine
        self.runtime = runtime
        self.settings = settings
        self.clock = clock
        self.rng = rng
        self.poll_interval = poll_interval
        self.on_commit = on_commit
        self.job_user = job_user(settings.job_user)
        self.secrets = SecretStore(engine, settings)
        self.spawner = Spawner(
            runtime, clock, spawn_workers, lambda: self._write_wake(b"s"), secrets=self.secrets
        )
        self.node_name = os.uname().nodename
        if nodes is None:
            cpus, memory = detect_capacity(settings)
            nodes = LocalNodes(self.node_name, cpus, memory)
        #: asks the cluster's autoscaler for the nodes the queue needs (None: no autoscaling)
        self.scaler = scaler
        #: every node jobs may be placed on, with what this scheduler placed there
        self.nodes = NodeTable(nodes)
        self.nodes.refresh()
        #: seconds between two looks at a cluster's nodes (a local node never changes)
        self.node_refresh = node_refresh
        self._last_nodes = self.clock()
        cpus, memory = self.nodes.capacity
        self.capacity = Node(self.node_name, cpus, memory)
        self.used_cpus = 0.0
        self.used_memory = 0
        self.queues = FairQueues(cpus, memory)
        #: where the bounded scan of a large cluster starts (rotates, as Nomad's does)
        self._scan_start = 0
        #: nodes found lost outside _refresh_nodes (by a failed start), settled by its next run
        self._lost_pending: set[str] = set()
        self.jobs: dict[str, JobRecord] = {}
        self.running: dict[str, Running] = {}
        self.waiting: dict[str, set[str]] = {}
        self.dependents: dict[str, list[tuple[str, str]]] = {}
        self.delayed: list[tuple[float, str]] = []
        self.holder = holder_id()
        #: the lease's fencing token, taken with it in start(); every commit checks it
        self.token = 0
        #: commits so far that ended a job or queued one again (what JobService.wait follows): a
        #: waiter in this process woken by a commit that did neither need not read the store
        self.settled = 0
        #: a commit found the token stale: another scheduler took over, this one must not write again
        self.fenced = False
        self._stop = threading.Event()
        #: stop() was called; when run() returns without it, the lease was lost (see JobService._loop)
        self.stop_requested = False
        self._poked = True
        self._last_sync = 0.0
        self._last_lease = 0.0
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        #: wake() may run on any thread while close() closes the pipe: a write after the close could
        #: land in whatever file reuses the descriptor number
        self._wake_lock = threading.Lock()
        self._closed = False
        #: what snapshot() answers: published by the loop thread after each tick (other threads never
        #: iterate the collections it mutates)
        self._published: dict[str, Any] = {}
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._sock: socket.socket | None = None
        self._pending_term: list[Running] = []
        self._submitted: deque[JobRecord] = deque()
        #: what a job may see of the scheduler's environment (all of it with inherit_env); copied once
        self._base_env = dict(os.environ)
        #: the unprivileged user jobs run as; None when this process cannot switch users (not root)
        self._exited: set[str] = set()
        #: ended attempts' logs go to the object store on the archiver's thread, after the commit
        self.archiver = LogArchiver(engine, LogArchive(settings), self.node_name)
        #: what other processes changed, followed through the events table (changes.py)
        self.changes = ChangeFeed()

    # --- lifecycle ----------------------------------------------------------------------------------

    @property
    def socket_path(self) -> Path:
        return self.settings.home / "scheduler.sock"

    def start(self) -> None:
        """Take the lease and rebuild state from the store. Raises LeaseHeldError if another runs."""
        now = self.clock()
        with self.engine.begin() as conn:
            token = try_lease(conn, LEASE, self.holder, LEASE_TTL)
        if token is None:
            raise LeaseHeldError("another scheduler is running on this store")
        self.token = token
        self._last_lease = now
        self._bind_socket()
        self.recover()
        self._publish()

    def _bind_socket(self) -> None:
        path = self.socket_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(str(path))
        self._sock = sock
        self._selector.register(sock, selectors.EVENT_READ, None)

    def run(self) -> None:
        """Loop until stop(). Call start() first."""
        while not self._stop.is_set():
            self.tick()

    def stop(self) -> None:
        self.stop_requested = True
        self._stop.set()
        self.wake()

    def close(self) -> None:
        """Leave running attempts alone (they keep running); give up the lease and the socket."""
        # spawns still in flight end first; their handles are committed unless this one was fenced
        if self.spawner.shutdown() and not self.fenced and self.token:
            now = self.clock()
            batch = Batch()
            self._collect_spawned(batch, now)
            self._commit(batch, now)
        self.archiver.close()
        if self.scaler is not None:
            self.scaler.stop()
        with contextlib.suppress(Exception), self.engine.begin() as conn:
            release_lease(conn, LEASE, self.holder)
        if self._sock is not None:
            self._sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
        self._selector.close()
        with self._wake_lock:
            self._closed = True
            os.close(self._wake_r)
            os.close(self._wake_w)

    def wake(self, submitted: Sequence[JobRecord] | None = None) -> None:
        """Ask for a sync at the next tick (thread-safe). With `submitted` (jobs just committed as
        queued by this process, handed over and not touched again by the caller) the tick admits them
        without reading the store."""
        if submitted is None:
            self._poked = True
        else:
            self._submitted.extend(submitted)
        self._write_wake(b"x")

    def _write_wake(self, byte: bytes) -> None:
        with self._wake_lock:
            if self._closed:
                return
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, byte)

    # --- recovery -----------------------------------------------------------------------------------

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
            batch.ended_attempts.append(_ended_row(row.id, JobState.LOST.value, now, None, step.reason))
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

    def _end_lost(self, job: JobRecord, number: int, batch: Batch, now: float, why: str) -> None:
        batch.ended_attempts.append(_ended_row(f"{job.id}-{number}", JobState.LOST.value, now, None, why))
        self._settle(job, JobState.LOST, None, f"lost: {why}", batch, now)

    # --- the tick -----------------------------------------------------------------------------------

    def tick(self) -> None:
        ready = self._selector.select(self._next_timer_in(self.clock()))
        for key, _ in ready:
            if key.fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            elif isinstance(key.data, str):
                self._exited.add(key.data)
            elif self._sock is not None and key.fileobj is self._sock:
                with contextlib.suppress(BlockingIOError):
                    while self._sock.recv(64):
                        self._poked = True
        now = self.clock()
        batch = Batch()
        actions = Effects()
        self._collect_spawned(batch, now)
        if self._poked or now - self._last_sync >= self.poll_interval:
            self._poked = False
            self._submitted.clear()  # the full scan sees them
            self._sync(batch, now)
        elif self._submitted:
            self._admit_submitted(batch, now)
        if self.nodes.remote and now - self._last_nodes >= self.node_refresh:
            self._refresh_nodes(batch, now)
        self._reap(batch, actions, now)
        self._timers(batch, actions, now)
        self._place(batch, actions, now)
        if self.scaler is not None and self.scaler.due(now):
            self._offer_demand(self.scaler, now)
        committed = self._commit(batch, now, notify=False)
        self._act(actions, now)
        if committed and self.on_commit is not None:
            self.on_commit()
        if now - self._last_lease >= LEASE_TTL / 3:
            self._renew_lease(now)
        self._publish()

    def _next_timer_in(self, now: float) -> float:
        wait = self.poll_interval
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

    def _renew_lease(self, now: float) -> None:
        try:
            with self.engine.begin() as conn:
                fence(conn, LEASE, self.holder, self.token, LEASE_TTL)
        except LeaseLostError:
            self._step_down()
            return
        self._last_lease = now

    def _step_down(self) -> None:
        log.error("lost the scheduler lease to another process; stopping (running jobs keep running)")
        self.fenced = True
        self._stop.set()

    # --- sync ---------------------------------------------------------------------------------------

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
        for change in self.changes.read(conn):
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

    # --- reap ---------------------------------------------------------------------------------------

    def _reap(self, batch: Batch, actions: Effects, now: float) -> None:
        polled = self._poll_many()
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

    def _poll_many(self) -> dict[str, Outcome | None]:
        """A cluster's runtime answers for all of a node's attempts at once: one request per node
        and tick instead of one per attempt. Attempts it could not ask about are polled one by one."""
        poll_many = getattr(self.runtime, "poll_many", None)
        if poll_many is None:
            return {}
        handles = [r.handle for r in self.running.values() if r.handle is not None]
        if not handles:
            return {}
        try:
            found: dict[str, Outcome | None] = poll_many(handles)
        except Exception:
            log.exception("polling the cluster's nodes failed; polling attempts one by one")
            return {}
        return found

    def _poll(self, run: Running, handle: Handle, now: float) -> Outcome | None:
        try:
            found = self.runtime.poll(handle)
        except Exception as exc:
            if self.nodes.remote and run.poll_errors < NODE_POLL_ERRORS:
                # its node may be dying: the next look at the nodes says lost (retried), not failed
                run.poll_errors += 1
                self._last_nodes = 0.0
                return None
            return self._unwatchable(run.attempt_id, handle, exc, now)
        run.poll_errors = 0
        return found

    # --- nodes --------------------------------------------------------------------------------------

    def _node_went_away(self, run: Running) -> bool:
        """A start that failed on a cluster node that is dead now: lost (retried per policy), not
        failed. Asks the cluster once, only for a failed start."""
        if not self.nodes.remote:
            return False
        try:
            lost = self.nodes.refresh()
        except Exception:
            log.exception("could not list the cluster's nodes")
            return False
        if lost:
            self._last_nodes = 0.0  # the next tick settles the other attempts of those nodes
            self._lost_pending.update(lost)
        return not self.nodes.alive(run.node)

    def _refresh_nodes(self, batch: Batch, now: float) -> None:
        """Look at the cluster's nodes again; the attempts of a node that died are lost (and retried
        elsewhere per their policy: once lost here, an attempt is never settled again)."""
        self._last_nodes = now
        try:
            lost = set(self.nodes.refresh()) | self._lost_pending
        except Exception:
            log.exception("could not list the cluster's nodes; trying again")
            return
        self._lost_pending.clear()
        self.capacity = Node(self.node_name, *self.nodes.capacity)
        self.queues.total_cpus, self.queues.total_memory = self.nodes.capacity
        if not lost:
            return
        for job_id, run in list(self.running.items()):
            if run.node not in lost or run.handle is None:
                continue  # one still being spawned is collected (and fails to start) on its own
            info = self.nodes.get(run.node)
            name = info.name if info is not None else run.node
            log.warning("node %s was lost; attempt %s is lost with it", name, run.attempt_id)
            job = self.jobs[job_id]
            self._unwatch(run)
            self.running.pop(job_id, None)
            self._discharge(job, run)
            self._end_lost(job, run.number, batch, now, f"its node {name} was lost")

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

    # --- timers -------------------------------------------------------------------------------------

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

    # --- placement ----------------------------------------------------------------------------------

    def _place(self, batch: Batch, actions: Effects, now: float) -> None:
        blocked: set[str] = set()
        while True:
            order = self.queues.order(blocked)
            if not order:
                return
            queue = order[0]
            job_id = queue.peek()
            assert job_id is not None
            job = self.jobs.get(job_id)
            if job is None or job.state is not JobState.QUEUED:
                queue.discard(job_id)
                continue
            decision = self._decide_node(job)
            if decision.node is None:
                if decision.impossible and self._autoscaler_could_hold(job):
                    blocked.add(queue.name)
                    self._set_reason(
                        job, f"waiting for the autoscaler to add a node: {decision.why()}", batch
                    )
                    continue
                if decision.impossible:
                    queue.pop()
                    job.ended_at = now
                    job.reason = f"can never run here: {decision.why()}"
                    self._terminal(job, JobState.FAILED, batch, now, job.reason)
                    continue
                blocked.add(queue.name)
                self._set_reason(job, f"waiting for capacity: {decision.why()}", batch)
                continue
            queue.pop()
            self._claim(job, decision.node, batch, actions, now)

    def _autoscaler_could_hold(self, job: JobRecord) -> bool:
        """A job too big for every node there is waits (not fails) when a node the autoscaler may
        add could hold it (node labels of nodes to come are unknown: a constrained job does not)."""
        spec = job.spec
        return (
            self.scaler is not None
            and not spec.constraints
            and self.scaler.settings.could_grow_for(Demand(spec.resources.cpus, spec.resources.memory))
        )

    def _offer_demand(self, scaler: Scaler, now: float) -> None:
        """Hand the scaler what runs and what waits (its thread plans and talks to Ray)."""
        held = [Demand(run.cpus, run.memory) for run in self.running.values()]
        cap = 4 * scaler.settings.max_bundles
        waiting: list[Demand] = []
        for job in self.jobs.values():
            if job.state in (JobState.QUEUED, JobState.RETRYING) and len(waiting) < cap:
                res = job.spec.resources
                waiting.append(Demand(res.cpus, res.memory))
        scaler.offer(held, waiting, self.nodes.placement_nodes(), now)

    def _decide_node(self, job: JobRecord) -> Decision:
        spec = job.spec
        strategy = spec.placement or ("spread" if job.queue in self.settings.spread_queues else "binpack")
        request = Request(spec.resources.cpus, spec.resources.memory, spec.constraints, strategy)
        nodes = self.nodes.placement_nodes()
        if len(nodes) <= SCAN_ALL_NODES:
            return place(request, nodes)
        self._scan_start += 1
        return place(request, nodes, limit=scan_limit(len(nodes)), start=self._scan_start)

    def _claim(self, job: JobRecord, node: str, batch: Batch, actions: Effects, now: float) -> None:
        job.attempts += 1
        job.reason = None
        job.exit_code = None
        job.ended_at = None
        res = job.spec.resources
        attempt_id = f"{job.id}-{job.attempts}"
        run = Running(job.id, attempt_id, job.attempts, res.cpus, res.memory, node=node)
        log_path = self.settings.log_path(job.id, job.attempts)
        batch.move(job, JobState.STARTING, now)
        batch.new_attempts.append(
            {
                "id": attempt_id,
                "job_id": job.id,
                "number": job.attempts,
                "state": JobState.STARTING.value,
                "node": node,
                "cpus": res.cpus,
                "memory": res.memory,
                "log_path": str(log_path),
                "oom_killed": False,
            }
        )
        self._charge(job, run)
        self.running[job.id] = run
        actions.start.append((job, run))

    def _charge(self, job: JobRecord, run: Running) -> None:
        self.running[job.id] = run
        self.used_cpus += run.cpus
        self.used_memory += run.memory
        self.nodes.charge(run.node or self.node_name, run.cpus, run.memory)
        self.queues.charge(job.queue, run.cpus, run.memory)

    def _discharge(self, job: JobRecord, run: Running) -> None:
        self.used_cpus -= run.cpus
        self.used_memory -= run.memory
        self.nodes.discharge(run.node or self.node_name, run.cpus, run.memory)
        self.queues.charge(job.queue, -run.cpus, -run.memory)

    def _set_reason(self, job: JobRecord, reason: str | None, batch: Batch) -> None:
        if job.reason != reason:
            job.reason = reason
            batch.reasons[job.id] = reason

    # --- commit and act -----------------------------------------------------------------------------

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
        if any(new.terminal or new is JobState.QUEUED for _, _, new, _, _ in batch.transitions):
            self.settled += 1
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
        for run in self._pending_term:
            if run.handle is not None:
                self._guarded("stop", run.attempt_id, self.runtime.terminate, run.handle)
            elif self.running.get(run.job_id) is run:
                waiting.append(run)
        self._pending_term = waiting
        for run in actions.kill:
            if run.handle is not None:
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

    # --- introspection ------------------------------------------------------------------------------

    def usage(self, job_id: str) -> tuple[int | None, float | None] | None:
        """Memory bytes and CPU seconds of the job's running attempt now; None if not running here."""
        run = self.running.get(job_id)
        if run is None or run.handle is None:
            return None
        return self.runtime.usage(run.handle)

    def read_log(self, job_id: str, number: int, offset: int = 0) -> bytes | None:
        """Up to 1 MiB of a running attempt's log from its node (a cluster node's agent reads its
        own disk); None when the attempt does not run here now or the runtime reads no logs."""
        run = self.running.get(job_id)
        reader = getattr(self.runtime, "read_log", None)
        if run is None or run.number != number or run.handle is None or reader is None:
            return None
        path = str(self.settings.log_path(job_id, number))
        data: bytes = reader(run.handle, path, offset)
        return data

    def snapshot(self) -> dict[str, Any]:
        """This node's capacity and load: node (name), cpus, memory (bytes), used_cpus, used_memory,
        running (count), queued ({queue: waiting jobs}), waiting_on_dependencies and retrying (counts).
        Thread-safe: the figures as of the last tick."""
        return dict(self._published) or self._figures()

    def _publish(self) -> None:
        self._published = self._figures()  # one reference swap: readers see the old or the new

    def _figures(self) -> dict[str, Any]:
        return {
            "node": self.node_name,
            "cpus": self.capacity.cpus,
            "memory": self.capacity.memory,
            "used_cpus": self.used_cpus,
            "used_memory": self.used_memory,
            "running": len(self.running),
            "queued": self.queues.depth(),
            "waiting_on_dependencies": len(self.waiting),
            "retrying": len(self.delayed),
            "nodes": self.nodes.snapshot(),
            "demand": self.scaler.snapshot() if self.scaler is not None else {"autoscale": False},
        }


def scan_limit(nodes: int) -> int:
    """How many feasible nodes the bounded scan scores: 2 log2 N (as Nomad's batch scheduler)."""
    return max(2, 2 * math.ceil(math.log2(max(nodes, 2))))


#: the states of jobs that wait for this scheduler (to be placed, or for their retry backoff)
_WAITING = (JobState.QUEUED.value, JobState.RETRYING.value)


def _ended_row(
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
