"""Topological order with a stable tie-break, on graphlib (which also refuses cycles)."""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Hashable)


def stable_order(nodes: Sequence[T], deps: Mapping[T, Iterable[T]]) -> list[T]:
    """Every node after the nodes it depends on; among the nodes ready at any point, the one earliest
    in `nodes` goes first (file order, or sorted order, wherever the graph allows it). O((n + e) log n).

    Raises graphlib.CycleError (its args[1] is the cycle) when there is no such order."""
    rank = {node: i for i, node in enumerate(nodes)}
    sorter: graphlib.TopologicalSorter[T] = graphlib.TopologicalSorter()
    for node in nodes:
        sorter.add(node, *deps.get(node, ()))
    sorter.prepare()
    ready = [(rank.get(n, len(rank)), i, n) for i, n in enumerate(sorter.get_ready())]
    heapq.heapify(ready)
    order: list[T] = []
    tie = len(ready)
    while ready:
        node = heapq.heappop(ready)[2]
        order.append(node)
        sorter.done(node)
        for nxt in sorter.get_ready():
            tie += 1
            heapq.heappush(ready, (rank.get(nxt, len(rank)), tie, nxt))
    return order
