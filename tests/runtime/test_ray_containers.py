"""Image jobs on a real Ray cluster: the node's agent runs the attempt in its container under that
node's podman (the image pulled by digest from the registry), with the same limits: the OOM is named
from the slot with its peak."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from freight.runtime.base import AttemptRequest, Container, Limits
from freight.runtime.ray_cluster import ClusterRuntime, connect, loopback_only
from tests.conftest import CGROUP_PARENT
from tests.containers import BuiltImage

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    loopback_only()
    home = tmp_path_factory.mktemp("ray-containers-home")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.wait_for_nodes()
    connect(cluster.address)
    try:
        yield {"FREIGHT_HOME": str(home), "FREIGHT_CGROUP_PARENT": f"{CGROUP_PARENT}/ray-containers"}
    finally:
        ray.shutdown()
        cluster.shutdown()


def attempt(tmp: Path, name: str, image: str, script: str, memory: int = 128 << 20) -> AttemptRequest:
    return AttemptRequest(
        attempt_id=f"{name}-1",  # as the scheduler names them: <job id>-<n>
        argv=["sh", "-c", script],
        env={"PATH": "/bin"},
        cwd=None,
        limits=Limits(cpus=0.5, memory=memory, pids=64),
        log_path=tmp / f"{name}.log",
        container=Container(image),
    )


def test_a_ray_node_runs_image_attempts_in_their_container(
    cluster: dict[str, str], test_image: BuiltImage, tmp_path: Path
) -> None:
    runtime = ClusterRuntime(cluster)
    node = next(n for n in runtime.nodes() if n.alive)

    inside = attempt(
        Path(cluster["FREIGHT_HOME"]) / "logs", "inside", test_image.pinned, "cat /www/healthz; exit 5"
    )  # /www: the image's
    handle = runtime.start(inside, node=node.id)
    outcome = runtime.wait(handle, timeout=180)
    runtime.release(handle)
    assert outcome is not None and outcome.exit_code == 5, inside.log_path.read_text()
    assert inside.log_path.read_text() == "ok\n"

    dd = "dd if=/dev/zero of=/dev/null bs=256M count=1"
    hog = attempt(Path(cluster["FREIGHT_HOME"]) / "logs", "hog", test_image.pinned, dd, memory=64 << 20)
    handle = runtime.start(hog, node=node.id)
    outcome = runtime.wait(handle, timeout=180)
    runtime.release(handle)
    assert outcome is not None and outcome.oom_killed and outcome.peak_memory, outcome
