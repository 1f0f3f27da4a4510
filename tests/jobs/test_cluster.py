"""freight's scheduler on a real multi-node Ray cluster on this machine (raylets on 127.0.0.1 with
distinct cpus, memory and labels): the issue's done-when through JobService, as `freight up --ray`
runs it. One cluster for the module; every job runs under its node's agent (cgroup slot, shim)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from freight.jobs.client import JobView
from freight.jobs.service import JobService
from freight.jobs.states import JobState
from freight.runtime.ray_cluster import NAMESPACE
from tests.conftest import CGROUP_PARENT
from tests.raycluster import G, cluster_service, job_folder, node_of, two_node_cluster, until

pytestmark = pytest.mark.slow


class Rig:
    def __init__(self, cluster: Any, svc: JobService, shared: Path, address: str) -> None:
        self.cluster = cluster
        self.address = address
        self.svc = svc
        #: a folder jobs (the job user) may write into
        self.shared = shared

    def node(self, zone: str) -> dict[str, Any]:
        return node_of(self.svc, zone)

    def run(self, **spec: object) -> JobView:
        return self.wait(self.submit(**spec))

    def submit(self, **spec: object) -> str:
        spec.setdefault("resources", {"cpus": 0.5, "memory": "128M"})
        return self.svc.submit(spec).id

    def wait(self, job_id: str) -> JobView:
        return self.svc.wait([job_id], timeout=180)[0]

    def log(self, job_id: str) -> str:
        return b"".join(self.svc.logs(job_id)).decode(errors="replace").strip()


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    root = job_folder("cluster-")
    shared = root / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    try:
        with two_node_cluster() as cluster, cluster_service(cluster.address, root / "home") as svc:
            yield Rig(cluster, svc, shared, cluster.address)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_freight_nodes_lists_both_nodes(rig: Rig) -> None:
    rows = rig.svc.nodes()
    assert len(rows) == 2 and {r["state"] for r in rows} == {"alive"}
    sizes = sorted((r["labels"]["zone"], r["cpus"], r["memory"]) for r in rows)
    assert sizes == [("eu", 1.0, G), ("us", 2.0, 2 * G)]
    # as a user types it: another process joins the cluster and lists its nodes
    env = {**os.environ, "FREIGHT_HOME": str(rig.svc.settings.home), "FREIGHT_RAY_ADDRESS": rig.address}
    env.pop("FREIGHT_URL", None)
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "freight"), "nodes", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)
    assert sorted(r["id"] for r in listed) == sorted(r["id"] for r in rows)
    assert sorted(r["labels"]["zone"] for r in listed) == ["eu", "us"]


def test_jobs_land_on_the_node_with_room_and_see_their_node(rig: Rig) -> None:
    eu, us = rig.node("eu"), rig.node("us")
    big = rig.run(shell='echo "$FREIGHT_NODE"', resources={"cpus": 2, "memory": "256M"})
    pinned = rig.run(shell='echo "$FREIGHT_NODE"', constraints={"node.zone": "eu"})
    assert big.state is JobState.SUCCEEDED and pinned.state is JobState.SUCCEEDED
    assert rig.log(big.id) == us["id"]  # only the us node has 2 cpus
    assert rig.log(pinned.id) == eu["id"]
    assert rig.log(big.id) != rig.log(pinned.id)
    # the attempt says where it ran, as the API shows it
    assert rig.svc.get(big.id).attempt_list[-1].node == us["id"]
    assert rig.svc.get(pinned.id).attempt_list[-1].node == eu["id"]


def test_a_job_too_big_for_every_node_says_so(rig: Rig) -> None:
    view = rig.run(command=["true"], resources={"cpus": 8, "memory": "128M"})
    assert view.state is JobState.FAILED
    reason = view.reason or ""
    assert "can never run here" in reason
    for zone in ("eu", "us"):
        assert f"{rig.node(zone)['id']}: needs 8 cpus" in reason, reason


def test_oom_is_named_on_a_worker_node(rig: Rig) -> None:
    hog = "x = bytearray(512 << 20); print(len(x))"
    view = rig.run(
        command=["/usr/bin/python3", "-c", hog],
        resources={"cpus": 0.5, "memory": "64M"},
        constraints={"node.zone": "us"},
    )
    assert view.state is JobState.OOM_KILLED, view.reason


def test_timeout_and_cancel_stop_jobs_on_a_worker_node(rig: Rig) -> None:
    slow = rig.run(command=["sleep", "60"], timeout=1, grace=1, constraints={"node.zone": "us"})
    assert slow.state is JobState.TIMED_OUT, slow.reason
    job = rig.submit(command=["sleep", "60"], grace=1, constraints={"node.zone": "us"})
    until(lambda: rig.svc.get(job).state is JobState.RUNNING, "the job runs")
    rig.svc.cancel(job)
    assert rig.wait(job).state is JobState.CANCELLED


def test_a_running_jobs_log_is_read_from_its_node_and_archived_by_it(rig: Rig) -> None:
    go = rig.shared / "log-go"
    job = rig.submit(
        shell=f'echo "first line"; while [ ! -e {go} ]; do sleep 0.05; done; echo done',
        constraints={"node.zone": "us"},
    )
    scheduler = rig.svc.scheduler
    assert scheduler is not None
    until(lambda: scheduler.read_log(job, 1) == b"first line\n", "the node's agent reads the live log")
    go.touch()
    assert rig.wait(job).state is JobState.SUCCEEDED
    assert scheduler.read_log(job, 1) is None  # it no longer runs: the file, or the archive, serves it
    assert rig.log(job) == "first line\ndone"


def test_an_agent_that_dies_is_replaced_and_reattaches_to_its_attempt(rig: Rig) -> None:
    import ray

    go = rig.shared / "go"
    job = rig.submit(
        shell=f'while [ ! -e {go} ]; do sleep 0.05; done; echo "ran once on $FREIGHT_NODE"',
        constraints={"node.zone": "us"},
    )
    until(lambda: rig.svc.get(job).state is JobState.RUNNING, "the job runs")
    us = rig.node("us")
    ray.kill(ray.get_actor(f"freight-agent-{us['id']}", namespace=NAMESPACE))
    go.touch()
    view = rig.wait(job)
    assert view.state is JobState.SUCCEEDED and view.attempts == 1, view.reason
    assert rig.log(job) == f"ran once on {us['id']}"


def test_a_hung_agent_neither_stalls_the_scheduler_nor_runs_its_job_twice(rig: Rig) -> None:
    import ray

    go = rig.shared / "go-hung"
    job = rig.submit(
        shell=f'while [ ! -e {go} ]; do sleep 0.05; done; echo "ran once on $FREIGHT_NODE"',
        constraints={"node.zone": "us"},
        retry={"max_attempts": 3, "retry_on": ["lost"], "backoff": 0},
    )
    until(lambda: rig.svc.get(job).state is JobState.RUNNING, "the job runs")
    us = rig.node("us")
    agent = ray.get_actor(f"freight-agent-{us['id']}", namespace=NAMESPACE)
    pid = ray.get(agent.info.remote(), timeout=60)["pid"]
    os.kill(pid, signal.SIGSTOP)  # Ray still says the node is alive; its agent answers nothing
    try:
        until(lambda: rig.node("us")["state"] == "unreachable", "the node is unreachable")
        assert "did not answer" in (rig.node("us")["reason"] or "")
        # the tick goes on (it would wait 60 s per call, and lose its 15 s lease, on the old path)
        quick = rig.run(shell="echo quick", constraints={"node.zone": "eu"})
        assert quick.state is JobState.SUCCEEDED, quick.reason
        view = rig.svc.get(job)
        assert view.state is JobState.RUNNING and view.attempts == 1  # not lost: it runs on
    finally:
        os.kill(pid, signal.SIGCONT)
    until(lambda: rig.node("us")["state"] == "alive", "the node answers again")
    go.touch()
    view = rig.wait(job)
    assert view.state is JobState.SUCCEEDED and view.attempts == 1, view.reason
    assert rig.log(job) == f"ran once on {us['id']}"


def test_a_killed_nodes_jobs_finish_elsewhere_exactly_once(rig: Rig) -> None:
    doomed = rig.cluster.add_node(num_cpus=4, memory=4 * G, resources={"label:zone=asia": 1})
    rig.cluster.wait_for_nodes()
    until(lambda: any(n["labels"].get("zone") == "asia" for n in rig.svc.nodes()), "the scheduler sees it")
    pid_file = rig.shared / "first.pid"
    script = (
        f'if [ "$FREIGHT_JOB_ATTEMPT" = 1 ]; then echo $$ > {pid_file}; exec sleep 600; fi; '
        'echo "finished on $FREIGHT_NODE"'
    )
    job = rig.submit(
        shell=script,
        placement="spread",  # the emptiest node: the new one
        resources={"cpus": 1.5, "memory": "128M"},
        retry={"max_attempts": 3, "retry_on": ["lost"], "backoff": 0},
    )
    until(pid_file.exists, "the first attempt runs")
    asia = rig.node("asia")
    try:
        rig.cluster.remove_node(doomed)
        view = rig.wait(job)
    finally:  # the first attempt outlives its node here (one machine): end it
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert view.state is JobState.SUCCEEDED, view.reason
    assert view.attempts == 2  # one lost with its node, one that finished: never a third
    assert rig.log(job) == f"finished on {rig.node('us')['id']}"
    details = [e.get("detail") or "" for e in rig.svc.events(job)]
    assert any(f"its node {asia['name']} was lost" in d for d in details), details
    assert next(n for n in rig.svc.nodes() if n["id"] == asia["id"])["state"] == "dead"


def test_freight_up_ray_runs_jobs_on_both_nodes(rig: Rig) -> None:
    """The done-when as a user types it: `freight up --ray ADDRESS` (a process of its own, on the
    store this module used) runs jobs on both nodes; `GET /api/v1/nodes` lists them."""
    import httpx

    from freight.server.tokens import create_token

    rig.svc.stop_scheduler()  # the server's scheduler takes the store over
    _, token = create_token(rig.svc.engine, "cluster-admin", admin=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FREIGHT_HOME": str(rig.svc.settings.home), "FREIGHT_CGROUP_PARENT": CGROUP_PARENT}
    for name in ("FREIGHT_URL", "FREIGHT_TOKEN", "FREIGHT_RAY_ADDRESS"):
        env.pop(name, None)
    freight = str(Path(sys.executable).parent / "freight")
    proc = subprocess.Popen(
        [freight, "up", "--ray", rig.address, "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    headers = {"Authorization": f"Bearer {token}"}
    try:

        def up() -> bool:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            return False

        until(up, "freight up --ray serves")
        ids = {}
        for zone in ("eu", "us"):
            spec = {"shell": 'echo "$FREIGHT_NODE"', "constraints": {"node.zone": zone}}
            ids[zone] = httpx.post(f"{url}/api/v1/jobs", json=spec, headers=headers).json()["id"]
        done = httpx.post(
            f"{url}/api/v1/jobs/wait", json={"ids": list(ids.values())}, headers=headers, timeout=180
        ).json()["jobs"]
        assert {j["state"] for j in done} == {"succeeded"}, done
        ran_on = {
            zone: httpx.get(f"{url}/api/v1/jobs/{job}/logs", headers=headers).text.strip()
            for zone, job in ids.items()
        }
        nodes = httpx.get(f"{url}/api/v1/nodes", headers=headers).json()["nodes"]
        alive = {n["labels"]["zone"]: n["id"] for n in nodes if n["state"] == "alive"}
        assert ran_on == {"eu": alive["eu"], "us": alive["us"]}  # each job on its node, ids differ
        assert ran_on["eu"] != ran_on["us"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert "placing jobs on the Ray cluster at" in err
