"""A node's agent used directly (as Ray would call it, with plain data): the node archives an ended
attempt's log to the object store as it lets go of it, and an agent that replaces a dead one adopts
the attempts still running instead of handing their cgroup slots to new attempts."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from freight.runtime.agent import NodeAgent
from freight.runtime.base import AttemptRequest, Limits
from freight.runtime.cgroups import CgroupUnavailable, open_cgroups
from freight.runtime.slots import SlotPool
from freight.storage.objectstore import ObjectStore


def request(home: Path, job_id: str, argv: list[str]) -> dict[str, Any]:
    attempt = AttemptRequest(
        attempt_id=f"{job_id}-1",
        argv=argv,
        env={"PATH": "/usr/bin:/bin"},
        cwd=None,
        limits=Limits(cpus=0.5, memory=64 << 20),
        log_path=home / "logs" / job_id[:8] / f"{job_id}.1.log",
    )
    return {**asdict(attempt), "log_path": str(attempt.log_path)}


@pytest.fixture
def env(home: Path, cgroup_parent: str) -> Iterator[dict[str, str]]:
    values = {"FREIGHT_HOME": str(home), "FREIGHT_CGROUP_PARENT": cgroup_parent}
    yield values


def cleanup(agent: NodeAgent) -> None:
    with contextlib.suppress(CgroupUnavailable):
        SlotPool(open_cgroups(agent.settings.cgroup_parent)).destroy()


def test_the_node_archives_an_ended_attempts_log_as_it_releases_it(env: dict[str, str], home: Path) -> None:
    agent = NodeAgent(env, f"node-{uuid.uuid4().hex[:6]}")
    try:
        job_id = f"0123abcd{uuid.uuid4().hex[:12]}"
        req = request(home, job_id, ["/bin/sh", "-c", "echo from the node"])
        handle = agent.start(req)
        assert agent.wait(handle, 60) is not None
        assert agent.release(handle, req["log_path"]) is True
        store = ObjectStore((home / "objects").as_uri())
        assert store.get_range(f"logs/{job_id[:8]}/{job_id}.1.log", 0, None) == b"from the node\n"
    finally:
        cleanup(agent)


def test_an_attempt_id_that_names_no_job_attempt_is_released_without_an_archive(
    env: dict[str, str], home: Path
) -> None:
    """Release must not fail after the slot is freed: an id that is not "<job id>-<n>" (a direct
    runtime user's) has no archive key, so its log stays on the node and release says so."""
    agent = NodeAgent(env, f"node-{uuid.uuid4().hex[:6]}")
    try:
        req = request(home, f"0123abcd{uuid.uuid4().hex[:12]}", ["/bin/true"])
        req["attempt_id"] = "adhoc.1"
        handle = agent.start(req)
        assert agent.wait(handle, 60) is not None
        assert agent.release(handle, req["log_path"]) is False
        assert Path(req["log_path"]).exists()
    finally:
        cleanup(agent)


def test_a_replacing_agent_adopts_a_running_attempt_before_answering(env: dict[str, str], home: Path) -> None:
    node = f"node-{uuid.uuid4().hex[:6]}"
    first = NodeAgent(env, node)
    try:
        job_id = f"0123abcd{uuid.uuid4().hex[:12]}"
        gate = home / "go"
        req = request(home, job_id, ["/bin/sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"])
        handle = first.start(req)
        second = NodeAgent(env, node)  # the first one "died": its attempt runs on under its shim
        assert second.poll([handle]) == {f"{job_id}-1": None}
        assert f"{job_id}-1" in second._known  # adopted: its cgroup slot is claimed again
        gate.touch()
        outcome = second.wait(handle, 60)
        assert outcome is not None and outcome["exit_code"] == 0
        second.release(handle)
    finally:
        cleanup(first)


def test_a_call_that_races_a_release_claims_no_slot_for_the_ended_attempt(
    env: dict[str, str], home: Path
) -> None:
    agent = NodeAgent(env, f"node-{uuid.uuid4().hex[:6]}")
    try:
        first_id = f"0123abcd{uuid.uuid4().hex[:12]}"
        first = agent.start(request(home, first_id, ["/bin/true"]))
        assert agent.wait(first, 60) is not None
        agent.release(first)
        # a usage() sent before the release but run after it (Ray runs 16 calls at once)
        agent.usage(first)
        agent.kill(first)
        assert f"{first_id}-1" not in agent._known
        # the slot went back to the pool: the next attempt gets it, not a new one
        second_id = f"0123abcd{uuid.uuid4().hex[:12]}"
        second = agent.start(request(home, second_id, ["/bin/true"]))
        assert json.loads(second)["slot"] == json.loads(first)["slot"]
        assert agent.wait(second, 60) is not None
        agent.release(second)
        assert agent.recover(first) == "vanished"  # released here: never adopted again
    finally:
        cleanup(agent)


def test_the_agent_writes_reads_and_archives_only_its_own_log_folder(env: dict[str, str], home: Path) -> None:
    """The agent runs as root: a caller naming any other file (a job that reached it, say) is refused
    before anything starts, is read or is archived."""
    agent = NodeAgent(env, f"node-{uuid.uuid4().hex[:6]}")
    try:
        job_id = f"0123abcd{uuid.uuid4().hex[:12]}"
        req = request(home, job_id, ["/bin/sh", "-c", "echo mine"])
        outside = [
            "/etc/shadow",
            str(home / "logs" / ".." / "ray_auth_token"),
            str(home / "logs"),
            str(home / "logsx" / "a.log"),
        ]
        for path in outside:
            with pytest.raises(PermissionError, match="not a log file of this node"):
                agent.read_log(path)
            with pytest.raises(PermissionError, match="not a log file of this node"):
                agent.start({**req, "log_path": path})
        assert agent._known == set()  # nothing started
        (home / "logs").mkdir(parents=True, exist_ok=True)
        link = home / "logs" / f"link-{job_id}.log"
        link.symlink_to("/etc/shadow")  # a link out is followed, then refused
        with pytest.raises(PermissionError):
            agent.read_log(str(link))
        handle = agent.start(req)
        assert agent.wait(handle, 60) is not None
        assert agent.read_log(req["log_path"]) == b"mine\n"
        with pytest.raises(PermissionError):
            agent.release(handle, "/etc/shadow")
        assert f"{job_id}-1" in agent._known  # refused before the release began
        assert agent.release(handle, req["log_path"]) is True
    finally:
        cleanup(agent)
