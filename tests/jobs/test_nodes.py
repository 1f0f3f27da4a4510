"""Placement across nodes in the scheduler, deterministically: a fake runtime that records which node
each attempt was sent to, a node source the test edits (nodes come and go), the real SQLite store.
The same paths on a real Ray cluster: tests/jobs/test_cluster.py."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from freight.config import Settings
from freight.jobs.scheduler import Scheduler
from freight.jobs.scheduler.nodes import LocalNodes, NodeInfo, NodeTable
from freight.jobs.service import JobService
from freight.jobs.states import JobState
from freight.runtime.base import AttemptRequest, Handle, Outcome
from tests.jobs.fakes import FakeClock, FakeRuntime

G = 1 << 30


@dataclass
class EditableNodes:
    """A cluster whose nodes the test lists (and kills) itself."""

    nodes: list[NodeInfo]
    remote: bool = True

    def list(self) -> list[NodeInfo]:
        return list(self.nodes)

    def kill(self, node_id: str) -> None:
        self.nodes = [replace(n, alive=False) if n.id == node_id else n for n in self.nodes]


@dataclass
class NodeRuntime(FakeRuntime):
    #: attempt id -> the node it was asked to start on
    placed: dict[str, str | None] = field(default_factory=dict)
    requests: dict[str, AttemptRequest] = field(default_factory=dict)

    #: what was asked of it, in order: "start <attempt>", "kill <attempt>", "release <attempt>"
    calls: list[str] = field(default_factory=list)

    def start(self, request: AttemptRequest) -> Handle:
        handle = super().start(request)
        self.calls.append(f"start {request.attempt_id}")
        self.placed[request.attempt_id] = request.node
        self.requests[request.attempt_id] = request
        return Handle(**{**handle.__dict__, "extra": {"node": request.node}})

    def kill(self, handle: Handle) -> None:
        self.calls.append(f"kill {handle.attempt_id}")
        super().kill(handle)

    def terminate(self, handle: Handle) -> None:
        self.calls.append(f"terminate {handle.attempt_id}")
        super().terminate(handle)

    def poll(self, handle: Handle) -> Outcome | None:
        self.calls.append(f"poll {handle.attempt_id}")
        return super().poll(handle)

    def release(self, handle: Handle) -> None:
        self.calls.append(f"release {handle.attempt_id}")
        super().release(handle)


def two_nodes() -> EditableNodes:
    return EditableNodes(
        [
            NodeInfo("node-1", "10.0.0.1", 1.0, 2 * G, labels={"zone": "eu"}),
            NodeInfo("node-2", "10.0.0.2", 4.0, 8 * G, labels={"zone": "us"}),
        ]
    )


@pytest.fixture
def svc(settings: Settings, tmp_path: Path) -> Iterator[JobService]:
    service = JobService.open(replace(settings, cpus=64.0, memory=64 * G, run_dir_override=tmp_path / "run"))
    yield service
    service.close()


@dataclass
class Harness:
    svc: JobService
    nodes: EditableNodes = field(default_factory=two_nodes)
    clock: FakeClock = field(default_factory=FakeClock)
    runtime: NodeRuntime | None = None
    sched: Scheduler | None = None

    def start(self) -> Scheduler:
        self.runtime = NodeRuntime(self.svc.settings.run_dir)
        self.sched = Scheduler(
            self.svc.engine,
            self.runtime,
            self.svc.settings,
            clock=self.clock,
            poll_interval=0.01,
            nodes=self.nodes,
            node_refresh=1.0,
            node_thread=False,  # looks at the nodes on the tick's thread: deterministic
        )
        self.sched.start()
        return self.sched

    def until(self, done: Callable[[], bool], ticks: int = 400) -> None:
        assert self.sched is not None
        for _ in range(ticks):
            if done():
                return
            self.sched.tick()
        raise AssertionError("condition not reached")

    def submit(self, **spec: object) -> str:
        spec.setdefault("command", ["work"])
        spec.setdefault("resources", {"cpus": 0.5, "memory": "64M"})
        return self.svc.submit(spec).id

    def started(self, job_id: str, number: int = 1) -> str | None:
        assert self.runtime is not None
        attempt = f"{job_id}-{number}"
        self.until(lambda: attempt in self.runtime.placed)  # type: ignore[union-attr]
        return self.runtime.placed[attempt]


@pytest.fixture
def h(svc: JobService) -> Iterator[Harness]:
    harness = Harness(svc)
    yield harness
    if harness.sched is not None:
        harness.sched.stop()
        harness.sched.close()


def test_the_table_says_which_nodes_were_lost_and_keeps_their_load() -> None:
    nodes = two_nodes()
    table = NodeTable(nodes)
    assert table.refresh() == []
    table.charge("node-2", 2.0, G)
    assert [(n.name, n.free_cpus) for n in table.placement_nodes()] == [("node-1", 1.0), ("node-2", 2.0)]
    nodes.kill("node-2")
    assert table.refresh() == ["node-2"]
    assert table.refresh() == []  # lost once, not at every look
    assert [n.schedulable for n in table.placement_nodes()] == [True, False]
    nodes.nodes = nodes.nodes[:1]  # the cluster forgets it: still listed, dead
    assert table.refresh() == []
    row = table.snapshot()[1]
    assert (row["id"], row["state"], row["used_cpus"], row["running"]) == ("node-2", "dead", 2.0, 1)
    table.discharge("node-2", 2.0, G)
    assert table.snapshot()[1]["running"] == 0
    assert table.capacity == (1.0, 2 * G)


def test_a_local_node_is_this_machine() -> None:
    table = NodeTable(LocalNodes("here", 2.0, G))
    table.refresh()
    assert not table.remote and "here" in table and table.snapshot()[0]["address"] == "127.0.0.1"


def test_a_job_lands_on_the_node_with_room_and_sees_its_name(h: Harness) -> None:
    h.start()
    big = h.submit(resources={"cpus": 2, "memory": "1G"})
    assert h.started(big) == "node-2"
    assert h.runtime is not None
    assert h.runtime.requests[f"{big}-1"].env["FREIGHT_NODE"] == "node-2"
    assert h.svc.get(big).state in (JobState.STARTING, JobState.RUNNING)


def test_binpack_fills_the_fuller_node_first(h: Harness) -> None:
    h.start()
    packed = [h.submit(resources={"cpus": 0.5, "memory": "64M"}) for _ in range(2)]
    assert {h.started(j) for j in packed} == {"node-1"}  # best fit: the fuller node first
    third = h.submit(resources={"cpus": 0.5, "memory": "64M"})
    assert h.started(third) == "node-2"  # node-1 is full


def test_a_job_can_ask_to_spread(h: Harness) -> None:
    h.start()
    spread = h.submit(placement="spread", resources={"cpus": 0.5, "memory": "64M"})
    assert h.started(spread) == "node-2"  # the emptiest afterwards


def test_a_queue_can_spread_its_jobs(svc: JobService) -> None:
    svc.settings = replace(svc.settings, spread_queues=frozenset({"wide"}))
    h = Harness(svc)
    h.start()
    try:
        first = h.submit(queue="wide", resources={"cpus": 0.5, "memory": "64M"})
        assert h.started(first) == "node-2"  # the emptiest, not the fullest
    finally:
        assert h.sched is not None
        h.sched.stop()
        h.sched.close()


def test_constraints_pick_the_node_by_label(h: Harness) -> None:
    h.start()
    eu = h.submit(constraints={"node.zone": "eu"})
    named = h.submit(constraints={"node.name": "node-2"})
    assert h.started(eu) == "node-1"
    assert h.started(named) == "node-2"


def test_a_job_too_big_for_every_node_fails_with_a_reason_per_node(h: Harness) -> None:
    h.start()
    huge = h.submit(resources={"cpus": 8, "memory": "1G"})
    h.until(lambda: h.svc.get(huge).state is JobState.FAILED)
    reason = h.svc.get(huge).reason or ""
    assert "can never run here" in reason
    assert "node-1: needs 8 cpus and 1.0G; the node has only 1 cpu and 2.0G in all" in reason
    assert "node-2: needs 8 cpus and 1.0G; the node has only 4 cpus and 8.0G in all" in reason


def test_a_waiting_job_says_why_each_node_cannot_take_it_yet(h: Harness) -> None:
    h.start()
    filler = h.submit(resources={"cpus": 4, "memory": "1G"})
    assert h.started(filler) == "node-2"
    waiting = h.submit(resources={"cpus": 2, "memory": "1G"})
    h.until(lambda: (h.svc.get(waiting).reason or "").startswith("waiting for capacity"))
    reason = h.svc.get(waiting).reason or ""
    assert "node-1: needs 2 cpus, 1 of 1 free" in reason
    assert "node-2: needs 2 cpus, 0 of 4 free" in reason


def test_a_lost_nodes_attempt_is_lost_and_retried_elsewhere_exactly_once(h: Harness) -> None:
    h.start()
    retry = {"max_attempts": 3, "retry_on": ["lost"], "backoff": 0}
    job = h.submit(resources={"cpus": 0.5, "memory": "64M"}, constraints={}, retry=retry)
    assert h.started(job) == "node-1"
    h.until(lambda: h.svc.get(job).state is JobState.RUNNING)
    h.nodes.kill("node-1")
    h.clock.advance(2.0)  # the next look at the nodes
    assert h.started(job, 2) == "node-2"
    assert h.runtime is not None
    h.runtime.end(f"{job}-2")
    h.until(lambda: h.svc.get(job).state is JobState.SUCCEEDED)
    view = h.svc.get(job)
    assert view.attempts == 2  # one lost, one that finished: never a third
    assert [a for a in h.runtime.placed if a.startswith(job)] == [f"{job}-1", f"{job}-2"]
    # the lost node's attempt ending later (it was partitioned, say) changes nothing
    h.runtime.end(f"{job}-1")
    for _ in range(20):
        h.sched.tick()  # type: ignore[union-attr]
    assert h.svc.get(job).attempts == 2 and h.svc.get(job).state is JobState.SUCCEEDED
    events = [e["detail"] or "" for e in h.svc.events(job)]
    assert any("its node node-1 was lost" in d for d in events), events


def test_nodes_are_listed_with_their_load(h: Harness) -> None:
    sched = h.start()
    job = h.submit(resources={"cpus": 2, "memory": "1G"})
    h.started(job)
    sched.tick()
    rows = {r["id"]: r for r in sched.snapshot()["nodes"]}
    assert rows["node-2"]["used_cpus"] == 2.0 and rows["node-2"]["running"] == 1
    assert rows["node-1"]["labels"] == {"zone": "eu"} and rows["node-1"]["state"] == "alive"


def test_a_restarted_scheduler_reattaches_to_attempts_on_the_clusters_nodes(h: Harness) -> None:
    sched = h.start()
    job = h.submit(resources={"cpus": 2, "memory": "1G"})
    assert h.started(job) == "node-2"
    h.until(lambda: h.svc.get(job).state is JobState.RUNNING)
    runtime = h.runtime
    assert runtime is not None
    sched.fenced = True  # a crash: nothing more of it reaches the store
    sched.close()
    h.sched = Scheduler(
        h.svc.engine,
        runtime,
        h.svc.settings,
        clock=h.clock,
        poll_interval=0.01,
        nodes=h.nodes,
        node_thread=False,
    )
    h.sched.start()  # node-2 is one of its nodes: re-attached, not "lost for good"
    assert h.svc.get(job).state is JobState.RUNNING
    runtime.end(f"{job}-1")
    h.until(lambda: h.svc.get(job).state is JobState.SUCCEEDED)
    assert h.svc.get(job).attempts == 1


def test_a_start_that_fails_because_its_node_died_is_lost_not_failed(h: Harness) -> None:
    h.start()
    assert h.runtime is not None
    h.runtime.gate.clear()  # the spawn is in flight...
    retry = {"max_attempts": 2, "retry_on": ["lost"], "backoff": 0}
    job = h.submit(resources={"cpus": 0.5, "memory": "64M"}, retry=retry)
    h.until(lambda: h.svc.get(job).state is JobState.STARTING)
    h.nodes.kill("node-1")  # ...when its node dies, and the agent's answer is an error
    h.runtime.dead = True
    h.runtime.gate.set()
    h.until(lambda: h.svc.get(job).attempts == 2 or h.svc.get(job).state.terminal)
    assert h.svc.get(job).attempts == 2
    first = [e["detail"] or "" for e in h.svc.events(job)]
    assert any("its node node-1 was lost as it started" in d for d in first), first


def silent(nodes: EditableNodes, node_id: str, answering: bool = False) -> None:
    """Ray says the node is alive; its agent does not answer (hung, partitioned) or answers again."""
    reason = None if answering else "its agent did not answer within 2 s"
    nodes.nodes = [
        replace(n, answering=answering, reason=reason) if n.id == node_id else n for n in nodes.nodes
    ]


def test_a_silent_agent_makes_its_node_unschedulable_not_lost() -> None:
    nodes = two_nodes()
    table = NodeTable(nodes, lost_after=300.0)
    table.refresh(now=0.0)
    table.charge("node-1", 0.5, G)
    silent(nodes, "node-1")
    assert table.refresh(now=10.0) == []  # not lost: what runs there runs on
    assert table.alive("node-1")
    row = table.placement_nodes()[0]
    assert not row.schedulable and row.reason == "its agent did not answer within 2 s"
    assert table.snapshot()[0]["state"] == "unreachable"
    assert table.capacity == (5.0, 10 * G)  # its room is still counted: it comes back with it
    assert table.refresh(now=309.0) == []
    assert table.refresh(now=310.0) == ["node-1"]  # silent for lost_after: declared lost, once
    assert table.refresh(now=400.0) == []
    assert table.snapshot()[0]["state"] == "dead" and table.returning() == []
    silent(nodes, "node-1", answering=True)
    assert table.refresh(now=401.0) == []
    assert table.returning() == ["node-1"]  # takes nothing until what ran there is stopped
    assert table.snapshot()[0]["state"] == "returning" and not table.placement_nodes()[0].schedulable
    table.reconciled("node-1")
    assert table.returning() == [] and table.placement_nodes()[0].schedulable
    nodes.kill("node-2")
    assert table.refresh(now=402.0) == ["node-2"]  # the cluster's word: lost at once


def test_a_node_answering_again_before_the_grace_loses_nothing() -> None:
    nodes = two_nodes()
    table = NodeTable(nodes, lost_after=300.0)
    table.refresh(now=0.0)
    silent(nodes, "node-1")
    assert table.refresh(now=250.0) == []
    silent(nodes, "node-1", answering=True)
    assert table.refresh(now=260.0) == [] and table.returning() == []
    silent(nodes, "node-1")  # silent again: the grace starts over
    assert table.refresh(now=500.0) == [] and table.alive("node-1")


def test_a_partitioned_node_never_runs_a_job_twice(svc: JobService) -> None:
    svc.settings = replace(svc.settings, node_lost_after=300.0)
    h = Harness(svc)
    sched = h.start()
    try:
        assert h.runtime is not None
        retry = {"max_attempts": 3, "retry_on": ["lost"], "backoff": 0}
        job = h.submit(constraints={"node.name": "node-1"}, retry=retry)
        assert h.started(job) == "node-1"
        h.until(lambda: h.svc.get(job).state is JobState.RUNNING)
        silent(h.nodes, "node-1")  # Ray: alive; its agent: no answer
        h.clock.advance(2.0)
        for _ in range(20):
            sched.tick()
        assert h.svc.get(job).state is JobState.RUNNING and h.svc.get(job).attempts == 1
        row = next(r for r in sched.snapshot()["nodes"] if r["id"] == "node-1")
        assert (row["state"], row["reason"]) == ("unreachable", "its agent did not answer within 2 s")
        other = h.submit(constraints={"node.zone": "eu"})  # only node-1 matches: it waits, with why
        h.until(lambda: "its agent did not answer" in (h.svc.get(other).reason or ""))
        # silent past the grace: lost, and retried where it may run (its constraint pins node-1)
        h.clock.advance(300.0)
        h.until(lambda: h.svc.get(job).state is not JobState.RUNNING)
        assert not h.svc.get(job).state.terminal  # lost, to be retried
        assert f"{job}-1" not in h.runtime.killed  # nothing could reach it
        # the node answers again: attempt 1 (still running under its shim) is killed and its slot
        # released before the node takes anything (the waiting jobs)
        silent(h.nodes, "node-1", answering=True)
        h.clock.advance(2.0)
        h.until(lambda: f"{job}-2" in h.runtime.placed and f"{other}-1" in h.runtime.placed)
        assert h.runtime.calls.index(f"kill {job}-1") < h.runtime.calls.index(f"start {job}-2")
        assert h.runtime.calls.index(f"release {job}-1") < h.runtime.calls.index(f"start {other}-1")
        h.runtime.end(f"{job}-2")
        h.until(lambda: h.svc.get(job).state is JobState.SUCCEEDED)
        assert h.svc.get(job).attempts == 2
        events = [e["detail"] or "" for e in h.svc.events(job)]
        assert any("its node node-1 was lost" in d for d in events), events
    finally:
        sched.stop()
        sched.close()


@dataclass
class HangingNodes(EditableNodes):
    """A cluster whose listing hangs (an agent that never answers, on the old code path) while
    `hang` is clear."""

    hang: threading.Event = field(default_factory=threading.Event)
    looks: int = 0

    def list(self) -> list[NodeInfo]:
        self.looks += 1
        if self.looks > 1:  # the first look (the scheduler's construction) answers
            self.hang.wait()
        return super().list()


def test_a_hung_listing_of_the_nodes_never_stalls_the_tick(svc: JobService) -> None:
    nodes = HangingNodes(two_nodes().nodes)
    runtime = NodeRuntime(svc.settings.run_dir)
    clock = FakeClock()
    sched = Scheduler(
        svc.engine, runtime, svc.settings, clock=clock, poll_interval=0.01, nodes=nodes, node_refresh=1.0
    )
    sched.start()
    try:
        job = svc.submit({"command": ["work"], "resources": {"cpus": 0.5, "memory": "64M"}}).id
        for _ in range(400):  # the node thread is stuck in list(): the ticks go on without it
            clock.advance(1.0)
            sched.tick()
            if f"{job}-1" in runtime.placed:
                break
        assert f"{job}-1" in runtime.placed and nodes.looks >= 2
        nodes.kill("node-1")
        nodes.kill("node-2")
        nodes.hang.set()  # the listing answers: the tick takes it
        for _ in range(2000):
            sched.tick()
            if all(r["state"] == "dead" for r in sched.snapshot()["nodes"]):
                break
        assert all(r["state"] == "dead" for r in sched.snapshot()["nodes"])
    finally:
        nodes.hang.set()
        sched.stop()
        sched.close()


def test_the_table_can_be_listed_while_the_scheduler_changes_it() -> None:
    nodes = EditableNodes([NodeInfo(f"node-{i}", "", 1.0, G) for i in range(50)])
    table = NodeTable(nodes)
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                table.snapshot()
            except BaseException as exc:  # what the API thread saw
                errors.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(300):
            table.refresh([*nodes.list(), NodeInfo(f"extra-{i}", "", 1.0, G)])
            table.charge(f"gone-{i}", 0.1, 1)  # an attempt recovered on a node no longer listed
    finally:
        done.set()
        reader.join()
    assert errors == []


def test_nothing_asks_a_silent_agent_from_the_tick_and_a_stop_waits_for_its_answer(h: Harness) -> None:
    sched = h.start()
    assert h.runtime is not None
    job = h.submit(constraints={"node.name": "node-1"})
    assert h.started(job) == "node-1"
    h.until(lambda: h.svc.get(job).state is JobState.RUNNING)
    silent(h.nodes, "node-1")
    h.clock.advance(2.0)
    sched.tick()
    h.runtime.calls.clear()
    h.svc.cancel(job)
    for _ in range(30):  # polls, the stop and the kill after its grace would each hang on that agent
        h.clock.advance(1.0)
        sched.tick()
    assert not [c for c in h.runtime.calls if c.endswith(f"{job}-1")], h.runtime.calls
    assert h.svc.get(job).state is JobState.RUNNING  # not failed, not lost: unknown until it answers
    silent(h.nodes, "node-1", answering=True)
    h.clock.advance(2.0)
    h.until(lambda: h.svc.get(job).state is JobState.CANCELLED)
    assert f"kill {job}-1" in h.runtime.calls


def test_a_new_leader_kills_what_the_last_one_ended_lost_on_a_node_that_answers(h: Harness) -> None:
    sched = h.start()
    runtime = h.runtime
    assert runtime is not None
    retry = {"max_attempts": 3, "retry_on": ["lost"], "backoff": 0}
    job = h.submit(constraints={"node.zone": "eu"}, retry=retry)
    assert h.started(job) == "node-1"
    h.until(lambda: h.svc.get(job).state is JobState.RUNNING)
    h.nodes.kill("node-1")  # Ray: dead (a partition from the head, say); its attempt runs on
    h.clock.advance(2.0)
    h.until(lambda: h.svc.get(job).state is not JobState.RUNNING)
    sched.fenced = True  # the leader dies before the node answers again
    sched.close()
    h.nodes.nodes = [replace(n, alive=True) if n.id == "node-1" else n for n in h.nodes.nodes]
    runtime.calls.clear()
    h.sched = Scheduler(
        h.svc.engine,
        runtime,
        h.svc.settings,
        clock=h.clock,
        poll_interval=0.01,
        nodes=h.nodes,
        node_thread=False,
    )
    h.sched.start()  # knows nothing of the loss, but the store does: attempt 1 is killed there
    assert runtime.calls[:2] == [f"kill {job}-1", f"release {job}-1"]
    assert h.started(job, 2) == "node-1"
    runtime.end(f"{job}-2")
    h.until(lambda: h.svc.get(job).state is JobState.SUCCEEDED)
    assert h.svc.get(job).attempts == 2
