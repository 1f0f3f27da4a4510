"""decide: every recovery branch and the timers, as plain data (no store, no runtime, no clock)."""

from __future__ import annotations

import pytest

from freight.jobs.scheduler.decide import Step, Watched, due_timers, recovery_step
from freight.jobs.scheduler.events import AttemptSeen
from freight.runtime.base import Handle, Outcome, Recovered
from freight.runtime.records import ShimStatus

HERE = "node-a"
HANDLE = Handle("j-1", 10, 20, "/run/j-1", "rlimits")
ENDED = Outcome(0, None, False, None, None, 1.0, 2.0)
RECORD = ShimStatus(3, None, None, 11, 1.0, 2.0, 0.1, 4096)


@pytest.mark.parametrize(
    ("seen", "running", "step", "why"),
    [
        # crash after the claim's commit, before the spawn: no record directory
        (AttemptSeen("j-1", node=HERE), False, Step.REQUEUE, "never started"),
        (AttemptSeen("j-1", has_row=False), False, Step.REQUEUE, "never started"),
        # the store says running, yet nothing is left of it
        (AttemptSeen("j-1", node=HERE), True, Step.LOST, "vanished"),
        # crash after the spawn, before the handle's commit; the job ended meanwhile
        (AttemptSeen("j-1", node=HERE, record_dir=True, record=RECORD), False, Step.FINISH, "ended"),
        # ... and it still runs: adopt it, never call it lost (a retry would run it twice)
        (AttemptSeen("j-1", node=HERE, record_dir=True, shim_alive=True), False, Step.ADOPT, "running"),
        # ... and its shim died without a record
        (AttemptSeen("j-1", node=HERE, record_dir=True), False, Step.LOST, "while starting"),
        # a handle (in the store or beside the records) and the runtime's word on it
        (AttemptSeen("j-1", node=HERE, handle=HANDLE, status=Recovered.RUNNING), True, Step.REATTACH, ""),
        (AttemptSeen("j-1", node=HERE, handle=HANDLE, status=ENDED), True, Step.FINISH, "ended"),
        (
            AttemptSeen("j-1", node=HERE, handle=HANDLE, status=Recovered.VANISHED),
            True,
            Step.LOST,
            "vanished",
        ),
        (
            AttemptSeen("j-1", node=HERE, handle=HANDLE, runtime_error="OSError: x"),
            True,
            Step.LOST,
            "OSError",
        ),
        (AttemptSeen("j-1", node=HERE, handle_error="bad json"), True, Step.LOST, "bad json"),
        # another node's attempt: lost for good, whatever else is seen
        (AttemptSeen("j-1", node="node-b", handle=HANDLE), True, Step.LOST_FOR_GOOD, "node-b"),
    ],
)
def test_recovery_step(seen: AttemptSeen, running: bool, step: Step, why: str) -> None:
    decided = recovery_step(seen, HERE, running=running)
    assert decided.step is step
    assert why in decided.reason


def test_an_outcome_from_the_record_is_what_the_record_says() -> None:
    decided = recovery_step(AttemptSeen("j-1", node=HERE, record_dir=True, record=RECORD), HERE)
    assert decided.outcome is not None
    assert (decided.outcome.exit_code, decided.outcome.started_at, decided.outcome.ended_at) == (3, 1.0, 2.0)
    assert decided.outcome.peak_memory == 4096


def test_due_timers() -> None:
    running = [
        Watched("timeout", deadline=10.0, stop_reason=None, kill_at=None),
        Watched("not-yet", deadline=11.0, stop_reason=None, kill_at=None),
        Watched("stopping", deadline=5.0, stop_reason="timeout", kill_at=12.0),
        Watched("grace-over", deadline=None, stop_reason="cancel", kill_at=10.0),
    ]
    delayed = [(9.0, "backoff-done"), (10.0, "backoff-now"), (11.0, "backoff-later")]
    plan = due_timers(running, delayed, now=10.0)
    assert plan.time_out == ("timeout",)
    assert plan.kill == ("grace-over",)
    assert plan.requeue == ("backoff-done", "backoff-now")
    assert delayed == [(11.0, "backoff-later")]
