"""freight's agents on a real multi-node Ray cluster on this machine (two raylets, 127.0.0.1 only):
each node runs attempts through its own cgroup-isolated runtime, OOM is named on a worker node, and a
node that dies is seen as lost."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from freight.runtime.base import AttemptRequest, Limits, Recovered
from freight.runtime.ray_cluster import ClusterRuntime, connect, loopback_only
from tests.conftest import CGROUP_PARENT

pytestmark = pytest.mark.slow
NODE = {"num_cpus": 1, "include_dashboard": False}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # every node and the driver use 127.0.0.1, never the host's network address (see loopback_only:
    # setting Ray's variable here alone is too late, Ray has read it on import)
    loopback_only()
    home = tmp_path_factory.mktemp("ray-home")
    env = {"FREIGHT_HOME": str(home), "FREIGHT_CGROUP_PARENT": CGROUP_PARENT}
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "resources": {"label:zone=eu": 1}})
    cluster.add_node(num_cpus=1, resources={"label:zone=us": 1})
    cluster.wait_for_nodes()
    connect(cluster.address)
    cluster.freight_env = env  # type: ignore[attr-defined]
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def request(tmp: Path, name: str, code: str, memory: int = 256 << 20) -> AttemptRequest:
    return AttemptRequest(
        attempt_id=f"{name}-1",  # as the scheduler names them: <job id>-<n>
        argv=[sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin"},
        cwd=None,
        limits=Limits(cpus=0.5, memory=memory),
        log_path=tmp / f"{name}.log",
    )


def logs_of(cluster: Cluster) -> Path:
    """The agents' log folder: they write, read and archive logs under it only."""
    return Path(cluster.freight_env["FREIGHT_HOME"]) / "logs"  # type: ignore[attr-defined]


def alive_nodes(runtime: ClusterRuntime) -> list[str]:
    return sorted(n.id for n in runtime.nodes() if n.alive)


def test_every_node_runs_attempts_under_its_own_agent(cluster: Cluster, tmp_path: Path) -> None:
    runtime = ClusterRuntime(cluster.freight_env)  # type: ignore[attr-defined]
    nodes = runtime.nodes()
    assert len(nodes) == 2 and all(n.alive for n in nodes)
    assert sorted(n.labels["zone"] for n in nodes) == ["eu", "us"]
    seen = {}
    for node in nodes:
        req = request(
            logs_of(cluster), f"where-{node.id[:6]}", "import os; print(os.environ['FREIGHT_NODE'])"
        )
        handle = runtime.start(req, node=node.id)
        outcome = runtime.wait(handle, timeout=120)
        assert outcome is not None and outcome.ok, outcome
        runtime.release(handle)
        seen[node.id] = req.log_path.read_text().strip()
    assert seen == {n.id: n.id for n in nodes}  # each job saw the node it ran on


def test_oom_is_named_on_a_worker_node(cluster: Cluster, tmp_path: Path) -> None:
    runtime = ClusterRuntime(cluster.freight_env)  # type: ignore[attr-defined]
    worker = next(n for n in runtime.nodes() if n.labels.get("zone") == "us")
    hog = request(logs_of(cluster), "hog", "x = bytearray(512 << 20); print(len(x))", memory=64 << 20)
    handle = runtime.start(hog, node=worker.id)
    outcome = runtime.wait(handle, timeout=120)
    runtime.release(handle)
    assert outcome is not None and outcome.oom_killed and outcome.peak_memory


def test_a_dead_node_is_lost_and_the_other_keeps_working(cluster: Cluster, tmp_path: Path) -> None:
    runtime = ClusterRuntime(cluster.freight_env)  # type: ignore[attr-defined]
    extra = cluster.add_node(num_cpus=1, resources={"label:zone=asia": 1})
    cluster.wait_for_nodes()
    doomed = next(n for n in runtime.nodes() if n.labels.get("zone") == "asia")
    handle = runtime.start(request(logs_of(cluster), "long", "import time; time.sleep(600)"), node=doomed.id)
    assert runtime.recover(handle) is Recovered.RUNNING
    runtime.kill(handle)  # the attempt's processes live on the host; a test cleans them up itself
    cluster.remove_node(extra)
    deadline = time.monotonic() + 120
    while runtime.node_alive(doomed.id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not runtime.node_alive(doomed.id)
    assert runtime.recover(handle) is Recovered.VANISHED
    assert doomed.id not in alive_nodes(runtime)
    survivor = next(n for n in runtime.nodes() if n.alive)
    ok = runtime.start(request(logs_of(cluster), "after", "print('fine')"), node=survivor.id)
    outcome = runtime.wait(ok, timeout=120)
    assert outcome is not None and outcome.ok


#: what a job on a node could run: join the cluster as a driver (no token: it cannot read freight's)
#: and ask freight's agent, root on the node, for a file
JOB_AS_DRIVER = """
import sys, ray
ray.init(address=sys.argv[1], namespace="freight", log_to_driver=False)
agent = ray.get_actor(sys.argv[2], namespace="freight")
print("READ", ray.get(agent.read_log.remote("/etc/hostname")))
"""


def test_a_caller_without_the_token_cannot_reach_the_agents(cluster: Cluster, tmp_path: Path) -> None:
    runtime = ClusterRuntime(cluster.freight_env)  # type: ignore[attr-defined]
    node = runtime.nodes()[0]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    done = subprocess.run(
        [sys.executable, "-c", JOB_AS_DRIVER, cluster.address, f"freight-agent-{node.id}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "READ" not in done.stdout, done.stdout
    assert "AuthenticationError" in done.stderr, done.stderr[-2000:]
    # freight's own calls, with the token, still go through
    assert (
        runtime.agent(node.id) is not None
        and ray.get(runtime.agent(node.id).info.remote())["node"] == node.id
    )
