"""The scaler between the scheduler and an autoscaler, deterministically: the scheduler's offers, the
requests the autoscaler is given (a list here; Ray's in tests/runtime/test_ray_autoscale.py) and the
scaling events in the real store; a job too big for today's nodes waits for a new one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from freight.jobs.autoscale import AutoscaleSettings, Bundle, Demand
from freight.jobs.placement import Node
from freight.jobs.scaling import Scaler, recent_events
from freight.jobs.scheduler import Scheduler
from freight.jobs.scheduler.nodes import NodeInfo
from freight.jobs.service import JobService
from freight.jobs.states import JobState
from tests.jobs.fakes import FakeClock
from tests.jobs.test_nodes import Harness, NodeRuntime, svc, two_nodes

__all__ = ["svc"]  # the JobService fixture of test_nodes, used here too

G = 1 << 30
SETTINGS = AutoscaleSettings(enabled=True, node_cpus=8, node_memory=16 * G, cooldown=0)


@dataclass
class Requests:
    sent: list[list[Bundle]] = field(default_factory=list)

    def __call__(self, bundles: list[Bundle]) -> None:
        self.sent.append(bundles)


def test_ray_is_told_only_when_the_shape_changes_and_every_step_is_recorded(svc: JobService) -> None:
    clock = FakeClock()
    requests = Requests()
    scaler = Scaler(svc.engine, SETTINGS, requests, clock=clock)
    assert scaler.step() is None  # nothing offered yet
    one = [Node("a", 1, 2 * G)]
    scaler.offer([], [Demand(1, G), Demand(2, G)], one, clock())
    plan = scaler.step()
    assert (
        plan is not None
        and plan.unplaced == 1
        and requests.sent == [[{"CPU": 2, "memory": float(G)}, {"CPU": 1, "memory": float(G)}]]
    )
    scaler.offer([], [Demand(1, G), Demand(2, G)], one, clock())
    scaler.step()
    assert len(requests.sent) == 1  # the same shape: Ray is not asked again
    two = [*one, Node("b", 8, 16 * G)]
    scaler.offer([Demand(1, G), Demand(2, G)], [], two, clock())
    scaler.step()
    scaler.offer([], [], one, clock())
    scaler.step()
    assert requests.sent[-1] == []
    events = list(reversed(recent_events(svc.engine)))
    assert [(e["kind"], e.get("node"), e.get("bundles"), e["nodes"]) for e in events] == [
        ("request", None, 2, 1),
        ("node_added", "b", None, 2),
        ("node_removed", "b", None, 1),
        ("request", None, 0, 1),
    ]
    assert scaler.snapshot()["requested"] == {"bundles": 0, "cpus": 0, "memory": 0}


def test_the_nodes_that_run_jobs_are_held_in_the_cluster(svc: JobService) -> None:
    held: list[set[str]] = []
    scaler = Scaler(svc.engine, SETTINGS, Requests(), hold=held.append, clock=FakeClock())
    nodes = [Node("a", 2, G, used_cpus=1), Node("b", 2, G), Node("c", 2, G, used_memory=1, schedulable=False)]
    scaler.offer([Demand(1, G)], [], nodes, 0)
    scaler.step()
    scaler.offer([], [], [Node("a", 2, G), Node("b", 2, G)], 1)
    scaler.step()
    assert held == [{"a"}, set()]  # busy and alive only; none once the jobs ended


def test_idle_nodes_agents_are_let_go_after_the_cooldown_unless_jobs_wait(svc: JobService) -> None:
    clock = FakeClock()
    retired: list[str] = []
    settings = AutoscaleSettings(enabled=True, node_cpus=8, node_memory=16 * G, cooldown=30)
    scaler = Scaler(svc.engine, settings, Requests(), retire=retired.append, clock=clock)

    def look(nodes: list[Node], waiting: list[Demand] = []) -> list[str]:  # noqa: B006
        retired.clear()
        scaler.offer([], waiting, nodes, clock())
        scaler.step()
        return sorted(retired)

    idle_b = [Node("a", 2, G, used_cpus=1), Node("b", 2, G)]
    assert look(idle_b) == []  # b just became idle
    clock.advance(30)
    assert look(idle_b) == ["b"]  # idle for the cool-down: let go (again at each look: idempotent)
    assert look(idle_b, waiting=[Demand(4, G)]) == []  # a job waits for room: keep every agent
    assert look([Node("a", 2, G, used_cpus=1), Node("b", 2, G, used_cpus=1)]) == []  # b busy again
    clock.advance(10)
    assert look(idle_b) == []  # its idle time starts over


@pytest.fixture
def scaled(svc: JobService) -> Iterator[tuple[Harness, Scaler, Requests]]:
    h = Harness(svc, nodes=two_nodes(), clock=FakeClock())
    h.runtime = NodeRuntime(svc.settings.run_dir)
    requests = Requests()
    scaler = Scaler(svc.engine, SETTINGS, requests, clock=h.clock)
    h.sched = Scheduler(
        svc.engine, h.runtime, svc.settings, clock=h.clock, poll_interval=0.01, nodes=h.nodes, scaler=scaler
    )
    h.sched.start()
    yield h, scaler, requests
    h.sched.stop()
    h.sched.close()


def test_a_job_too_big_for_todays_nodes_waits_for_the_autoscaler_and_runs_on_the_new_node(
    scaled: tuple[Harness, Scaler, Requests],
) -> None:
    h, scaler, requests = scaled
    big = h.submit(resources={"cpus": 8, "memory": "4G"})
    h.until(lambda: "autoscaler" in (h.svc.get(big).reason or ""))
    view = h.svc.get(big)
    assert view.state is JobState.QUEUED
    assert "waiting for the autoscaler to add a node: node-1: needs 8 cpus" in (view.reason or "")
    assert scaler.step() is not None  # the scheduler offered its demand on the tick
    assert requests.sent == [[{"CPU": 8, "memory": float(4 * G)}]]
    assert scaler.snapshot()["unplaced"] == 1  # what the capacity page shows
    # the autoscaler adds a node: the job lands there
    h.nodes.nodes.append(NodeInfo("node-3", "10.0.0.3", 8.0, 16 * G))
    h.clock.advance(2)
    assert h.started(big) == "node-3"
    h.clock.advance(2)
    assert h.sched is not None
    h.sched.tick()
    scaler.step()
    kinds = [e["kind"] for e in reversed(recent_events(h.svc.engine))]
    assert kinds == ["request", "node_added"]


def test_a_job_bigger_than_any_node_the_autoscaler_may_add_still_fails(
    scaled: tuple[Harness, Scaler, Requests],
) -> None:
    h, _, _ = scaled
    huge = h.submit(resources={"cpus": 16, "memory": "1G"})
    h.until(lambda: h.svc.get(huge).state is JobState.FAILED)
    assert "can never run here" in (h.svc.get(huge).reason or "")
