"""Scaler: wires the autoscaling decision (jobs/autoscale.py) to Ray and the store.

The scheduler offers its demand at most once per `interval` (a list swap on its own thread: no I/O in
a tick); the scaler's thread plans from the latest offer, tells Ray when the shape changes
(`request`, runtime/ray_autoscale.py), keeps the nodes that run jobs marked busy in the cluster
(`hold`, runtime/ray_holds.py) and records what happened in `scaling_events`: each new request, and
each node that came or went. The capacity page and GET /api/v1/capacity read them back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select

from freight.db.schema import scaling_events
from freight.jobs.autoscale import AutoscaleSettings, Bundle, Demand, ScalePlan, Shape, plan_scale
from freight.jobs.placement import Node

log = logging.getLogger(__name__)

#: how many scaling events the capacity page shows
RECENT_EVENTS = 50


@dataclass(frozen=True)
class Offer:
    held: tuple[Demand, ...]
    waiting: tuple[Demand, ...]
    nodes: tuple[Node, ...]


class Scaler:
    def __init__(
        self,
        engine: Engine,
        settings: AutoscaleSettings,
        request: Callable[[list[Bundle]], None],
        *,
        hold: Callable[[set[str]], None] | None = None,
        retire: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.request = request
        #: marks in the cluster the nodes that run jobs (runtime/ray_holds.py), so the autoscaler
        #: removes idle nodes, never busy ones
        self.hold = hold
        #: lets go of the agent of a node idle for the cool-down (ClusterRuntime.retire; idempotent),
        #: so the autoscaler may remove it: Ray counts a node with a live agent as busy
        self.retire = retire
        #: node -> since when it has run no job (alive nodes only)
        self._idle_since: dict[str, float] = {}
        self.clock = clock
        self.shape = Shape()
        #: the last plan (for the capacity page); None before the first
        self.last: ScalePlan | None = None
        self._offer: Offer | None = None
        self._offered_at = float("-inf")
        self._known: set[str] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the scheduler's side (its own thread; cheap) -------------------------------------------------

    def due(self, now: float) -> bool:
        """Whether the scheduler should offer its demand now (at most once per interval)."""
        return now - self._offered_at >= max(self.settings.interval, 1.0)

    def offer(
        self, held: Sequence[Demand], waiting: Sequence[Demand], nodes: Sequence[Node], now: float
    ) -> None:
        self._offer = Offer(tuple(held), tuple(waiting), tuple(nodes))
        self._offered_at = now
        self._wake.set()

    # -- the scaler's side --------------------------------------------------------------------------

    def step(self) -> ScalePlan | None:
        """Plan from the latest offer; ask Ray for a changed shape and record events. Returns the plan
        (None before any offer)."""
        offer = self._offer
        if offer is None:
            return None
        now = self.clock()
        plan = plan_scale(offer.held, offer.waiting, offer.nodes, self.shape, now, self.settings)
        alive = {n.name for n in offer.nodes if n.schedulable}
        rows: list[dict[str, Any]] = []
        if self._known is not None:
            rows += [
                self._node_row(now, "node_added", name, len(alive)) for name in sorted(alive - self._known)
            ]
            rows += [
                self._node_row(now, "node_removed", name, len(alive)) for name in sorted(self._known - alive)
            ]
        self._known = alive
        if plan.changed:
            self.request(plan.shape.ray_bundles(self.settings.bundle_memory))
            rows.append(
                {
                    "at": now,
                    "kind": "request",
                    "node": None,
                    "bundles": len(plan.shape.bundles),
                    "cpus": plan.shape.cpus,
                    "memory": plan.shape.memory,
                    "nodes": len(alive),
                    "detail": plan.reason,
                }
            )
        busy = {n.name for n in offer.nodes if n.schedulable and (n.used_cpus > 0 or n.used_memory > 0)}
        if self.hold is not None:
            self.hold(busy)
        self._retire_idle(alive, busy, plan, now)
        self.shape = plan.shape
        self.last = plan
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(scaling_events), rows)
        return plan

    def _retire_idle(self, alive: set[str], busy: set[str], plan: ScalePlan, now: float) -> None:
        """Let go of the agents of nodes idle for the cool-down while no job waits for room."""
        for name in busy | (set(self._idle_since) - alive):
            self._idle_since.pop(name, None)
        for name in alive - busy:
            self._idle_since.setdefault(name, now)
        if self.retire is None or plan.unplaced:
            return
        for name, since in sorted(self._idle_since.items()):
            if now - since >= self.settings.cooldown:
                self.retire(name)

    @staticmethod
    def _node_row(now: float, kind: str, name: str, count: int) -> dict[str, Any]:
        return {
            "at": now,
            "kind": kind,
            "node": name,
            "bundles": None,
            "cpus": None,
            "memory": None,
            "nodes": count,
            "detail": None,
        }

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="freight-scaler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.step()
            except Exception:  # Ray or the store is away for now: the next offer tries again
                log.exception("autoscaling step failed; trying again with the next offer")

    def snapshot(self) -> dict[str, Any]:
        """The demand as the capacity page shows it."""
        plan = self.last
        return {
            "autoscale": True,
            "requested": {
                "bundles": len(self.shape.bundles),
                "cpus": self.shape.cpus,
                "memory": self.shape.memory,
            },
            "unplaced": plan.unplaced if plan else 0,
            "unfit": plan.unfit if plan else 0,
            "reason": plan.reason if plan else None,
        }


def recent_events(engine: Engine, limit: int = RECENT_EVENTS) -> list[dict[str, Any]]:
    """The latest scaling events, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(scaling_events).order_by(scaling_events.c.id.desc()).limit(limit)
        ).mappings()
        return [{k: v for k, v in row.items() if v is not None} for row in rows]
