"""Placement: a pure function from (request, snapshot of nodes) to a decision.

feasibility filters (schedulable, constraints on node labels, free cpus and memory) -> score (binpack:
the node left fullest; spread: the node left emptiest) -> pick. Every rejected node gets a reason, so
"why is my job still queued?" has an answer in the CLI, the API and the UI ("node-2: needs 2G memory,
1.1G of 8G free").

On a large cluster, scoring every node for every job is wasted work: like Nomad's batch scheduler,
`place(..., limit=K)` scans nodes from a rotating `start` and stops once K feasible ones are found (a
few random choices place nearly as well as all of them). Only a job that fits nowhere scans them all,
so its reasons are complete.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from freight.units import format_bytes, plural


def node_name(node_id: str) -> str:
    """What people read for a node: a host name as it is; a Ray node id (56 hex digits) by its
    first 12, which say which one."""
    return node_id if len(node_id) <= 20 else node_id[:12]


@dataclass(frozen=True)
class Node:
    name: str
    cpus: float
    memory: int
    used_cpus: float = 0.0
    used_memory: int = 0
    schedulable: bool = True
    #: what jobs can constrain on: e.g. {"zone": "b", "disk": "ssd"}; "node.name" is always present.
    labels: Mapping[str, str] = field(default_factory=dict)
    #: why it is not schedulable (its agent does not answer, ...): shown as the node's rejection
    reason: str | None = None

    @property
    def free_cpus(self) -> float:
        return self.cpus - self.used_cpus

    @property
    def free_memory(self) -> int:
        return self.memory - self.used_memory


Strategy = Literal["binpack", "spread"]


@dataclass(frozen=True)
class Request:
    cpus: float
    memory: int
    #: label -> required value; "node.name" names one node.
    constraints: Mapping[str, str] = field(default_factory=dict)
    strategy: Strategy = "binpack"


@dataclass(frozen=True)
class Decision:
    node: str | None
    #: True when no node could ever fit the request, even empty: waiting will not help.
    impossible: bool = False
    #: what was asked of which nodes: the reasons are written from them only when someone reads them
    _req: Request | None = field(default=None, repr=False, compare=False)
    _nodes: tuple[Node, ...] = field(default=(), repr=False, compare=False)

    @property
    def rejected(self) -> dict[str, str]:
        """node name -> why it cannot take the job (empty when placed)."""
        if self.node is not None or self._req is None:
            return {}
        req = self._req
        if self.impossible:
            return {n.name: _never(n, req) for n in self._nodes}
        return {n.name: _reject(n, req) or "busy" for n in self._nodes}

    def why(self) -> str:
        if self.node is not None:
            return f"placed on {self.node}"
        rejected = self.rejected
        if not rejected:
            return "no nodes"
        return "; ".join(f"{name}: {reason}" for name, reason in sorted(rejected.items()))


_EPS = 1e-9


def _label(node: Node, key: str) -> str | None:
    """A node's value for a constraint key: `node.name`, or a label written `zone` or `node.zone`."""
    if key == "node.name":
        return node.name
    return node.labels.get(key.removeprefix("node."))


def _unmatched(node: Node, req: Request) -> str | None:
    for key, want in req.constraints.items():
        have = _label(node, key)
        if have is None:
            return f"has no label {key} (the job needs {key}={want})"
        if have != want:
            return f"{key} is {have!r}, the job needs {want!r}"
    return None


def _reject(node: Node, req: Request) -> str | None:
    if not node.schedulable:
        return f"not schedulable: {node.reason}" if node.reason else "not schedulable"
    unmatched = _unmatched(node, req)
    if unmatched is not None:
        return unmatched
    problems = []
    if req.cpus > node.free_cpus + _EPS:
        problems.append(f"needs {plural(req.cpus, 'cpu')}, {max(node.free_cpus, 0):g} of {node.cpus:g} free")
    if req.memory > node.free_memory:
        problems.append(
            f"needs {format_bytes(req.memory)} memory, "
            f"{format_bytes(max(node.free_memory, 0))} of {format_bytes(node.memory)} free"
        )
    return " and ".join(problems) or None


def _score(node: Node, req: Request) -> float:
    """binpack prefers the node left fullest afterwards (best fit), so big jobs keep room elsewhere;
    spread prefers the node left emptiest, so a queue's jobs land on different machines."""
    cpu_left = (node.free_cpus - req.cpus) / node.cpus if node.cpus else 0.0
    mem_left = (node.free_memory - req.memory) / node.memory if node.memory else 0.0
    left = (cpu_left + mem_left) / 2
    return left if req.strategy == "spread" else -left


def _could_ever_fit(node: Node, req: Request) -> bool:
    return (
        req.cpus <= node.cpus + _EPS
        and req.memory <= node.memory
        and (not req.constraints or _unmatched(node, req) is None)
    )


def _fits(node: Node, req: Request) -> bool:
    """The numbers-only feasibility test (no strings): the hot path of a large cluster."""
    return (
        node.schedulable
        and req.cpus <= node.cpus - node.used_cpus + _EPS
        and req.memory <= node.memory - node.used_memory
        and (not req.constraints or _unmatched(node, req) is None)
    )


def place(req: Request, nodes: Sequence[Node], *, limit: int | None = None, start: int = 0) -> Decision:
    """Pick a node for `req`. With `limit`, scan from `start` (wrapping) and stop at `limit` feasible
    nodes; without it, score every node. Reasons are written only when no node fits."""
    feasible: list[Node] = []
    count = len(nodes)
    first = start % count if count else 0
    for node in itertools.chain(itertools.islice(nodes, first, None), itertools.islice(nodes, first)):
        if _fits(node, req):
            feasible.append(node)
            if limit is not None and len(feasible) >= limit:
                break
    if feasible:
        best = max(feasible, key=lambda n: (_score(n, req), n.name))
        return Decision(node=best.name)
    impossible = bool(nodes) and not any(_could_ever_fit(n, req) for n in nodes)
    return Decision(node=None, impossible=impossible, _req=req, _nodes=tuple(nodes))


def _never(node: Node, req: Request) -> str:
    unmatched = _unmatched(node, req)
    if unmatched is not None:
        return unmatched
    return (
        f"needs {plural(req.cpus, 'cpu')} and {format_bytes(req.memory)}; the node has only "
        f"{plural(node.cpus, 'cpu')} and {format_bytes(node.memory)} in all"
    )
