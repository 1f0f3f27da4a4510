"""Placement: a pure function from (request, snapshot of nodes) to a decision.

feasibility filters -> bin-pack score -> pick. Every rejected node gets a reason, so "why is my job
still queued?" has an answer in the CLI, the API and the UI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from freight.units import format_bytes, plural


@dataclass(frozen=True)
class Node:
    name: str
    cpus: float
    memory: int
    used_cpus: float = 0.0
    used_memory: int = 0
    schedulable: bool = True

    @property
    def free_cpus(self) -> float:
        return self.cpus - self.used_cpus

    @property
    def free_memory(self) -> int:
        return self.memory - self.used_memory


@dataclass(frozen=True)
class Request:
    cpus: float
    memory: int


@dataclass(frozen=True)
class Decision:
    node: str | None
    #: node name -> why it cannot take the job (empty when placed)
    rejected: dict[str, str] = field(default_factory=dict)
    #: True when no node could ever fit the request, even empty: waiting will not help.
    impossible: bool = False

    def why(self) -> str:
        if self.node is not None:
            return f"placed on {self.node}"
        if not self.rejected:
            return "no nodes"
        return "; ".join(f"{name}: {reason}" for name, reason in sorted(self.rejected.items()))


_EPS = 1e-9


def _reject(node: Node, req: Request) -> str | None:
    if not node.schedulable:
        return "not schedulable"
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
    """Bin-pack: prefer the node left fullest afterwards (best fit), so big jobs keep room elsewhere."""
    cpu_left = (node.free_cpus - req.cpus) / node.cpus if node.cpus else 0.0
    mem_left = (node.free_memory - req.memory) / node.memory if node.memory else 0.0
    return -(cpu_left + mem_left) / 2


def place(req: Request, nodes: list[Node]) -> Decision:
    rejected: dict[str, str] = {}
    feasible: list[Node] = []
    for node in nodes:
        reason = _reject(node, req)
        if reason is None:
            feasible.append(node)
        else:
            rejected[node.name] = reason
    if feasible:
        best = max(feasible, key=lambda n: (_score(n, req), n.name))
        return Decision(node=best.name)
    impossible = all(req.cpus > n.cpus + _EPS or req.memory > n.memory for n in nodes)
    if impossible:
        rejected = {
            n.name: f"needs {plural(req.cpus, 'cpu')} and {format_bytes(req.memory)}; the node has only "
            f"{plural(n.cpus, 'cpu')} and {format_bytes(n.memory)} in all"
            for n in nodes
        }
    return Decision(node=None, rejected=rejected, impossible=impossible)
