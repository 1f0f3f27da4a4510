"""Job and attempt states, and the one table of legal transitions.

`TABLE` below IS the transition table: `TRANSITIONS` is parsed from it, so the picture cannot drift
from what `Batch.move` and the service enforce. Rows are the state a job is in, columns the state it
may move to (`x`: legal).

Why each unusual move exists:

- queued -> failed: it can never run on this node (asks for more than the node has), or its stored
  spec cannot be read; retrying -> failed: the same found while it waited for its backoff.
- queued -> cancelled: cancelled before it started, or an `after_ok` dependency did not succeed.
- starting -> queued: recovery found the attempt never began (no shim record); it is run again
  without counting against the retry policy.
- retrying -> queued: its backoff (`not_before`) elapsed.
- <terminal> -> queued: an explicit `retry` of the whole job (a new attempt of the same job).

Every transition is a compare-and-set on the previous state, persisted before its side effect.
"""

from __future__ import annotations

from enum import StrEnum

from freight.errors import FreightError


class JobState(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    OOM_KILLED = "oom_killed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    LOST = "lost"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def active(self) -> bool:
        """Holds (or is about to hold) resources on a node."""
        return self in (JobState.STARTING, JobState.RUNNING)


TERMINAL = frozenset(
    {
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.OOM_KILLED,
        JobState.TIMED_OUT,
        JobState.CANCELLED,
        JobState.LOST,
    }
)
FAILURES = TERMINAL - {JobState.SUCCEEDED, JobState.CANCELLED}


TABLE = """
    from \\ to   queued starting running retrying succeeded failed oom_killed timed_out cancelled lost
    queued         .       x       .       .         .        x        .          .         x      .
    starting       x       .       x       x         x        x        x          x         x      x
    running        .       .       .       x         x        x        x          x         x      x
    retrying       x       .       .       .         .        x        .          .         x      .
    succeeded      x       .       .       .         .        .        .          .         .      .
    failed         x       .       .       .         .        .        .          .         .      .
    oom_killed     x       .       .       .         .        .        .          .         .      .
    timed_out      x       .       .       .         .        .        .          .         .      .
    cancelled      x       .       .       .         .        .        .          .         .      .
    lost           x       .       .       .         .        .        .          .         .      .
"""


class IllegalTransition(FreightError):
    """A move the transition table does not allow: a bug in the caller, never bad input."""


def _parse_table(doc: str) -> dict[JobState, frozenset[JobState]]:
    lines = [line.split() for line in doc.splitlines() if line.strip()]
    header = next(i for i, words in enumerate(lines) if words[:1] == ["from"])
    targets = [JobState(name) for name in lines[header][3:]]
    table: dict[JobState, frozenset[JobState]] = {}
    for words in lines[header + 1 : header + 1 + len(targets)]:
        source, marks = JobState(words[0]), words[1:]
        if len(marks) != len(targets):
            raise AssertionError(f"transition table row {source} has {len(marks)} marks")
        table[source] = frozenset(t for t, mark in zip(targets, marks, strict=True) if mark == "x")
    if set(table) != set(JobState):
        raise AssertionError("the transition table must have one row per state")
    return table


TRANSITIONS: dict[JobState, frozenset[JobState]] = _parse_table(TABLE)


def can_transition(old: JobState, new: JobState) -> bool:
    return new in TRANSITIONS[old]


def check_transition(job_id: str, old: JobState, new: JobState) -> None:
    """Raise IllegalTransition unless the table allows old -> new."""
    if not can_transition(old, new):
        raise IllegalTransition(f"job {job_id}: {old.value} -> {new.value} is not a legal transition")
