"""What the scheduler holds: its collections (a cache of the store, rebuilt by `recover()`), its
handles on the store, runtime and nodes, and `Running` (an attempt it watches). The pieces of the loop
(sync.py, reap.py, settle.py, place.py, ...) are mixins over this state; the methods one piece calls on
another are declared here for the type checker only."""

from __future__ import annotations

import os
import random
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from freight.config import Settings
from freight.jobs.lease import holder_id
from freight.jobs.liveness import SCHEDULER_LEASE
from freight.jobs.logarchive import LogArchive, LogArchiver
from freight.jobs.placement import Node
from freight.jobs.queue import FairQueues
from freight.jobs.scaling import Scaler
from freight.jobs.scheduler.apply import Effects
from freight.jobs.scheduler.changes import ChangeFeed
from freight.jobs.scheduler.endlog import EndLog
from freight.jobs.scheduler.nodes import LocalNodes, NodeSource, NodeTable
from freight.jobs.scheduler.nodewatch import NodeWatch
from freight.jobs.scheduler.spawn import Spawner
from freight.jobs.secrets import SecretStore
from freight.jobs.states import JobState
from freight.jobs.store import (
    Batch,
    JobRecord,
)
from freight.runtime.base import Handle, Outcome, Runtime
from freight.runtime.capacity import detect_capacity
from freight.runtime.jobuser import job_user

LEASE = SCHEDULER_LEASE
LEASE_TTL = 15.0
#: seconds a tick may hold back the commit of attempts that only began running (see Scheduler.tick)
HOLD_RUNNING = 0.02


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


class SchedulerState:
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
        node_thread: bool | None = None,
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
        self.nodes = NodeTable(nodes, lost_after=settings.node_lost_after)
        self.nodes.refresh(now=self.clock())
        #: seconds between two looks at a cluster's nodes (a local node never changes)
        self.node_refresh = node_refresh
        self._last_nodes = self.clock()
        #: lists a cluster's nodes on a thread of its own (None: threaded when the nodes are remote),
        #: so a hung agent never stalls the tick
        self.watch = NodeWatch(
            nodes,
            self._stop_ended,
            interval=node_refresh,
            threaded=nodes.remote if node_thread is None else node_thread,
            wake=lambda: self._write_wake(b"n"),
        )
        #: node id -> attempts ended `lost` with it (attempt id -> handle): killed if it answers again
        self._ended_with: dict[str, dict[str, Handle]] = {}
        #: returning nodes whose ended attempts are being stopped
        self._reconciling: set[str] = set()
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
        #: commits so far that ended a job or queued one again, and the jobs each ended (what
        #: JobService.wait follows): a waiter in this process reads them here, not in the store
        self.ends = EndLog()
        #: a tick's batch of attempts that only began running, committed with the next tick's
        self._held: Batch | None = None
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

    @property
    def settled(self) -> int:
        """Commits so far that ended a job or queued one again (see EndLog)."""
        return self.ends.settled

    if TYPE_CHECKING:

        def _write_wake(self, byte: bytes) -> None: ...
        def _end_lost(self, job: JobRecord, number: int, batch: Batch, now: float, why: str) -> None: ...
        def _step_down(self) -> None: ...
        def _load_queues(self, conn: Any) -> None: ...
        def _admit(self, records: list[JobRecord], conn: Any, batch: Batch, now: float) -> None: ...
        def _notify_dependents(self, job: JobRecord, batch: Batch, now: float) -> None: ...
        def _node_went_away(self, run: Running) -> bool: ...
        def _stop_ended(self, handle: Handle) -> None: ...
        def _reconcile_on_start(self, now: float) -> None: ...
        def _finish(
            self, job: JobRecord, run: Running, outcome: Outcome, batch: Batch, actions: Effects, now: float
        ) -> None: ...
        def _terminal(
            self, job: JobRecord, state: JobState, batch: Batch, now: float, detail: str | None
        ) -> None: ...
        def _request_stop(self, run: Running, reason: str, batch: Batch, now: float) -> None: ...
        def _charge(self, job: JobRecord, run: Running) -> None: ...
        def _discharge(self, job: JobRecord, run: Running) -> None: ...
        def _set_reason(self, job: JobRecord, reason: str | None, batch: Batch) -> None: ...
        def _commit(self, batch: Batch, now: float, *, notify: bool = True) -> bool: ...
        def _act(self, actions: Effects, now: float) -> None: ...
        def _guarded(
            self, what: str, attempt_id: str, action: Callable[[Handle], object], handle: Handle
        ) -> None: ...
        def _watch(self, run: Running) -> None: ...
        def _unwatch(self, run: Running) -> None: ...
