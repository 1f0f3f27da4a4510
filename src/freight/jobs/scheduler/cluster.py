"""Cluster nodes: noticing nodes that died and losing (retrying per policy) the attempts on them."""

from __future__ import annotations

import logging

from freight.jobs.placement import Node
from freight.jobs.scheduler.state import Running, SchedulerState
from freight.jobs.store import (
    Batch,
)

log = logging.getLogger("freight.scheduler")


class ClusterWatch(SchedulerState):
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
