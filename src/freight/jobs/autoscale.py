"""Autoscaling from the queue: a pure function from demand to the cluster shape to ask for.

Ray's autoscaler takes a *shape*, not a delta: `request_resources(bundles=[...])` asks for a cluster
on which all these bundles fit at once, and the request stands until the next one replaces it. So
freight asks for one bundle per job that holds resources now (running, starting) plus one per queued
job that some node could hold (one there is, or one the autoscaler may add); the autoscaler adds
nodes until they all fit, and once the demand falls, removes the nodes left idle after its idle
timeout.

Two rules keep the cluster from flapping:
- **cool-down**: a smaller shape is asked for only once demand has stayed below the last request for
  `cooldown` seconds (a queue that drains between two bursts keeps its nodes);
- **cap**: at most `max_bundles` bundles (largest first), so a million queued jobs do not make a
  million-entry request (the autoscaler is bounded by its `max_workers` anyway).

No I/O, no clock: `now` is an argument (jobs/scaling.py calls this and talks to Ray).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from freight.errors import UserError
from freight.jobs.placement import Node
from freight.units import format_bytes, parse_bytes, parse_cpus, plural

#: a Ray resource bundle: {"CPU": 2.0, "memory": 1073741824.0}
Bundle = dict[str, float]


@dataclass(frozen=True)
class Demand:
    """What one job holds or asks for."""

    cpus: float
    memory: int

    def bundle(self, memory: bool = True) -> Bundle:
        return {"CPU": self.cpus, "memory": float(self.memory)} if memory else {"CPU": self.cpus}


@dataclass(frozen=True)
class AutoscaleSettings:
    """FREIGHT_AUTOSCALE* settings. `node_cpus`/`node_memory` describe the largest node the
    autoscaler can add (its biggest worker type): a job bigger than that fails at once, a job that
    fits it waits for the autoscaler."""

    enabled: bool = False
    node_cpus: float = 0.0
    node_memory: int = 0
    cooldown: float = 60.0
    max_bundles: int = 1000
    #: seconds between two looks at the demand (at most once per second)
    interval: float = 1.0
    #: whether bundles carry memory: off when the autoscaler's node types declare CPUs only (Ray's
    #: fake provider cannot declare memory; on a cloud the types' memory is usually known)
    bundle_memory: bool = True

    def could_grow_for(self, demand: Demand) -> bool:
        """Whether a node the autoscaler may add could hold `demand`."""
        return self.enabled and demand.cpus <= self.node_cpus + 1e-9 and demand.memory <= self.node_memory


def autoscale_settings(env: Mapping[str, str] | None = None) -> AutoscaleSettings:
    """Read FREIGHT_AUTOSCALE (on/off), FREIGHT_AUTOSCALE_NODE_CPUS, FREIGHT_AUTOSCALE_NODE_MEMORY,
    FREIGHT_AUTOSCALE_COOLDOWN (seconds), FREIGHT_AUTOSCALE_MAX_BUNDLES, FREIGHT_AUTOSCALE_BUNDLE_MEMORY
    (on/off); a bad value names its field."""
    env = os.environ if env is None else env
    enabled = _flag(env, "FREIGHT_AUTOSCALE", default=False)

    def read(name: str, parse: type[float] | type[int], default: float) -> float:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = parse(raw)
        except ValueError:
            raise UserError(f"{raw!r} is not a number", where=name) from None
        if value < 0:
            raise UserError(f"{raw!r} is negative", where=name)
        return value

    try:
        cpus = (
            parse_cpus(env["FREIGHT_AUTOSCALE_NODE_CPUS"]) if env.get("FREIGHT_AUTOSCALE_NODE_CPUS") else 0.0
        )
    except ValueError as exc:
        raise UserError(str(exc), where="FREIGHT_AUTOSCALE_NODE_CPUS") from None
    try:
        raw_memory = env.get("FREIGHT_AUTOSCALE_NODE_MEMORY")
        memory = parse_bytes(raw_memory) if raw_memory else 0
    except ValueError as exc:
        raise UserError(str(exc), where="FREIGHT_AUTOSCALE_NODE_MEMORY") from None
    if enabled and (cpus <= 0 or memory <= 0):
        raise UserError(
            "autoscaling needs the size of the node it may add",
            where="FREIGHT_AUTOSCALE_NODE_CPUS",
            hint="set it and FREIGHT_AUTOSCALE_NODE_MEMORY to your largest worker type",
        )
    return AutoscaleSettings(
        enabled=enabled,
        node_cpus=cpus,
        node_memory=memory,
        cooldown=read("FREIGHT_AUTOSCALE_COOLDOWN", float, 60.0),
        max_bundles=max(1, int(read("FREIGHT_AUTOSCALE_MAX_BUNDLES", int, 1000))),
        bundle_memory=_flag(env, "FREIGHT_AUTOSCALE_BUNDLE_MEMORY", default=True),
    )


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in {"0", "1", "false", "true", "off", "on", "no", "yes"}:
        raise UserError(f"{raw!r} is not on or off", where=name, hint="use on or off")
    return raw in {"1", "true", "on", "yes"}


@dataclass(frozen=True)
class Shape:
    """What freight asked the autoscaler for, and when demand last reached it."""

    bundles: tuple[Demand, ...] = ()
    #: when demand last needed this shape (the cool-down counts from here)
    since: float = 0.0

    @property
    def cpus(self) -> float:
        return sum(d.cpus for d in self.bundles)

    @property
    def memory(self) -> int:
        return sum(d.memory for d in self.bundles)

    def ray_bundles(self, memory: bool = True) -> list[Bundle]:
        return [d.bundle(memory) for d in self.bundles]

    def describe(self) -> str:
        if not self.bundles:
            return "nothing"
        return f"{plural(len(self.bundles), 'bundle')}: {self.cpus:g} cpus, {format_bytes(self.memory)}"


@dataclass(frozen=True)
class ScalePlan:
    #: the shape to ask for now
    shape: Shape
    #: True when it differs from the previous request (the caller tells Ray, and records an event)
    changed: bool
    #: waiting jobs that fit on no current node (the demand the autoscaler is asked to meet)
    unplaced: int
    #: waiting jobs no node the autoscaler may add could hold (they fail; counted for the page)
    unfit: int
    reason: str


def _fits_now(demand: Demand, free: list[list[float]]) -> bool:
    """First-fit `demand` into the nodes' free (cpus, memory); takes the room when it fits."""
    for room in free:
        if demand.cpus <= room[0] + 1e-9 and demand.memory <= room[1]:
            room[0] -= demand.cpus
            room[1] -= demand.memory
            return True
    return False


