"""Placement: jobs popped from the fair queues onto nodes while they fit, claimed (write-ahead), and
the capacity they hold charged and discharged; the autoscaler's demand."""

from __future__ import annotations

import math

from freight.jobs.autoscale import Demand
from freight.jobs.placement import Decision, Request, place
from freight.jobs.scaling import Scaler
from freight.jobs.scheduler.apply import Effects
from freight.jobs.scheduler.state import Running, SchedulerState
from freight.jobs.states import JobState
from freight.jobs.store import (
    Batch,
    JobRecord,
)

#: beyond this many nodes, placement scans a few feasible ones (from a rotating start), not all
SCAN_ALL_NODES = 64


class Placement(SchedulerState):
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


def scan_limit(nodes: int) -> int:
    """How many feasible nodes the bounded scan scores: 2 log2 N (as Nomad's batch scheduler)."""
    return max(2, 2 * math.ceil(math.log2(max(nodes, 2))))
