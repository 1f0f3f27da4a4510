"""Job and attempt states, and the one table of legal transitions.

::

                  +-----------------------------------------------+
                  |                                               v
    queued --> starting --> running --> succeeded | failed | oom_killed | timed_out | lost
      ^  |         |           |                     \\________________________/
      |  |         |           |                                 |
      |  |         |           +--> (cancel) --> cancelled       | retry policy says "again"
      |  +---------+-----------------> cancelled                 v
      +------------------------------------------------------ retrying

- Every transition is a compare-and-set on the previous state, persisted before its side effect.
- `retrying` waits for its backoff (`not_before`) and then goes back to `queued`.
- Terminal states never change again, except by an explicit `retry` of the whole job, which is a new
  attempt of the same job (`failed -> queued`).
"""

from __future__ import annotations

from enum import StrEnum


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

_ENDINGS = {
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.OOM_KILLED,
    JobState.TIMED_OUT,
    JobState.LOST,
    JobState.CANCELLED,
    JobState.RETRYING,
}

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.STARTING, JobState.CANCELLED}),
    # starting -> queued: recovery found the attempt never began (no shim record).
    JobState.STARTING: frozenset(_ENDINGS | {JobState.RUNNING, JobState.QUEUED}),
    JobState.RUNNING: frozenset(_ENDINGS),
    JobState.RETRYING: frozenset({JobState.QUEUED, JobState.CANCELLED}),
    # A manual retry re-queues a finished job.
    **{state: frozenset({JobState.QUEUED}) for state in FAILURES | {JobState.CANCELLED}},
    JobState.SUCCEEDED: frozenset({JobState.QUEUED}),
}


def can_transition(old: JobState, new: JobState) -> bool:
    return new in TRANSITIONS[old]
