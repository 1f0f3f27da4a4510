"""Autoscaling on a real Ray cluster whose autoscaler adds and removes nodes on this machine (Ray's
fake multi-node provider): freight's demand becomes resource requests, the cluster grows from one node
to three under a queue and shrinks back once the queue is gone; the store records each step; a node
that runs freight's jobs is held in Ray, so the autoscaler removes an idle node instead."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import ray
from ray.util import get_placement_group
from sqlalchemy import Engine

from freight.config import Settings, load_settings
from freight.db.engine import open_engine
from freight.jobs.autoscale import AutoscaleSettings, Demand
from freight.jobs.placement import Node
from freight.jobs.scaling import Scaler, recent_events
from freight.jobs.service import JobService
from freight.jobs.states import JobState
from freight.runtime.ray_autoscale import RayAutoscaler
from freight.runtime.ray_cluster import connect
from freight.runtime.ray_holds import PREFIX, NodeHolds
from tests.conftest import CGROUP_PARENT
from tests.runtime.fake_autoscaler import fake_autoscaling_cluster

pytestmark = pytest.mark.slow
M = 1 << 20


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with fake_autoscaling_cluster(worker_cpus=1, max_workers=2, idle_minutes=0.05) as found:
        connect(found)
        try:
            yield found
        finally:
            ray.shutdown()


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = open_engine(settings.database_url)
    yield engine
    engine.dispose()


def wait_for(what: Callable[[], bool], timeout: float = 120) -> None:
    """Wait on a condition (not a duration): the autoscaler acts on its own schedule."""
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def nodes_now(autoscaler: RayAutoscaler) -> list[Node]:
    return [Node(n.id, n.cpus, n.memory) for n in autoscaler.nodes()]


def test_the_cluster_grows_from_one_node_to_three_under_a_queue_and_shrinks_back(
    address: str, engine: Engine
) -> None:
    autoscaler = RayAutoscaler(address)
    settings = AutoscaleSettings(
        enabled=True, node_cpus=1, node_memory=1 << 40, cooldown=0, bundle_memory=False
    )
    scaler = Scaler(engine, settings, autoscaler.request)
    assert len(autoscaler.nodes()) == 1
    queue = [Demand(1, 256 * M)] * 3  # three one-CPU jobs; the head node holds one

    def offer(held: list[Demand], waiting: list[Demand]) -> int:
        scaler.offer(held, waiting, nodes_now(autoscaler), time.time())
        scaler.step()
        return len(autoscaler.nodes())

    assert offer([], queue) == 1
    assert scaler.last is not None and scaler.last.unplaced == 2 and scaler.shape.cpus == 3
    wait_for(lambda: offer([], queue) == 3)
    # the queue ran and is gone: the request falls to nothing and idle nodes go
    wait_for(lambda: offer([], []) == 1)
    kinds = [e["kind"] for e in reversed(recent_events(engine))]
    assert kinds[0] == "request" and kinds.count("node_added") == 2 and kinds.count("node_removed") == 2
    assert [e["bundles"] for e in reversed(recent_events(engine)) if e["kind"] == "request"] == [3, 0]
    assert autoscaler.requests == 2  # Ray was told only when the shape changed


def test_a_node_that_runs_jobs_is_held_and_the_idle_one_goes_first(address: str) -> None:
    autoscaler = RayAutoscaler(address)
    wait_for(lambda: len(autoscaler.nodes()) == 1)  # what the test before left
    head = autoscaler.nodes()[0].id
    autoscaler.request([{"CPU": 1.0}] * 3)
    wait_for(lambda: len(autoscaler.nodes()) == 3)
    busy, idle = sorted(n.id for n in autoscaler.nodes() if n.id != head)
    holds = NodeHolds(address)
    holds.sync({busy})  # freight runs a job on `busy`, none on `idle`
    ray.get(get_placement_group(PREFIX + busy).ready(), timeout=60)
    autoscaler.request([])  # the demand falls: the autoscaler may remove one worker... or both
    wait_for(lambda: idle not in alive(autoscaler))
    assert busy in alive(autoscaler)  # the node running freight's job stayed
    # a new scheduler (after a failover) finds the hold and lets it go once the node is idle
    successor = NodeHolds(address)
    successor.sync(set())
    assert successor.held == set()
    wait_for(lambda: alive(autoscaler) == {head})


def alive(autoscaler: RayAutoscaler) -> set[str]:
    return {n.id for n in autoscaler.nodes()}


def test_freight_on_the_cluster_grows_it_for_its_queue_runs_every_job_and_lets_it_shrink(
    address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole path, as `freight up --ray ADDRESS` with FREIGHT_AUTOSCALE=on runs it: three one-CPU
    jobs on a one-CPU cluster; the autoscaler adds two nodes, the jobs run on three different nodes,
    and once they are done the cluster shrinks back to the head. A job too big for any node the
    autoscaler may add fails at once."""
    autoscaler = RayAutoscaler(address)
    wait_for(lambda: len(autoscaler.nodes()) == 1)
    env = {
        "FREIGHT_HOME": str(tmp_path / "home"),
        "FREIGHT_CGROUP_PARENT": CGROUP_PARENT,
        "FREIGHT_RAY_ADDRESS": address,
        "FREIGHT_AUTOSCALE": "on",
        "FREIGHT_AUTOSCALE_NODE_CPUS": "1",
        "FREIGHT_AUTOSCALE_NODE_MEMORY": "64G",
        "FREIGHT_AUTOSCALE_COOLDOWN": "0",
        "FREIGHT_AUTOSCALE_BUNDLE_MEMORY": "off",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    svc = JobService.open(load_settings(env))
    try:
        svc.start_scheduler(poll_interval=0.2)
        spec = {
            "command": ["sh", "-c", 'echo "$FREIGHT_NODE"; sleep 15'],
            "resources": {"cpus": 1, "memory": "64M"},
        }
        ids = [svc.submit(spec).id for _ in range(3)]
        huge = svc.submit({**spec, "resources": {"cpus": 2, "memory": "64M"}}).id
        views = svc.wait([*ids, huge], timeout=240)
        assert [v.state for v in views] == [JobState.SUCCEEDED] * 3 + [JobState.FAILED], views
        assert "can never run here" in (views[3].reason or "")
        # three nodes: the head and the two the autoscaler added while the first job held the head
        # (15 s: longer than Ray takes to start two nodes here, ~6 s)
        ran_on = {b"".join(svc.logs(i)).decode().strip() for i in ids}
        assert len(ran_on) == 3
        # idle again: freight asks for nothing, lets its holds and the idle nodes' agents go, and
        # the autoscaler removes the nodes it added (Ray counts a node with a live agent as busy)
        wait_for(lambda: len(autoscaler.nodes()) == 1)
        # the scheduler sees the nodes go at its next look, and the scaler records it
        wait_for(lambda: [e["kind"] for e in recent_events(svc.engine)].count("node_removed") == 2)
        kinds = [e["kind"] for e in recent_events(svc.engine)]
        assert kinds.count("node_added") == 2
        assert any(e["kind"] == "request" and e["bundles"] == 0 for e in recent_events(svc.engine))
    finally:
        svc.close()
