"""Services on real containers: replicas kept healthy, a rolling update with no failed request, a
rollout to a broken image rolled back by itself without dropping below the healthy replicas."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from freight.config import Settings
from freight.jobs.service import JobService
from freight.jobs.states import JobState
from freight.runtime.registry import free_port
from freight.services.controller import ServiceController
from freight.services.spec import ServiceSpec
from tests.containers import BuiltImage

SERVE = ["sh", "-c", "exec httpd -f -p $PORT -h /www"]
BROKEN = ["sh", "-c", "exec sleep 300"]  # runs, never answers its health check


@pytest.fixture
def platform(settings: Settings, test_image: BuiltImage) -> Iterator[tuple[JobService, ServiceController]]:
    local = replace(settings, registry=test_image.registry.address, cpus=4.0, memory=4 << 30)
    svc = JobService.open(local)
    svc.start_scheduler(poll_interval=0.1)
    controller = ServiceController(svc, check_timeout=0.5)
    try:
        yield svc, controller
    finally:
        for row in controller.store.all():
            controller.store.mark_removing(row.name)
        controller.tick()
        controller.close()
        svc.close()


def answer(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        return response.status == 200 and response.read() == b"ok\n"
    except OSError:
        return False
    finally:
        conn.close()


def settle(
    controller: ServiceController, done: Callable[[], bool], every: Callable[[], None] = lambda: None
) -> None:
    """Tick until `done`; `every` runs after each tick (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + 120
    while True:
        controller.tick()
        every()
        if done():
            return
        assert time.monotonic() < deadline, "the service did not settle"
        time.sleep(0.1)


def test_rolling_update_keeps_answering_and_a_broken_rollout_rolls_back(
    platform: tuple[JobService, ServiceController], test_image: BuiltImage
) -> None:
    svc, controller = platform
    port = free_port()
    good = ServiceSpec(image=test_image.pinned, command=SERVE, replicas=2, port=port, health_timeout=5)
    controller.store.deploy("web", good)
    settle(controller, lambda: controller.store.get("web").status == "ready")
    assert answer(port)

    failed: list[int] = []
    healthy_counts: list[int] = []

    def watch() -> None:
        if not answer(port):
            failed.append(1)
        healthy_counts.append(sum(1 for r in controller.replicas("web") if r.healthy))

    # a rolling update to a new revision: start new, wait healthy, stop old; no request fails
    first = {r.job_id for r in controller.replicas("web")}
    controller.store.deploy("web", good.model_copy(update={"env": {"REVISION": "2"}}))
    settle(
        controller,
        lambda: (
            controller.store.get("web").status == "ready"
            and not first & {r.job_id for r in controller.replicas("web")}
        ),
        watch,
    )
    assert failed == [] and min(healthy_counts) >= 2
    for job_id in first:
        assert svc.get(job_id).state is JobState.CANCELLED

    # a rollout that never gets healthy rolls back by itself, never below two healthy replicas
    second = {r.job_id for r in controller.replicas("web")}
    controller.store.deploy("web", good.model_copy(update={"command": BROKEN}))
    settle(controller, lambda: controller.store.get("web").status == "rolled_back", watch)
    row = controller.store.get("web")
    assert row.spec.command == SERVE and "not healthy within 5s" in (row.message or "")
    settle(controller, lambda: all(not r.stopping for r in controller.replicas("web")), watch)
    assert {r.job_id for r in controller.replicas("web")} == second
    assert failed == [] and min(healthy_counts) >= 2


def test_a_replica_that_exits_is_replaced(
    platform: tuple[JobService, ServiceController], test_image: BuiltImage
) -> None:
    svc, controller = platform
    port = free_port()
    spec = ServiceSpec(image=test_image.pinned, command=SERVE, replicas=1, port=port)
    controller.store.deploy("one", spec)
    assert controller.tick() is True  # deploying: the runner ticks sooner
    settle(controller, lambda: controller.store.get("one").status == "ready")
    assert controller.tick() is False  # settled: back to the idle interval
    (replica,) = controller.replicas("one")
    svc.cancel(replica.job_id)
    settle(
        controller,
        lambda: [r.healthy for r in controller.replicas("one") if r.job_id != replica.job_id] == [True],
    )
    assert answer(port)
