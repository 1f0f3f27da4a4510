"""The nodes a scheduler places jobs on, and what each has in use.

    NodeSource  where the list of nodes comes from: LocalNodes (embedded: this machine, one node) or
                ClusterNodes (a Ray cluster: one node per raylet, each with a freight agent).
    NodeTable   the scheduler's view: every node it knows with its capacity, labels, liveness and
                what the attempts it placed there hold. Placement reads it as placement.Node rows;
                `refresh` says which nodes were lost since the last look, so their attempts can be
                marked `lost` and retried elsewhere.

Lost is a verdict that starts a second copy of every attempt on the node (retry_on: lost), so it is
given only when the cluster says the node is dead (or forgets it), or when the node has not answered
for `lost_after` seconds (minutes: a partition or a hung agent must not run a job twice). A node that
Ray calls alive but whose agent does not answer is *unreachable*: it takes no new attempts (placement
gives the reason) and its attempts are left alone. A node declared lost that answers again is
*returning*: it takes nothing until the scheduler has killed the attempts the store ended meanwhile
(`returning()`, then `reconciled()`).

The table is owned by the scheduler's thread; `snapshot()` returns plain rows for other threads (the
API's `GET /api/v1/nodes`, `freight nodes`) and is safe to call while the scheduler changes the table.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from freight.jobs.placement import Node, node_name

if TYPE_CHECKING:
    from freight.runtime.ray_cluster import ClusterRuntime


@dataclass(frozen=True)
class NodeInfo:
    """A node as its source describes it."""

    id: str
    address: str
    cpus: float
    memory: int
    #: the cluster says it is alive (Ray's view, not whether its agent answered)
    alive: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    #: its agent answered the last look: a live node whose agent is silent takes no new attempts
    answering: bool = True
    #: why it takes no new attempts (its agent is silent, starting, ...); None when it takes them
    reason: str | None = None

    @property
    def name(self) -> str:
        """What people read (see placement.node_name)."""
        return node_name(self.id)


class NodeSource(Protocol):
    #: True when the nodes are other machines (attempts carry their node to the runtime)
    remote: bool

    def list(self) -> list[NodeInfo]:
        """Every node known now, alive or not."""
        ...


class LocalNodes:
    """Embedded mode: this machine is the one node."""

    remote = False

    def __init__(self, name: str, cpus: float, memory: int, labels: dict[str, str] | None = None) -> None:
        self.node = NodeInfo(name, "127.0.0.1", cpus, memory, True, dict(labels or {}))

    def list(self) -> list[NodeInfo]:
        return [self.node]


class ClusterNodes:
    """A Ray cluster's nodes, as the cluster runtime (and each node's agent) reports them."""

    remote = True

    def __init__(self, runtime: ClusterRuntime) -> None:
        self.runtime = runtime
        self._looked = False

    def list(self) -> list[NodeInfo]:
        """The first look waits for agents being started (it precedes the scheduler's ticks); later
        ones give every agent 2 s (they run off the tick's thread anyway)."""
        from freight.runtime.ray_cluster import AGENT_START

        found = self.runtime.nodes(starting_wait=0.0 if self._looked else AGENT_START)
        self._looked = True
        return [
            NodeInfo(n.id, n.address, n.cpus, n.memory, n.alive, dict(n.labels), n.answering, n.reason)
            for n in found
        ]


#: seconds a live node's agent may stay silent before the node is declared lost (FREIGHT_NODE_LOST_AFTER)
LOST_AFTER = 300.0


@dataclass
class _Entry:
    info: NodeInfo
    used_cpus: float = 0.0
    used_memory: int = 0
    running: int = 0
    #: declared lost: its attempts were ended `lost` (and may run again elsewhere)
    lost: bool = False
    #: declared lost, answering again: the attempts ended meanwhile must be killed before it takes any
    returning: bool = False
    #: when its agent was first found silent (None: it answers)
    silent_since: float | None = None

    @property
    def schedulable(self) -> bool:
        return self.info.alive and self.info.answering and not self.lost and not self.returning

    @property
    def state(self) -> str:
        if self.lost:
            return "dead"
        if self.returning:
            return "returning"
        return "alive" if self.info.answering else "unreachable"

    @property
    def reason(self) -> str | None:
        if self.lost:
            return "declared lost" if self.info.alive else "the cluster says it is dead"
        if self.returning:
            return "answers again after it was declared lost: stopping the attempts ended meanwhile"
        return None if self.info.answering else self.info.reason or "its agent does not answer"


class NodeTable:
    def __init__(self, source: NodeSource, lost_after: float = LOST_AFTER) -> None:
        self.source = source
        self.lost_after = lost_after
        self._nodes: dict[str, _Entry] = {}
        #: held while `_nodes` changes size and while snapshot() copies it (other threads read it)
        self._lock = threading.Lock()
        #: placement rows (ordered by id), rebuilt when the nodes change; a charge replaces one row
        self._rows: list[Node] | None = None
        self._row_of: dict[str, int] = {}

    @property
    def remote(self) -> bool:
        return self.source.remote

    def refresh(self, infos: Iterable[NodeInfo] | None = None, now: float | None = None) -> list[str]:
        """Read the nodes again (from `infos`, else the source). Returns the ids of nodes lost since
        the last look: dead or gone in the cluster's word, or silent for `lost_after` seconds by `now`
        (without `now`, silence alone never loses a node). Their attempts are lost."""
        found = {i.id: i for i in (self.source.list() if infos is None else infos)}
        lost = []
        with self._lock:
            for node_id, known in self._nodes.items():
                if node_id not in found:  # forgotten by the cluster: keep it, dead, while attempts name it
                    found[node_id] = replace(known.info, alive=False)
            for node_id, info in found.items():
                entry = self._nodes.get(node_id)
                if entry is None:  # nothing of ours runs there yet: a dead one is simply lost
                    self._nodes[node_id] = entry = _Entry(info, lost=not info.alive)
                if self._look(entry, info, now):
                    lost.append(node_id)
            self._rows = None
        return lost

    def _look(self, entry: _Entry, info: NodeInfo, now: float | None) -> bool:
        """Update one node from what its source says now; True when that makes it lost."""
        entry.info = info
        if not info.alive:
            was_lost, entry.lost, entry.returning = entry.lost, True, False
            return not was_lost
        if not info.answering:
            if entry.silent_since is None:
                entry.silent_since = now
            since = entry.silent_since
            if entry.lost or now is None or since is None or now - since < self.lost_after:
                return False
            entry.lost, entry.returning = True, False
            return True
        entry.silent_since = None
        if entry.lost:  # it answers again: what ran there may still run
            entry.lost, entry.returning = False, True
        return False

    def returning(self) -> list[str]:
        """Nodes declared lost that answer again: the attempts the store ended on them must be killed
        (their cgroup slots released) before they take new ones; then call `reconciled`."""
        return sorted(node_id for node_id, e in self._nodes.items() if e.returning and e.info.answering)

    def hold(self, node_id: str) -> None:
        """Take no attempts on this node until `reconciled` (attempts ended there may still run)."""
        entry = self._nodes.get(node_id)
        if entry is not None and not entry.lost:
            entry.returning = True
            self._rows = None

    def reconciled(self, node_id: str) -> None:
        """What ran on this returning node was stopped: it may take attempts again."""
        entry = self._nodes.get(node_id)
        if entry is not None and entry.returning:
            entry.returning = False
            self._rows = None

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def alive(self, node_id: str) -> bool:
        """Not lost: its attempts still count as running (an unreachable node is alive)."""
        entry = self._nodes.get(node_id)
        return entry is not None and not entry.lost

    def reachable(self, node_id: str) -> bool:
        """Its agent answered the last look (an unknown node, e.g. this machine's, counts as
        reachable): calls to it will not hang the tick."""
        entry = self._nodes.get(node_id)
        return entry is None or (entry.info.answering and not entry.lost)

    def get(self, node_id: str) -> NodeInfo | None:
        entry = self._nodes.get(node_id)
        return entry.info if entry is not None else None

    def charge(self, node_id: str, cpus: float, memory: int) -> None:
        self._add(node_id, cpus, memory, 1)

    def discharge(self, node_id: str, cpus: float, memory: int) -> None:
        self._add(node_id, -cpus, -memory, -1)

    def _add(self, node_id: str, cpus: float, memory: int, count: int) -> None:
        entry = self._nodes.get(node_id)
        if entry is None:  # an attempt recovered on a node the source no longer lists
            with self._lock:
                entry = self._nodes[node_id] = _Entry(NodeInfo(node_id, "", 0.0, 0, alive=False), lost=True)
        entry.used_cpus += cpus
        entry.used_memory += memory
        entry.running += count
        at = self._row_of.get(node_id)
        if self._rows is not None and at is not None:
            # one row, not all of them: a large cluster's table is read once per placement
            self._rows[at] = replace(self._rows[at], used_cpus=entry.used_cpus, used_memory=entry.used_memory)
        else:
            self._rows = None

    def placement_nodes(self) -> list[Node]:
        """The nodes as placement sees them (lost, unreachable and returning ones are not
        schedulable, with the reason), ordered by id."""
        if self._rows is None:
            ordered = sorted(self._nodes)
            self._row_of = {node_id: i for i, node_id in enumerate(ordered)}
            self._rows = [
                Node(
                    e.info.id,
                    e.info.cpus,
                    e.info.memory,
                    e.used_cpus,
                    e.used_memory,
                    schedulable=e.schedulable,
                    labels=e.info.labels,
                    reason=e.reason,
                )
                for e in (self._nodes[node_id] for node_id in ordered)
            ]
        return self._rows

    @property
    def used(self) -> tuple[float, int]:
        entries = list(self._nodes.values())  # one C-level copy: safe while another thread adds
        return sum(e.used_cpus for e in entries), sum(e.used_memory for e in entries)

    @property
    def capacity(self) -> tuple[float, int]:
        """What the nodes not lost offer in all (an unreachable node's room comes back with it)."""
        live = [e.info for e in list(self._nodes.values()) if not e.lost]
        return sum(i.cpus for i in live), sum(i.memory for i in live)

    def snapshot(self) -> list[dict[str, Any]]:
        """One plain row per node: id, name, address, cpus, memory, used_cpus, used_memory, running,
        labels, state (alive | unreachable | returning | dead), reason (why it takes no attempts).
        Safe from any thread: the rows are built from a copy taken under the table's lock."""
        with self._lock:
            entries = sorted(self._nodes.items())
        return [
            {
                "id": e.info.id,
                "name": e.info.name,
                "address": e.info.address,
                "cpus": e.info.cpus,
                "memory": e.info.memory,
                "used_cpus": round(max(e.used_cpus, 0.0), 6),
                "used_memory": max(e.used_memory, 0),
                "running": max(e.running, 0),
                "labels": dict(e.info.labels),
                "state": e.state,
                "reason": e.reason,
            }
            for _, e in entries
        ]
