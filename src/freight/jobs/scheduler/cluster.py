"""Cluster nodes: noticing nodes that died and losing (retrying per policy) the attempts on them, and
stopping those attempts for good when a node declared lost answers again.

The nodes are listed on NodeWatch's thread; a tick only takes the newest listing (never waits for
one). A node is lost when the cluster says it is dead, or after `node_lost_after` seconds of silence
(nodes.py): a silent agent alone only makes its node take no new attempts, since losing an attempt
that still runs starts a second copy of it. When a node declared lost answers again, the attempts
ended with it are killed (their cgroup slots released) before the node takes anything new.
"""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import select

from freight.db.schema import attempts
from freight.jobs.placement import Node
from freight.jobs.scheduler.state import Running, SchedulerState
from freight.jobs.store import Batch
from freight.runtime.base import Handle

log = logging.getLogger("freight.scheduler")

#: seconds a failed start waits for a fresh listing of the nodes (the agents have 2 s to answer)
FRESH_WAIT = 3.0
#: how far back a new leader looks for attempts ended `lost` that may still run on their node
RECONCILE_WINDOW = 86_400.0


class ClusterWatch(SchedulerState):
    def _node_went_away(self, run: Running) -> bool:
        """A start that failed on a cluster node that is dead now: lost (retried per policy), not
        failed. Asks the cluster once (a bounded wait), only for a failed start."""
        if not self.nodes.remote:
            return False
        listing = self.watch.fresh(FRESH_WAIT)
        if listing is not None:
            lost = self.nodes.refresh(listing, self.clock())
            if lost:
                self._lost_pending.update(lost)  # the next tick settles the other attempts of those nodes
                self.watch.request()
        return not self.nodes.alive(run.node)

    def _refresh_nodes(self, batch: Batch, now: float) -> None:
        """Take the newest listing of the cluster's nodes (asking for one every `node_refresh`); the
        attempts of a node that died are lost (and retried elsewhere per their policy: once lost here,
        an attempt is never settled again); a node that answers again after it was declared lost has
        the attempts ended with it stopped first."""
        if now - self._last_nodes >= self.node_refresh:
            self._last_nodes = now
            self.watch.request()
        for node_id in self.watch.stopped():
            self._reconciling.discard(node_id)
            self._ended_with.pop(node_id, None)
            self.nodes.reconciled(node_id)
            log.warning("node %s: the attempts the store ended there were stopped", node_id[:12])
        listing = self.watch.take()
        if listing is None and not self._lost_pending:
            return
        lost = set(self.nodes.refresh(listing, now)) if listing is not None else set()
        lost |= self._lost_pending
        self._lost_pending.clear()
        self.capacity = Node(self.node_name, *self.nodes.capacity)
        self.queues.total_cpus, self.queues.total_memory = self.nodes.capacity
        self._lose_attempts(lost, batch, now)
        self._reconcile_returning()

    def _lose_attempts(self, lost: set[str], batch: Batch, now: float) -> None:
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
            # it may run on (a partition): killed if its node answers again
            self._ended_with.setdefault(run.node, {})[run.attempt_id] = run.handle

    def _reconcile_returning(self) -> None:
        """Nodes declared lost that answer again take nothing until the attempts ended with them are
        killed: else a job retried elsewhere would run twice."""
        for node_id in self.nodes.returning():
            if node_id in self._reconciling:
                continue
            ended = list(self._ended_with.get(node_id, {}).values())
            if not ended:
                self.nodes.reconciled(node_id)
                continue
            log.warning(
                "node %s answers again; stopping %d attempt(s) ended with it", node_id[:12], len(ended)
            )
            self._reconciling.add(node_id)
            self.watch.stop_attempts(node_id, ended)

    def _reconcile_on_start(self, now: float) -> None:
        """A new leader does not know which nodes the last one declared lost: every attempt the store
        ended `lost` on a cluster node lately (it may run on there, partitioned) is killed on its
        node if that node answers, else when it answers again after being lost. Runs after recovery
        re-attached the running attempts (so their slots are claimed), on the nodes' thread."""
        if not self.nodes.remote:
            return
        query = select(attempts.c.id, attempts.c.node, attempts.c.handle).where(
            attempts.c.state == "lost",
            attempts.c.handle.is_not(None),
            attempts.c.node.is_not(None),
            attempts.c.ended_at >= now - RECONCILE_WINDOW,
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        for row in rows:
            with contextlib.suppress(Exception):  # an unreadable handle: nothing to kill it with
                self._ended_with.setdefault(row.node, {})[row.id] = Handle.from_json(row.handle)
        for node_id, ended in list(self._ended_with.items()):
            if self.nodes.alive(node_id) and self.nodes.reachable(node_id) and node_id in self.nodes:
                self.nodes.hold(node_id)  # it takes nothing before they are stopped
                self._reconciling.add(node_id)
                self.watch.stop_attempts(node_id, list(ended.values()))

    def _stop_ended(self, handle: Handle) -> None:
        """Kill an attempt whose end is committed (its node was lost), and give its slot back."""
        self.runtime.kill(handle)
        with contextlib.suppress(Exception):  # the kill is what matters; a slot left is reused later
            self.runtime.release(handle)
