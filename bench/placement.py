"""Placement alone: the pure function that picks a node, over simulated clusters (no I/O, no store).

A cluster of N nodes of mixed sizes (4 to 64 cpus, 16 to 256 GiB, three zones) and a queue of 100,000 jobs of
mixed sizes (0.25 to 4 cpus, 256 MiB to 8 GiB; one in ten constrained to a zone). Jobs are placed in queue
order; a node's use grows with each placement, and the oldest running jobs end whenever the cluster's
cpus are more than 75% used (steady churn on a busy cluster); a job that fits nowhere frees room the
same way. Measured for the bounded scan freight uses on clusters (the first
K feasible nodes from a rotating start, K = 2 log2 N, as Nomad's batch scheduler samples) and for the
exhaustive scan (every node scored), at 100, 1,000 and 10,000 nodes, and for the scheduler's own path
("table": the bounded scan over the NodeTable the scheduler keeps, charged and discharged per job as
the scheduler does, so the node-aware bookkeeping is in the figure). Nomad's C1M run placed ~3,750
containers/s; the target here is ≥ 5,000 placements/s at 1,000 nodes.

    python bench/placement.py [--jobs 100000] [--nodes 100,1000,10000]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

from freight.jobs.placement import Node, Request, place
from freight.jobs.scheduler.nodes import NodeInfo, NodeTable
from freight.jobs.scheduler.place import scan_limit

RESULTS = Path(__file__).parent / "results"
ZONES = ("eu", "us", "asia")
GIB = 1 << 30


def cluster(n: int, rng: random.Random) -> list[Node]:
    return [
        Node(
            f"node-{i:05}",
            float(rng.choice((4, 8, 16, 32, 64))),
            rng.choice((16, 32, 64, 128, 256)) * GIB,
            labels={"zone": ZONES[i % len(ZONES)]},
        )
        for i in range(n)
    ]


def queue(n: int, rng: random.Random) -> list[Request]:
    return [
        Request(
            rng.choice((0.25, 0.5, 1.0, 2.0, 4.0)),
            rng.choice((256 << 20, GIB, 2 * GIB, 8 * GIB)),
            constraints={"zone": rng.choice(ZONES)} if rng.random() < 0.1 else {},
        )
        for _ in range(n)
    ]


def run(nodes: list[Node], jobs: list[Request], limit: int | None, busy: float = 0.75) -> dict[str, float]:
    index = {node.name: i for i, node in enumerate(nodes)}
    capacity = sum(n.cpus for n in nodes)
    running: deque[tuple[int, Request]] = deque()
    placed = freed = 0
    used = 0.0
    start_at = 0

    def end_oldest() -> None:
        nonlocal freed, used
        j, old = running.popleft()
        n = nodes[j]
        nodes[j] = replace(n, used_cpus=n.used_cpus - old.cpus, used_memory=n.used_memory - old.memory)
        used -= old.cpus
        freed += 1

    t0 = time.perf_counter()
    for req in jobs:
        while used > busy * capacity:
            end_oldest()
        while True:
            decision = place(req, nodes, limit=limit, start=start_at)
            start_at = (start_at + 1) % len(nodes)
            if decision.node is not None:
                i = index[decision.node]
                n = nodes[i]
                nodes[i] = replace(
                    n, used_cpus=n.used_cpus + req.cpus, used_memory=n.used_memory + req.memory
                )
                running.append((i, req))
                used += req.cpus
                placed += 1
                break
            if not running:
                break  # fits nowhere even on an empty cluster
            end_oldest()
    seconds = time.perf_counter() - t0
    return {
        "placed": placed,
        "ended": freed,
        "seconds": seconds,
        "per_second": placed / seconds,
        "us_per_placement": seconds / placed * 1e6,
    }


class Listed:
    """A NodeSource for the table: the simulated cluster's nodes."""

    remote = True

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = [NodeInfo(n.name, "", n.cpus, n.memory, True, dict(n.labels)) for n in nodes]

    def list(self) -> list[NodeInfo]:
        return self.nodes


def run_table(nodes: list[Node], jobs: list[Request], busy: float = 0.75) -> dict[str, float]:
    """As run(), through the scheduler's NodeTable and its scan limit (Scheduler._decide_node)."""
    table = NodeTable(Listed(nodes))
    table.refresh()
    limit = scan_limit(len(nodes))
    capacity = sum(n.cpus for n in nodes)
    running: deque[tuple[str, Request]] = deque()
    placed = freed = 0
    used = 0.0
    start_at = 0

    def end_oldest() -> None:
        nonlocal freed, used
        name, old = running.popleft()
        table.discharge(name, old.cpus, old.memory)
        used -= old.cpus
        freed += 1

    t0 = time.perf_counter()
    for req in jobs:
        while used > busy * capacity:
            end_oldest()
        while True:
            start_at += 1
            decision = place(req, table.placement_nodes(), limit=limit, start=start_at)
            if decision.node is not None:
                table.charge(decision.node, req.cpus, req.memory)
                running.append((decision.node, req))
                used += req.cpus
                placed += 1
                break
            if not running:
                break
            end_oldest()
    seconds = time.perf_counter() - t0
    return {
        "placed": placed,
        "ended": freed,
        "seconds": seconds,
        "per_second": placed / seconds,
        "us_per_placement": seconds / placed * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--nodes", default="100,1000,10000")
    args = parser.parse_args()
    rows = []
    for count in (int(x) for x in args.nodes.split(",")):
        limit = max(2, 2 * math.ceil(math.log2(count)))
        for label, lim, jobs in (
            ("bounded", limit, args.jobs),
            ("exhaustive", None, max(2000, args.jobs // 50)),
        ):
            rng = random.Random(7)
            result = run(cluster(count, rng), queue(jobs, rng), lim)
            rows.append(report(count, label, lim, jobs, result))
        rng = random.Random(7)
        result = run_table(cluster(count, rng), queue(args.jobs, rng))
        rows.append(report(count, "table", scan_limit(count), args.jobs, result))
    RESULTS.mkdir(exist_ok=True)
    out = {"machine": platform.node(), "python": platform.python_version(), "rows": rows}
    (RESULTS / "placement.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {RESULTS / 'placement.json'}")


def report(count: int, label: str, lim: int | None, jobs: int, result: dict[str, float]) -> dict[str, object]:
    row = {"nodes": count, "scan": label, "limit": lim, "jobs": jobs, **result}
    print(
        f"{count:>6} nodes  {label:<10} (K={lim or 'all'}): "
        f"{result['per_second']:>9,.0f} placements/s "
        f"({result['us_per_placement']:.1f} µs each; {int(result['placed']):,} placed, "
        f"{int(result['ended']):,} ended to make room)"
    )
    return row


if __name__ == "__main__":
    main()
