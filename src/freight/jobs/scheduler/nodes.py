"""The nodes a scheduler places jobs on, and what each has in use.

    NodeSource  where the list of nodes comes from: LocalNodes (embedded: this machine, one node) or
                ClusterNodes (a Ray cluster: one node per raylet, each with a freight agent).
    NodeTable   the scheduler's view: every node it knows with its capacity, labels, liveness and
                what the attempts it placed there hold. Placement reads it as placement.Node rows;
                `refresh` says which nodes were lost since the last look, so their attempts can be
                marked `lost` and retried elsewhere.

The table is owned by the scheduler's thread; `snapshot()` returns plain rows for other threads (the
API's `GET /api/v1/nodes`, `freight nodes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from freight.jobs.placement import Node

if TYPE_CHECKING:
    from freight.runtime.ray_cluster import ClusterRuntime


@dataclass(frozen=True)
class NodeInfo:
    """A node as its source describes it."""

    id: str
    address: str
    cpus: float
    memory: int
    alive: bool = True
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """What people read: a Ray node id is 56 hex digits, its first 12 say which one."""
        return self.id if len(self.id) <= 20 else self.id[:12]


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

    def list(self) -> list[NodeInfo]:
        return [
            NodeInfo(n.id, n.address, n.cpus, n.memory, n.alive, dict(n.labels)) for n in self.runtime.nodes()
        ]


@dataclass
class _Entry:
    info: NodeInfo
    used_cpus: float = 0.0
    used_memory: int = 0
    running: int = 0


class NodeTable:
    def __init__(self, source: NodeSource) -> None:
        self.source = source
        self._nodes: dict[str, _Entry] = {}
        #: placement rows (ordered by id), rebuilt when the nodes change; a charge replaces one row
        self._rows: list[Node] | None = None
        self._row_of: dict[str, int] = {}

    @property
    def remote(self) -> bool:
        return self.source.remote

    def refresh(self, infos: Iterable[NodeInfo] | None = None) -> list[str]:
        """Read the nodes again (from `infos`, else the source). Returns the ids of nodes that were
        alive and are now dead or gone: their attempts are lost."""
        found = {i.id: i for i in (self.source.list() if infos is None else infos)}
        lost = []
        for node_id, entry in self._nodes.items():
            now = found.get(node_id)
            if entry.info.alive and (now is None or not now.alive):
                lost.append(node_id)
            if now is None:  # forgotten by the cluster: keep it, dead, while attempts may name it
                found[node_id] = replace(entry.info, alive=False)
        for node_id, info in found.items():
            known = self._nodes.get(node_id)
            if known is None:
                self._nodes[node_id] = _Entry(info)
            else:
                known.info = info
        self._rows = None
        return lost

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def alive(self, node_id: str) -> bool:
        entry = self._nodes.get(node_id)
        return entry is not None and entry.info.alive

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
            entry = self._nodes[node_id] = _Entry(NodeInfo(node_id, "", 0.0, 0, alive=False))
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
        """The nodes as placement sees them (dead ones are not schedulable), ordered by id."""
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
                    schedulable=e.info.alive,
                    labels=e.info.labels,
                )
                for e in (self._nodes[node_id] for node_id in ordered)
            ]
        return self._rows

    @property
    def used(self) -> tuple[float, int]:
        return (
            sum(e.used_cpus for e in self._nodes.values()),
            sum(e.used_memory for e in self._nodes.values()),
        )

    @property
    def capacity(self) -> tuple[float, int]:
        """What the live nodes offer in all."""
        live = [e.info for e in self._nodes.values() if e.info.alive]
        return sum(i.cpus for i in live), sum(i.memory for i in live)

    def snapshot(self) -> list[dict[str, Any]]:
        """One plain row per node: id, name, address, cpus, memory, used_cpus, used_memory, running,
        labels, state (alive | dead)."""
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
                "state": "alive" if e.info.alive else "dead",
            }
            for _, e in sorted(self._nodes.items())
        ]
