"""A cluster node's agent runs image attempts in their container under that node's podman (the request
arrives as plain data, as Ray carries it), and a node without podman says so in one clear error."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from freight.config import Settings
from freight.errors import TerminalError
from freight.runtime import create_runtime
from freight.runtime.agent import NodeAgent
from freight.runtime.base import AttemptRequest, Container, Limits, Mount
from freight.runtime.cgroups import CgroupUnavailable, open_cgroups
from freight.runtime.container import ContainerRuntime, remove_container_cgroups
from freight.runtime.slots import SlotPool
from tests.containers import BuiltImage


def attempt(tmp_path: Path, image: str, argv: list[str], mounts: tuple[Mount, ...] = ()) -> AttemptRequest:
    attempt_id = f"a-{uuid.uuid4().hex[:12]}"
    return AttemptRequest(
        attempt_id=attempt_id,
        argv=argv,
        env={"PATH": "/bin"},
        cwd=None,
        limits=Limits(cpus=1.0, memory=128 << 20, pids=64),
        log_path=tmp_path / "logs" / f"{attempt_id}.log",
        container=Container(image, "none", mounts),
    )


@pytest.fixture
def agent(home: Path, cgroup_parent: str) -> Iterator[NodeAgent]:
    node = f"node-{uuid.uuid4().hex[:6]}"
    agent = NodeAgent({"FREIGHT_HOME": str(home), "FREIGHT_CGROUP_PARENT": cgroup_parent}, node)
    yield agent
    assert isinstance(agent.runtime, ContainerRuntime)
    agent.runtime.remove_leftovers()
    agent.runtime.close()
    with contextlib.suppress(CgroupUnavailable):
        driver = open_cgroups(agent.settings.cgroup_parent)
        remove_container_cgroups(driver)
        SlotPool(driver).destroy()


def test_an_agent_runs_an_image_attempt_in_its_container(
    agent: NodeAgent, test_image: BuiltImage, tmp_path: Path
) -> None:
    assert agent.info()["podman"] is True
    data = tmp_path / "data"
    data.mkdir()
    (data / "greeting").write_text("from the host\n")
    req = attempt(
        agent.settings.home,  # the agent writes logs under its own log folder only
        test_image.pinned,
        ["sh", "-c", "cat /www/healthz /data/greeting; exit 4"],  # /www exists in the image only
        mounts=(Mount(str(data), "/data"),),
    )
    # what ray_cluster.RayCluster.start sends the agent
    handle = agent.start({**asdict(req), "log_path": str(req.log_path)})
    outcome = agent.wait(handle, timeout=120)
    agent.release(handle)
    assert outcome is not None and outcome["exit_code"] == 4, req.log_path.read_text()
    assert req.log_path.read_text() == "ok\nfrom the host\n"


def test_a_node_without_podman_is_one_clear_error(settings: Settings, home: Path, tmp_path: Path) -> None:
    runtime = ContainerRuntime(create_runtime(settings), home, podman="/nonexistent/podman")
    try:
        assert not runtime.podman_found()
        with pytest.raises(TerminalError, match=r"podman is not installed on node \S+ \(/nonexistent"):
            runtime.start(attempt(tmp_path, "hello", ["true"]))
        # a process attempt does not need podman
        plain = AttemptRequest(
            "p-" + uuid.uuid4().hex[:8], ["true"], {}, None, Limits(1.0, 64 << 20), tmp_path / "p.log"
        )
        handle = runtime.start(plain)
        outcome = runtime.wait(handle, timeout=60)
        runtime.release(handle)
        assert outcome is not None and outcome.exit_code == 0
    finally:
        runtime.close()
