"""Every recovery branch, deterministically: a fake runtime and clock, the real SQLite store.

A "crash" abandons a scheduler at a chosen point (between a decision and its commit, or between a
commit and its side effect) and starts a fresh one on the same store and run directory; the test
then says how the attempt ends. Nothing waits on time. The kill -9 tests (test_crash.py) stay as a
second net with real processes."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from freight.config import Settings
from freight.db.schema import attempts, events, leases
from freight.jobs.client import JobView
from freight.jobs.lease import LeaseLostError, try_lease
from freight.jobs.scheduler import Scheduler, act, apply
from freight.jobs.scheduler.events import HANDLE_FILE
from freight.jobs.scheduler.state import HOLD_RUNNING
from freight.jobs.service import JobService
from freight.jobs.states import JobState
from freight.jobs.store import Batch
from freight.runtime.base import AttemptRequest, Handle, Recovered
from freight.runtime.records import STATUS
from tests.jobs.fakes import FakeClock, FakeRuntime


@pytest.fixture
def svc(settings: Settings, tmp_path: Path) -> Iterator[JobService]:
    service = JobService.open(replace(settings, cpus=4.0, memory=8 << 30, run_dir_override=tmp_path / "run"))
    yield service
    service.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Harness:
    def __init__(self, svc: JobService, clock: FakeClock) -> None:
        self.svc = svc
        self.clock = clock
        self.run_dir = svc.settings.run_dir
        self.alive: list[Scheduler] = []

    def scheduler(self, runtime: FakeRuntime | None = None) -> tuple[Scheduler, FakeRuntime]:
        runtime = runtime or FakeRuntime(self.run_dir)
        sched = Scheduler(self.svc.engine, runtime, self.svc.settings, clock=self.clock, poll_interval=0.01)
        sched.start()
        self.alive.append(sched)
        return sched, runtime

    def crash(self, sched: Scheduler) -> None:
        """Abandon it: nothing more of it reaches the store (its lease goes, as by expiry)."""
        sched.fenced = True
        sched.close()
        self.alive.remove(sched)

    def until(self, sched: Scheduler, done: Callable[[], bool], ticks: int = 400) -> None:
        for _ in range(ticks):
            if done():
                return
            sched.tick()
        raise AssertionError("condition not reached")

    def job(self, job_id: str) -> JobView:
        return self.svc.get(job_id)

    def state(self, job_id: str) -> JobState:
        return self.job(job_id).state

    def attempt_rows(self, job_id: str) -> int:
        with self.svc.engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(attempts.c.job_id == job_id)).scalar_one())

    def close(self) -> None:
        for sched in list(self.alive):
            sched.stop()
            sched.close()


@pytest.fixture
def h(svc: JobService, clock: FakeClock) -> Iterator[Harness]:
    harness = Harness(svc, clock)
    yield harness
    harness.close()


def submit(h: Harness, **spec: object) -> str:
    spec.setdefault("command", ["work"])
    spec.setdefault("resources", {"cpus": 0.5, "memory": "64M"})
    return h.svc.submit(spec).id


def test_crash_after_the_claim_before_the_spawn_reuses_the_attempt(h: Harness) -> None:
    old, old_rt = h.scheduler()
    old_rt.gate.clear()  # the spawn is in flight when the scheduler dies
    job = submit(h)
    h.until(old, lambda: h.state(job) is JobState.STARTING)
    old_rt.dead = True
    old_rt.gate.set()
    h.crash(old)
    new, rt = h.scheduler()
    assert h.state(job) in (JobState.QUEUED, JobState.STARTING)
    h.until(new, lambda: f"{job}-1" in rt.started)
    rt.end(f"{job}-1")
    h.until(new, lambda: h.state(job) is JobState.SUCCEEDED)
    view = h.job(job)
    assert view.attempts == 1 and h.attempt_rows(job) == 1  # not counted as a second attempt


def test_crash_after_the_spawn_before_the_handle_commit_reattaches(h: Harness) -> None:
    old, old_rt = h.scheduler()
    job = submit(h)
    h.until(old, lambda: h.state(job) is JobState.STARTING and bool(old.spawner.inflight))
    old.spawner.inflight[0][2].result(timeout=60)  # spawned; the handle is beside the records only
    assert (h.run_dir / f"{job}-1" / HANDLE_FILE).exists()
    h.crash(old)
    new, rt = h.scheduler(old_rt)
    assert h.state(job) is JobState.RUNNING
    rt.end(f"{job}-1", exit_code=3)
    h.until(new, lambda: h.state(job) is JobState.FAILED)
    assert h.job(job).exit_code == 3 and h.job(job).attempts == 1


def _started_without_handle(h: Harness) -> tuple[str, Path, FakeRuntime]:
    """A job whose shim replied but whose handle the dead scheduler never wrote anywhere."""
    old, old_rt = h.scheduler()
    job = submit(h)
    h.until(old, lambda: h.state(job) is JobState.STARTING and bool(old.spawner.inflight))
    old.spawner.inflight[0][2].result(timeout=60)
    h.crash(old)
    record_dir = h.run_dir / f"{job}-1"
    (record_dir / HANDLE_FILE).unlink()
    return job, record_dir, old_rt


def test_record_without_handle_whose_shim_still_runs_is_adopted_not_lost(h: Harness) -> None:
    job, record_dir, rt = _started_without_handle(h)
    lock = os.open(record_dir, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(lock, fcntl.LOCK_EX)  # stands for the living shim
    try:
        new, _ = h.scheduler(rt)
        assert h.state(job) is JobState.RUNNING
        new.tick()
        assert h.state(job) is JobState.RUNNING  # still running: not lost, not retried
        (record_dir / STATUS).write_text("exit=4\nstarted=1\nended=2\n")
    finally:
        os.close(lock)
    h.until(new, lambda: h.state(job) is JobState.FAILED)
    assert h.job(job).exit_code == 4 and h.job(job).attempts == 1
    h.until(new, lambda: not record_dir.exists())  # deleted after the outcome's commit


def test_record_without_handle_whose_shim_died_is_lost(h: Harness) -> None:
    job, _, rt = _started_without_handle(h)
    h.scheduler(rt)
    assert h.state(job) is JobState.LOST
    assert "while starting" in (h.job(job).reason or "")


def test_an_exit_record_is_deleted_only_after_its_outcome_is_committed(h: Harness) -> None:
    job, record_dir, rt = _started_without_handle(h)
    (record_dir / STATUS).write_text("exit=0\nstarted=1\nended=2\n")
    # A scheduler takes the lease, then loses it before recovery commits what it decided.
    sched = Scheduler(h.svc.engine, rt, h.svc.settings, clock=h.clock)
    with h.svc.engine.begin() as conn:
        sched.token = try_lease(conn, "scheduler", sched.holder, 15.0) or 0
        conn.execute(update(leases).values(expires_at=0))
        try_lease(conn, "scheduler", "elsewhere:1:x", 15.0)
    with pytest.raises(LeaseLostError):
        sched.recover()
    sched.close()
    assert (record_dir / STATUS).exists()  # the proof of how it ended is still there
    assert h.state(job) is JobState.STARTING
    with h.svc.engine.begin() as conn:
        conn.execute(update(leases).values(expires_at=0))
    h.scheduler(rt)
    assert h.state(job) is JobState.SUCCEEDED
    assert not record_dir.exists()


def test_handle_without_record_is_lost_and_retried_per_policy(h: Harness) -> None:
    old, rt = h.scheduler()
    job = submit(h, retry={"max_attempts": 2, "retry_on": ["lost"], "backoff": 1, "jitter": 0})
    h.until(old, lambda: h.state(job) is JobState.RUNNING)
    h.crash(old)
    rt.ended[f"{job}-1"] = Recovered.VANISHED
    new, _ = h.scheduler(rt)
    assert h.state(job) is JobState.RETRYING
    h.clock.advance(2)
    h.until(new, lambda: f"{job}-2" in rt.started)
    rt.end(f"{job}-2")
    h.until(new, lambda: h.state(job) is JobState.SUCCEEDED)
    assert h.job(job).attempts == 2


def test_alive_with_a_handle_is_reattached_once(h: Harness) -> None:
    old, rt = h.scheduler()
    job = submit(h)
    h.until(old, lambda: h.state(job) is JobState.RUNNING)
    h.crash(old)
    new, _ = h.scheduler(rt)
    new.tick()
    assert h.state(job) is JobState.RUNNING and rt.started == [f"{job}-1"]
    rt.end(f"{job}-1")
    h.until(new, lambda: h.state(job) is JobState.SUCCEEDED)
    new.spawner.shutdown()  # releases run on the spawn pool, after the commit
    assert rt.released == [f"{job}-1"]


def test_an_attempt_of_another_node_is_lost_without_a_retry(h: Harness) -> None:
    old, rt = h.scheduler()
    job = submit(h, retry={"max_attempts": 3, "retry_on": ["lost"]})
    h.until(old, lambda: h.state(job) is JobState.RUNNING)
    h.crash(old)
    with h.svc.engine.begin() as conn:
        conn.execute(update(attempts).values(node="another-machine"))
    h.scheduler(rt)
    view = h.job(job)
    assert view.state is JobState.LOST and view.attempts == 1
    assert "may still run there" in (view.reason or "")


def test_lease_lost_mid_tick_commits_nothing_and_acts_on_nothing(h: Harness) -> None:
    sched, rt = h.scheduler()
    job = submit(h)
    h.until(sched, lambda: h.state(job) is JobState.RUNNING)
    rt.end(f"{job}-1")
    with h.svc.engine.begin() as conn:  # a standby takes over while this one is between ticks
        conn.execute(update(leases).values(expires_at=0))
        assert try_lease(conn, "scheduler", "elsewhere:1:x", 15.0) == sched.token + 1
    with pytest.raises(LeaseLostError):
        sched.tick()
    assert sched.fenced
    assert h.state(job) is JobState.RUNNING  # its word is the new holder's to write
    assert rt.released == []  # no side effect without its commit


def test_a_stalled_old_leader_cannot_commit_after_a_takeover(h: Harness) -> None:
    old, rt = h.scheduler()
    job = submit(h)
    h.until(old, lambda: h.state(job) is JobState.RUNNING)
    with h.svc.engine.begin() as conn:
        conn.execute(update(leases).values(expires_at=0))  # it stalled past its TTL
    new, _ = h.scheduler(rt)  # the takeover re-attaches to the running attempt
    assert new.token == old.token + 1
    rt.end(f"{job}-1", exit_code=0)
    with pytest.raises(LeaseLostError):
        old.tick()  # wakes up, sees the exit, tries to record it
    with h.svc.engine.connect() as conn:
        ends = conn.execute(
            select(func.count()).where(events.c.job_id == job, events.c.to_state == "succeeded")
        )
        assert ends.scalar_one() == 0
    h.until(new, lambda: h.state(job) is JobState.SUCCEEDED)
    with h.svc.engine.connect() as conn:
        ends = conn.execute(
            select(func.count()).where(events.c.job_id == job, events.c.to_state == "succeeded")
        )
        assert ends.scalar_one() == 1  # recorded once, by the leader


def test_cancel_during_spawn_stops_the_attempt_once_its_handle_is_collected(h: Harness) -> None:
    sched, rt = h.scheduler()
    rt.gate.clear()
    job = submit(h)
    h.until(sched, lambda: h.state(job) is JobState.STARTING)
    h.svc.cancel(job)
    sched.tick()
    assert rt.terminated == []  # no handle yet to signal
    rt.gate.set()
    h.until(sched, lambda: h.state(job) is JobState.CANCELLED)
    assert rt.terminated == [f"{job}-1"]


def test_a_timeout_that_passed_during_recovery_stops_the_job(h: Harness) -> None:
    old, rt = h.scheduler()
    job = submit(h, timeout=10, grace=5)
    h.until(old, lambda: h.state(job) is JobState.RUNNING)
    h.crash(old)
    h.clock.advance(60)  # no scheduler ran while its deadline passed
    new, _ = h.scheduler(rt)
    h.until(new, lambda: h.state(job) is JobState.TIMED_OUT)
    assert rt.terminated == [f"{job}-1"]


def test_a_runtime_error_for_one_attempt_fails_it_alone(h: Harness) -> None:
    sched, rt = h.scheduler()

    def broken_poll(handle):  # type: ignore[no-untyped-def]
        if handle.attempt_id.startswith(bad):
            raise OSError("cannot read the attempt's records")
        return FakeRuntime.poll(rt, handle)

    bad = submit(h)
    rt.poll = broken_poll  # type: ignore[method-assign]
    good = submit(h)
    h.until(sched, lambda: h.state(bad).terminal)
    rt.end(f"{good}-1")
    h.until(sched, lambda: h.state(good) is JobState.SUCCEEDED)
    assert h.state(bad) is JobState.FAILED
    assert "could not watch it" in (h.job(bad).reason or "") and rt.killed == [f"{bad}-1"]


def test_a_wake_after_close_writes_to_no_other_file(h: Harness, tmp_path: Path) -> None:
    """close() closes the wake pipe while a submitting thread may still wake(): the write must not
    land in whatever file took the descriptor number meanwhile."""
    sched, _ = h.scheduler()
    h.alive.remove(sched)
    number = sched._wake_w
    sched.stop()
    sched.close()
    opened: list[int] = []
    try:
        while number not in opened and len(opened) < 64:
            opened.append(os.open(tmp_path / f"file{len(opened)}", os.O_RDWR | os.O_CREAT))
        assert number in opened  # the number is another file's now
        sched.wake()
        assert os.fstat(number).st_size == 0
    finally:
        for fd in opened:
            os.close(fd)


def test_an_attempt_that_began_running_is_committed_with_the_next_tick(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick whose batch only says "these began running" holds it for the next tick (at most
    HOLD_RUNNING later), so a short job's start and end commit together: one transaction, both events."""
    sched, rt = h.scheduler()
    job = submit(h)
    h.until(sched, lambda: sched._held is not None)
    assert h.state(job) is JobState.STARTING  # spawned, its handle beside the records; not yet committed
    assert sched._next_timer_in(h.clock()) <= HOLD_RUNNING
    rt.end(f"{job}-1")
    commits: list[Batch] = []
    real = apply.commit

    def counting(engine: Any, leader: Any, batch: Batch, now: float) -> set[str]:
        commits.append(batch)
        return real(engine, leader, batch, now)

    monkeypatch.setattr(act, "commit", counting)
    h.until(sched, lambda: h.state(job) is JobState.SUCCEEDED)
    assert [[new.value for _, _, new, _, _ in b.transitions] for b in commits] == [["running", "succeeded"]]
    assert [e["to_state"] for e in reversed(h.svc.events(job))] == [
        "queued",
        "starting",
        "running",
        "succeeded",
    ]


