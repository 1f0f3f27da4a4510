"""The scheduler's thread: one loop that admits, places, starts, watches and finishes attempts.

Each tick (the steps live in the modules named):
  1. sync     - read new submissions, cancel requests and queue settings from the store (when poked or
                every `poll_interval`), so other processes (CLI, API servers) can submit (sync.py).
  2. reap     - collect outcomes of attempts that ended (pidfds wake the loop at once) (reap.py), and
                settle them: retried per policy or final (settle.py); dead cluster nodes (cluster.py).
  3. timers   - timeouts (SIGTERM, then SIGKILL after the grace), retry backoffs that elapsed (timers.py).
  4. place    - pop jobs from the fair queues while they fit the node's free capacity (place.py).
  5. commit   - write all of the above in ONE transaction (write-ahead: `starting` and stop reasons are
                persisted before any process is started or signalled) (act.py, apply.py).
  6. act      - start the placed attempts, send the signals; persist the handles in a second commit.

This module holds the lifecycle (lease, socket, wake pipe), the tick itself and introspection; what
the loop holds is state.py. The store is the source of truth; everything here is a cache rebuilt by
`recover()` on start (recovery.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from freight.errors import FreightError
from freight.jobs.lease import LeaseLostError, fence, release_lease, try_lease
from freight.jobs.scheduler.act import Act
from freight.jobs.scheduler.apply import Effects
from freight.jobs.scheduler.cluster import ClusterWatch
from freight.jobs.scheduler.place import Placement
from freight.jobs.scheduler.reap import Reap
from freight.jobs.scheduler.recovery import Recovery
from freight.jobs.scheduler.settle import Settle
from freight.jobs.scheduler.state import LEASE, LEASE_TTL, Running, SchedulerState
from freight.jobs.scheduler.sync import Sync
from freight.jobs.scheduler.timers import Timers
from freight.jobs.store import (
    Batch,
    JobRecord,
)
from freight.runtime.base import Handle

log = logging.getLogger("freight.scheduler")


class LeaseHeldError(FreightError):
    """Another live scheduler holds the lease on this store."""


class Scheduler(Recovery, Sync, Reap, Settle, ClusterWatch, Placement, Timers, Act):
    """The scheduler of one store: `start()` (lease, recovery), then `run()` until `stop()`."""

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
        self._reconcile_on_start(now)
        self.watch.start()
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
        spawned = self.spawner.shutdown()
        if (spawned or self._held is not None) and not self.fenced and self.token:
            now = self.clock()
            batch, self._held = self._held or Batch(), None
            self._collect_spawned(batch, now)
            self._commit(batch, now)
        self.watch.close()
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
        batch, held = self._held or Batch(), self._held is not None
        self._held = None
        actions = Effects()
        self._collect_spawned(batch, now)
        if self._poked or now - self._last_sync >= self.poll_interval:
            self._poked = False
            self._submitted.clear()  # the full scan sees them
            self._sync(batch, now)
        elif self._submitted:
            self._admit_submitted(batch, now)
        if self.nodes.remote:  # takes the newest listing of the nodes; never waits for one
            self._refresh_nodes(batch, now)
        self._reap(batch, actions, now)
        self._timers(batch, actions, now)
        self._place(batch, actions, now)
        if self.scaler is not None and self.scaler.due(now):
            self._offer_demand(self.scaler, now)
        if (
            not held
            and not self.nodes.remote
            and batch
            and batch.only_running()
            and not actions
            and not self._pending_term
            and self._found_by_recovery(batch)
        ):
            # Nothing but attempts that began running: their commit waits for the next tick (at most
            # HOLD_RUNNING away), so that a short job's start and end take one transaction, not two.
            # Safe to hold on this host only: each handle is already beside its shim's records, where
            # recovery looks. A cluster node's records are on that node, out of a new leader's sight.
            self._held = batch
            batch = Batch()
        committed = self._commit(batch, now, notify=False)
        self._act(actions, now)
        if committed and self.on_commit is not None:
            self.on_commit()
        if now - self._last_lease >= LEASE_TTL / 3:
            self._renew_lease(now)
        self._publish()

    def _found_by_recovery(self, batch: Batch) -> bool:
        """Whether every attempt that began running has its handle where a new leader's recovery
        reads it (<run_dir>/<attempt id>/handle.json), so its commit may wait a tick."""
        run_dir = self.settings.run_dir
        return all(
            Handle.from_json(row["handle"]).record_dir == str(run_dir / row["b_id"])
            for row in batch.running_attempts
        )

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


__all__ = ["LEASE", "LEASE_TTL", "LeaseHeldError", "Running", "Scheduler", "SchedulerState"]
