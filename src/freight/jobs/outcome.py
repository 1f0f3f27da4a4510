"""From a measured attempt outcome to a job state, a plain-words reason and a retry decision."""

from __future__ import annotations

import signal as signals

from freight.jobs.spec import JobSpec
from freight.jobs.states import JobState
from freight.runtime.base import Outcome
from freight.units import format_bytes, format_duration

_RETRY_KIND = {
    JobState.OOM_KILLED: "oom",
    JobState.TIMED_OUT: "timeout",
    JobState.LOST: "lost",
    JobState.FAILED: "failed",
}


def signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def classify(outcome: Outcome, stop_reason: str | None, spec: JobSpec) -> tuple[JobState, str | None]:
    """Decide the state an attempt ended in, and say why in one sentence."""
    limit = spec.resources.memory
    if stop_reason == "cancel":
        return JobState.CANCELLED, "cancelled while running"
    if stop_reason == "timeout" and not outcome.ok:
        return (
            JobState.TIMED_OUT,
            f"timed out after {format_duration(spec.timeout)}; the whole process tree was killed",
        )
    if outcome.oom_killed:
        peak = format_bytes(outcome.peak_memory)
        return (
            JobState.OOM_KILLED,
            f"out of memory: the kernel killed it at the {format_bytes(limit)} limit (peak {peak})",
        )
    if outcome.error:
        return JobState.FAILED, outcome.error
    if outcome.exit_code == 0:
        return JobState.SUCCEEDED, None
    if outcome.signal:
        reason = f"killed by {signal_name(outcome.signal)}"
        return JobState.FAILED, reason + _at_its_memory_limit(outcome, limit)
    return JobState.FAILED, f"exited with code {outcome.exit_code}"


#: A process that aborts or faults with its peak this close to its memory limit may have failed an
#: allocation before the OOM killer acted (allocators abort on ENOMEM: Arrow's jemalloc did, as
#: SIGABRT). Only these signals: a plain non-zero exit after heavy I/O can show a peak at the limit
#: on cgroup v1, where the page cache counts.
NEAR_LIMIT = 0.95
_ALLOCATION_SIGNALS = frozenset({signals.SIGABRT, signals.SIGSEGV, signals.SIGBUS})


def _at_its_memory_limit(outcome: Outcome, limit: int | None) -> str:
    peak = outcome.peak_memory
    if outcome.signal not in _ALLOCATION_SIGNALS or not limit or not peak or peak < NEAR_LIMIT * limit:
        return ""
    return (
        f"; its memory peaked at {format_bytes(peak)} of its {format_bytes(limit)} limit, so an "
        "allocation may have failed: raise resources.memory"
    )


def should_retry(state: JobState, exit_code: int | None, attempts: int, spec: JobSpec) -> bool:
    if state in (JobState.SUCCEEDED, JobState.CANCELLED) or attempts >= spec.retry.max_attempts:
        return False
    retry_on = spec.retry.retry_on
    if _RETRY_KIND.get(state) in retry_on:
        return True
    return state == JobState.FAILED and exit_code is not None and exit_code in retry_on