def plan_scale(
    held: Sequence[Demand],
    waiting: Sequence[Demand],
    nodes: Sequence[Node],
    previous: Shape,
    now: float,
    settings: AutoscaleSettings,
) -> ScalePlan:
    """The shape to request: a bundle per job holding resources (`held`) and per waiting job that a
    node could ever hold (one there is, or one the autoscaler may add); a smaller shape than
    `previous` only after the cool-down. Ray fits the whole shape onto the cluster at once, so the
    waiting jobs that will start on today's nodes are in it too: else their room would count twice.
    Waiting jobs are taken in the order given (the queues' order)."""
    schedulable = [n for n in nodes if n.schedulable]
    free = [[n.free_cpus, float(n.free_memory)] for n in schedulable]
    wanted: list[Demand] = list(held)
    unplaced = unfit = 0
    for demand in waiting:
        fits_now = _fits_now(demand, free)
        if not (fits_now or settings.could_grow_for(demand) or _fits_a_node(demand, schedulable)):
            unfit += 1  # no node there is or could be added would ever hold it: it fails
            continue
        wanted.append(demand)
        unplaced += not fits_now
    wanted = sorted(wanted, key=lambda d: (-d.cpus, -d.memory))[: settings.max_bundles]
    want = Shape(tuple(wanted), now)
    if not _smaller(want, previous):
        changed = want.bundles != previous.bundles
        why = f"{plural(unplaced, 'job')} waiting for a new node" if unplaced else "demand met"
        return ScalePlan(want if changed else Shape(previous.bundles, now), changed, unplaced, unfit, why)
    if now - previous.since < settings.cooldown:
        left = settings.cooldown - (now - previous.since)
        return ScalePlan(previous, False, unplaced, unfit, f"cooling down ({left:.0f}s before shrinking)")
    return ScalePlan(want, True, unplaced, unfit, f"demand fell to {want.describe()}")


def _fits_a_node(demand: Demand, nodes: Sequence[Node]) -> bool:
    return any(demand.cpus <= n.cpus + 1e-9 and demand.memory <= n.memory for n in nodes)


def _smaller(want: Shape, previous: Shape) -> bool:
    """Whether `want` asks for less than `previous` in cpus or memory (and no more in either)."""
    return (want.cpus < previous.cpus - 1e-9 or want.memory < previous.memory) and (
        want.cpus <= previous.cpus + 1e-9 and want.memory <= previous.memory
    )