def test_a_held_start_with_nothing_after_it_is_committed_on_the_next_tick(h: Harness) -> None:
    sched, _ = h.scheduler()
    job = submit(h)
    h.until(sched, lambda: sched._held is not None)
    sched.tick()
    assert sched._held is None and h.state(job) is JobState.RUNNING


def test_a_crash_while_a_start_is_held_reattaches_from_the_handle(h: Harness) -> None:
    old, old_rt = h.scheduler()
    job = submit(h)
    h.until(old, lambda: old._held is not None)
    h.crash(old)
    new, rt = h.scheduler(old_rt)
    assert h.state(job) is JobState.RUNNING
    rt.end(f"{job}-1")
    h.until(new, lambda: h.state(job) is JobState.SUCCEEDED)
    assert h.job(job).attempts == 1 and h.attempt_rows(job) == 1


def test_a_scheduler_that_stops_commits_the_start_it_held(h: Harness) -> None:
    sched, _ = h.scheduler()
    job = submit(h)
    h.until(sched, lambda: sched._held is not None)
    h.alive.remove(sched)
    sched.close()
    assert h.state(job) is JobState.RUNNING


class _AgentLayoutRuntime(FakeRuntime):
    """Records where a cluster node's agent keeps them (<run_dir>/<node>/<attempt>), which is not
    where a new leader's recovery reads handles from."""

    def handle(self, attempt_id: str) -> Handle:
        return Handle(attempt_id, 0, 0, str(self.run_dir / "node-a" / attempt_id), "fake")

    def start(self, request: AttemptRequest) -> Handle:
        (self.run_dir / "node-a" / request.attempt_id).mkdir(parents=True, exist_ok=True)
        self.started.append(request.attempt_id)
        return self.handle(request.attempt_id)


def test_a_start_recovery_could_not_find_is_committed_at_once_and_never_run_twice(h: Harness) -> None:
    """Held, a start whose handle sits in an agent's folder was lost with a crashed leader: the next
    one found the job `starting` with no handle, re-queued it and started the attempt a second time."""
    rt = _AgentLayoutRuntime(h.run_dir)
    old, _ = h.scheduler(rt)
    job = submit(h)
    # the tick that collects the spawn: it commits the start (never holds it), then the leader dies
    h.until(old, lambda: job in old.running and old.running[job].handle is not None)
    assert old._held is None and h.state(job) is JobState.RUNNING
    h.crash(old)
    new, _ = h.scheduler(rt)
    for _ in range(20):
        new.tick()
    assert rt.started == [f"{job}-1"]
