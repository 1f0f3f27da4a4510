"""A rolling update of a service's replicas: time until every replica is replaced, and requests that
failed meanwhile, against a recreate (scale to 0, then deploy the new revision: what a service without
rolling updates does) of the same service in the same run.

    .venv/bin/python bench/services.py [--replicas 3] [--rounds 3] [--tick 1.0]

The example image (examples/images/hello: busybox httpd answering /healthz) is built and pushed to a
local registry; the scheduler and the service controller run in this process, the controller ticking
every `--tick` seconds, and every `--busy-tick` while a service changes (1.0 and 0.2, as `freight
up`). A client asks the service's port for /healthz one request at a time throughout. Each round
changes the replicas' env (a new revision), rolls, then recreates. Writes
bench/results/services.json. Needs root, podman, runc, docker-registry and busybox-static
(scripts/system-deps.sh).
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from freight.config import load_settings
from freight.jobs.service import JobService
from freight.runtime import images
from freight.runtime.registry import free_port, start_registry
from freight.services.controller import ServiceController
from freight.services.deploy import make_spec
from freight.services.spec import LABEL, ServiceSpec

RESULTS = Path(__file__).parent / "results" / "services.json"
EXAMPLE = Path(__file__).parent.parent / "examples" / "images" / "hello"
NAME = "bench-web"


class Client:
    """Requests /healthz one after another; counts those that did not answer 200 ok."""

    def __init__(self, port: int) -> None:
        self.port, self.sent, self.failed = port, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            self.failed += not _ok(self.port)
            time.sleep(0.01)


def _ok(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        return response.status == 200 and response.read() == b"ok\n"
    except OSError:
        return False
    finally:
        conn.close()


def _until(done: Callable[[], bool], what: str, limit: float = 300.0) -> None:
    deadline = time.monotonic() + limit
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {limit:g}s")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tick", type=float, default=1.0, help="controller tick (freight up: 1.0)")
    parser.add_argument(
        "--busy-tick", type=float, default=0.2, help="tick while a service changes (freight up: 0.2)"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="freight-bench-services-"))
    settings = load_settings(
        {
            "FREIGHT_HOME": str(root / "home"),
            "FREIGHT_CGROUP_PARENT": f"freight-bench-{os.getpid()}",
            "FREIGHT_CPUS": "4",
            "FREIGHT_MEMORY": "4G",
        }
    )
    registry = start_registry(settings)
    settings = replace(settings, registry=registry.address)
    svc = JobService.open(settings)
    svc.start_scheduler(poll_interval=0.1)
    controller = ServiceController(svc, check_timeout=0.5)
    stop = threading.Event()

    def ticking() -> None:  # as services/runner.py does
        busy = False
        while not stop.wait(args.busy_tick if busy else args.tick):
            busy = controller.tick()

    ticker = threading.Thread(target=ticking, daemon=True)
    port = free_port()
    rows: list[dict[str, float | int]] = []
    try:
        images.build(EXAMPLE, f"bench-hello-{os.getpid()}", settings)

        def spec(revision: int, replicas: int = args.replicas) -> ServiceSpec:
            return make_spec(
                settings,
                image=f"bench-hello-{os.getpid()}",
                port=port,
                replicas=replicas,
                env={"REVISION": str(revision)},
            )

        def settled(revision: int) -> bool:
            row = controller.store.get(NAME)
            replicas = controller.replicas(NAME)
            key = row.spec.replica_key()
            return (
                row.status == "ready"
                and row.spec.env.get("REVISION") == str(revision)
                and len(replicas) == row.spec.replicas
                and all(r.key == key and r.healthy for r in replicas)
            )

        ticker.start()
        controller.store.deploy(NAME, spec(0))
        _until(lambda: settled(0), "the first deploy")
        revision = 0
        for number in range(args.rounds):
            revision += 1
            with Client(port) as client:
                begin = time.perf_counter()
                controller.store.deploy(NAME, spec(revision))
                _until(functools.partial(settled, revision), "the rolling update")
                rolling = time.perf_counter() - begin
            rolled = (client.sent, client.failed)
            revision += 1
            with Client(port) as client:
                begin = time.perf_counter()
                controller.store.scale(NAME, 0)
                _until(lambda: not controller.replicas(NAME), "the scale to 0")
                controller.store.deploy(NAME, spec(revision))
                _until(functools.partial(settled, revision), "the recreate")
                recreate = time.perf_counter() - begin
            row = {
                "round": number + 1,
                "rolling_seconds": rolling,
                "rolling_requests": rolled[0],
                "rolling_failed": rolled[1],
                "recreate_seconds": recreate,
                "recreate_requests": client.sent,
                "recreate_failed": client.failed,
            }
            rows.append(row)
            print(
                f"round {number + 1}: rolling {rolling:5.1f} s, {rolled[1]} of {rolled[0]} requests failed; "
                f"recreate {recreate:5.1f} s, {client.failed} of {client.sent} failed",
                flush=True,
            )
    finally:
        stop.set()
        if ticker.is_alive():
            ticker.join()
        for row_ in controller.store.all():
            controller.store.mark_removing(row_.name)
        controller.tick()
        controller.close()
        _until(
            lambda: all(v.terminal for v in svc.list_jobs(label={LABEL: NAME}, limit=100)),
            "stopping the replicas",
        )
        svc.close()
        registry.stop()
        _remove_cgroups(settings.cgroup_parent)
        shutil.rmtree(root, ignore_errors=True)
    result = {
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "load": os.getloadavg()},
        "replicas": args.replicas,
        "tick_seconds": args.tick,
        "busy_tick_seconds": args.busy_tick,
        "rounds": rows,
        "median_rolling_seconds": statistics.median(float(r["rolling_seconds"]) for r in rows),
        "median_recreate_seconds": statistics.median(float(r["recreate_seconds"]) for r in rows),
        "rolling_failed_total": sum(int(r["rolling_failed"]) for r in rows),
        "recreate_failed_total": sum(int(r["recreate_failed"]) for r in rows),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}), file=sys.stderr)


def _remove_cgroups(parent: str) -> None:
    from freight.runtime.cgroups import CgroupUnavailable, open_cgroups
    from freight.runtime.container import remove_container_cgroups
    from freight.runtime.slots import SlotPool

    try:
        driver = open_cgroups(parent)
    except CgroupUnavailable:
        return
    remove_container_cgroups(driver)
    SlotPool(driver).destroy()


if __name__ == "__main__":
    main()
