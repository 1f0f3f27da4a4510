"""Decisions as pure functions: plain data in, a step and its reason out.

No I/O, no clock, no threads: `now` and what the runtime showed (events.AttemptSeen) are arguments,
so every branch is unit-tested with plain data (tests/jobs/test_decide.py). The loop gathers the
inputs (events), calls these, and writes the result into the tick's batch, which apply commits
before any side effect.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Iterable
from dataclasses import dataclass
from enum import StrEnum

from freight.jobs.scheduler.events import AttemptSeen, outcome_of_record
from freight.runtime.base import Outcome, Recovered


class Step(StrEnum):
    #: the attempt never began: the job goes back to its queue and the attempt number is reused
    REQUEUE = "requeue"
    #: it is running: watch it again (a deadline that passed meanwhile stops it at the next tick)
    REATTACH = "reattach"
    #: it ended meanwhile: record the outcome (the record is deleted only after that commit)
    FINISH = "finish"
    #: its shim runs, but no handle was ever written down: watch its record directory until the
    #: exit record appears (never call it lost while it runs: a retry would run it twice)
    ADOPT = "adopt"
    #: it is gone without an exit record: lost (the retry policy may run it again)
    LOST = "lost"
    #: it ran on another node that this scheduler cannot reach: lost, and never retried here, since
    #: it may still be running there
    LOST_FOR_GOOD = "lost_for_good"


def is_mine(node: str, this_node: str | Container[str]) -> bool:
    """Whether an attempt's node is one this scheduler reaches (one name, or a cluster's nodes)."""
    return node == this_node if isinstance(this_node, str) else node in this_node


@dataclass(frozen=True)
class Recovery:
    step: Step
    reason: str
    outcome: Outcome | None = None


def recovery_step(seen: AttemptSeen, this_node: str | Container[str], *, running: bool = False) -> Recovery:
    """What to do with an active job's current attempt after a restart (`running`: the store says
    it runs, not that it is starting). `this_node`: this machine's name, or the nodes of the cluster
    this scheduler places on (attempts there are re-attached through the cluster's runtime)."""
    if seen.node and not is_mine(seen.node, this_node):
        return Recovery(
            Step.LOST_FOR_GOOD,
            f"it ran on {seen.node}, whose scheduler went away (not retried: it may still run there)",
        )
    if seen.handle_error is not None:
        return Recovery(Step.LOST, f"its handle cannot be read ({seen.handle_error})")
    if seen.handle is None:
        if not seen.has_row or not seen.record_dir:
            if running:  # the store says it ran, yet nothing of it is left here
                return Recovery(Step.LOST, "its process vanished with no exit record")
            return Recovery(Step.REQUEUE, "never started; queued again after a restart")
        if seen.record is not None:
            return Recovery(Step.FINISH, "ended while no scheduler ran", outcome_of_record(seen.record))
        if seen.shim_alive:
            return Recovery(Step.ADOPT, "running; the scheduler stopped before it wrote its handle down")
        return Recovery(Step.LOST, "the scheduler stopped while starting it")
    if seen.runtime_error is not None:
        return Recovery(Step.LOST, f"could not re-attach to it ({seen.runtime_error})")
    if isinstance(seen.status, Outcome):
        return Recovery(Step.FINISH, "ended while no scheduler ran", seen.status)
    if seen.status is Recovered.VANISHED:
        return Recovery(Step.LOST, "its process vanished with no exit record")
    return Recovery(Step.REATTACH, "re-attached after a restart")


@dataclass(frozen=True)
class Watched:
    """The timer-relevant part of a running attempt."""

    job_id: str
    deadline: float | None
    stop_reason: str | None
    kill_at: float | None


@dataclass(frozen=True)
class TimerPlan:
    #: attempts to SIGKILL now (their grace after a stop has passed)
    kill: tuple[str, ...]
    #: attempts to stop for their timeout
    time_out: tuple[str, ...]
    #: retrying jobs whose backoff elapsed
    requeue: tuple[str, ...]


def due_timers(running: Iterable[Watched], delayed: list[tuple[float, str]], now: float) -> TimerPlan:
    """Which timers fire at `now`. Pops the elapsed backoffs off `delayed` (a heap)."""
    kill: list[str] = []
    time_out: list[str] = []
    for run in running:
        if run.kill_at is not None and now >= run.kill_at:
            kill.append(run.job_id)
        elif run.stop_reason is None and run.deadline is not None and now >= run.deadline:
            time_out.append(run.job_id)
    requeue: list[str] = []
    while delayed and delayed[0][0] <= now:
        requeue.append(heapq.heappop(delayed)[1])
    return TimerPlan(tuple(kill), tuple(time_out), tuple(requeue))
