"""ClusterRuntime's agent table under two threads, and API reads of a hung agent (issue 9).

Ray itself is replaced by a stand-in that answers in the test's own order (a real cluster cannot be
made to interleave a retire and a start deterministically, nor hang an agent without costing time)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from freight.errors import TransientError
from freight.runtime.base import AttemptRequest, Handle, Limits
from freight.runtime.ray_cluster import AGENT_ANSWER, ClusterRuntime

NODE = "ab" * 28


class GetTimeoutError(Exception):
    pass


class RayActorError(Exception):
    pass


class Exceptions:
    RayError = Exception
    GetTimeoutError = GetTimeoutError
    RayActorError = RayActorError


class Ref:
    def __init__(self, method: str, value: Any = None, gate: threading.Event | None = None) -> None:
        self.method, self.value, self.gate = method, value, gate


class Method:
    def __init__(self, agent: Agent, name: str) -> None:
        self.agent, self.name = agent, name

    def remote(self, *args: Any) -> Ref:
        return self.agent.ray.called(self.name, args)


class Agent:
    def __init__(self, ray: StandInRay, node: str) -> None:
        self.ray, self.node = ray, node

    def __getattr__(self, name: str) -> Method:
        return Method(self, name)


class StandInRay:
    exceptions = Exceptions

    def __init__(self) -> None:
        self.killed: list[Agent] = []
        self.started: list[str] = []
        self.start_sent = threading.Event()
        self.start_gate = threading.Event()
        self.hung: set[str] = set()
        self.timeouts: list[float | None] = []

    def remote(self, _cls: Any) -> StandInRay:
        return self

    def options(self, **options: Any) -> StandInRay:
        self.node = str(options["name"]).removeprefix("freight-agent-")
        return self

    def nodes(self) -> list[dict[str, Any]]:
        return [{"NodeID": NODE, "Alive": True, "Resources": {}}]

    def called(self, method: str, args: tuple[Any, ...]) -> Ref:
        if method == "start":
            self.start_sent.set()
            handle = Handle(args[0]["attempt_id"], 1, 1, "/r", "rlimits")
            return Ref(method, handle.to_json(), self.start_gate)
        if method in self.hung:
            return Ref(method, gate=threading.Event())  # never answers
        return Ref(method, (1 << 20, 0.5) if method == "usage" else b"log")

    def get(self, ref: Ref, timeout: float | None = None) -> Any:
        self.timeouts.append(timeout)
        if ref.gate is not None and not ref.gate.is_set():
            if ref.method != "start":
                raise GetTimeoutError(ref.method)  # what Ray says once `timeout` has passed
            ref.gate.wait()
        return ref.value

    def kill(self, handle: Agent, no_restart: bool = True) -> None:
        self.killed.append(handle)


def runtime() -> tuple[ClusterRuntime, StandInRay]:
    pytest.importorskip("ray")
    rt = ClusterRuntime(env={})
    ray = StandInRay()
    rt._ray = ray
    # the actor class Ray would make: `.remote(env, node, labels)` starts the agent
    ray.remote = lambda _cls: type("A", (), {"options": lambda _s, **o: Starter(ray, o)})()  # type: ignore[method-assign]
    return rt, ray


class Starter:
    def __init__(self, ray: StandInRay, options: dict[str, Any]) -> None:
        self.ray, self.node = ray, str(options["name"]).removeprefix("freight-agent-")

    def remote(self, *_args: Any) -> Agent:
        return Agent(self.ray, self.node)


def request(tmp_path: Path) -> AttemptRequest:
    return AttemptRequest(
        "a-1", ["true"], {}, None, Limits(cpus=1, memory=1 << 20), tmp_path / "a.log", node=NODE
    )


def test_retire_refuses_a_node_with_a_start_under_way_or_an_attempt(tmp_path: Path) -> None:
    rt, ray = runtime()
    out: list[Handle] = []
    starter = threading.Thread(target=lambda: out.append(rt.start(request(tmp_path))))
    starter.start()
    assert ray.start_sent.wait(
        timeout=60
    )  # the scheduler's thread is inside start, waiting for the agent's answer
    assert rt.retire(NODE) is False  # the Scaler's thread: refused, the agent is not let go
    assert ray.killed == []
    ray.start_gate.set()
    starter.join()
    assert rt.retire(NODE) is False  # the attempt runs there now
    rt.release(out[0])
    assert rt.retire(NODE) is True
    assert len(ray.killed) == 1
    assert rt.retire(NODE) is True and len(ray.killed) == 1  # idempotent


def test_usage_and_log_reads_of_a_hung_agent_answer_did_not_answer(tmp_path: Path) -> None:
    rt, ray = runtime()
    ray.start_gate.set()
    handle = rt.start(request(tmp_path))
    assert rt.usage(handle) == (1 << 20, 0.5)
    ray.hung = {"usage", "read_log"}
    for read in (lambda: rt.usage(handle), lambda: rt.read_log(handle, "a.log")):
        ray.timeouts.clear()
        with pytest.raises(TransientError, match="node abababababab did not answer within 2 s"):
            read()
        assert ray.timeouts == [AGENT_ANSWER]


def test_agents_archive_logs_to_the_servers_object_store(tmp_path: Path) -> None:
    """Settings given to the service (not only its environment) reach the agents: before the fix an
    agent archived logs to FREIGHT_HOME/objects while the server read them from its own store (S3)."""
    from dataclasses import replace

    from freight.config import load_settings

    pytest.importorskip("ray")
    settings = replace(load_settings({"FREIGHT_HOME": str(tmp_path)}), object_store_url="s3://data/freight")
    env = ClusterRuntime.for_settings(settings).env
    assert env["FREIGHT_OBJECT_STORE"] == "s3://data/freight"
    assert env["FREIGHT_HOME"] == str(tmp_path)
