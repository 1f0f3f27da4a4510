"""Named queues with priority and weighted fair share.

Queues of higher `priority` are served first. Among queues of equal priority the next job comes from the
queue using the least capacity per unit of weight (dominant share of cpus/memory divided by weight), so
a queue of weight 2 gets about twice the capacity of a queue of weight 1 when both have work.
Within a queue: higher job priority first, then first come, first served.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field


@dataclass
class QueueState:
    name: str
    priority: int = 0
    weight: float = 1.0
    paused: bool = False
    used_cpus: float = 0.0
    used_memory: int = 0
    heap: list[tuple[int, int, str]] = field(default_factory=list)
    members: set[str] = field(default_factory=set)

    def push(self, job_id: str, priority: int, seq: int) -> None:
        if job_id not in self.members:
            self.members.add(job_id)
            heapq.heappush(self.heap, (-priority, seq, job_id))

    def peek(self) -> str | None:
        while self.heap and self.heap[0][2] not in self.members:
            heapq.heappop(self.heap)
        return self.heap[0][2] if self.heap else None

    def pop(self) -> str:
        job_id = self.peek()
        assert job_id is not None
        heapq.heappop(self.heap)
        self.members.discard(job_id)
        return job_id

    def discard(self, job_id: str) -> None:
        # lazy deletion: peek() skips ids no longer in members
        self.members.discard(job_id)

    def __len__(self) -> int:
        return len(self.members)


class FairQueues:
    """All queues of one scheduler. Capacity totals are needed to compute dominant shares."""

    def __init__(self, total_cpus: float, total_memory: int) -> None:
        self.total_cpus = total_cpus
        self.total_memory = total_memory
        self.queues: dict[str, QueueState] = {}
        self._seq = itertools.count()

    def get(self, name: str) -> QueueState:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = QueueState(name)
        return queue

    def configure(self, name: str, *, priority: int, weight: float, paused: bool) -> None:
        queue = self.get(name)
        queue.priority, queue.weight, queue.paused = priority, max(weight, 1e-6), paused

    def push(self, queue: str, job_id: str, priority: int) -> None:
        self.get(queue).push(job_id, priority, next(self._seq))

    def discard(self, queue: str, job_id: str) -> None:
        if queue in self.queues:
            self.queues[queue].discard(job_id)

    def charge(self, queue: str, cpus: float, memory: int) -> None:
        q = self.get(queue)
        q.used_cpus += cpus
        q.used_memory += memory

    def share(self, queue: QueueState) -> float:
        dominant = max(
            queue.used_cpus / self.total_cpus if self.total_cpus else 0.0,
            queue.used_memory / self.total_memory if self.total_memory else 0.0,
        )
        return dominant / queue.weight

    def order(self, blocked: set[str]) -> list[QueueState]:
        """Queues with work to offer, best first; `blocked` queues (head did not fit) are skipped."""
        ready = [q for q in self.queues.values() if not q.paused and q.name not in blocked and q.peek()]
        return sorted(ready, key=lambda q: (-q.priority, self.share(q), q.name))

    def depth(self) -> dict[str, int]:
        return {name: len(q) for name, q in self.queues.items()}
