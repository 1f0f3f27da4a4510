"""What the web UI says about a job, in plain words: how it ended, why it waits, what it used; and
the badges of pipeline runs, their steps and QA checks, in the same colours."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from freight.jobs.client import JobView
from freight.jobs.states import JobState
from freight.units import format_bytes, format_duration

#: badge colour family per state (CSS classes s-ok, s-bad, ...)
STATE_TONE = {
    JobState.QUEUED: "wait",
    JobState.STARTING: "run",
    JobState.RUNNING: "run",
    JobState.RETRYING: "warn",
    JobState.SUCCEEDED: "ok",
    JobState.FAILED: "bad",
    JobState.OOM_KILLED: "bad",
    JobState.TIMED_OUT: "bad",
    JobState.CANCELLED: "muted",
    JobState.LOST: "warn",
}

STATE_LABEL = {
    JobState.OOM_KILLED: "out of memory",
    JobState.TIMED_OUT: "timed out",
}

#: badge colour family of a pipeline run's or step's state, and of a QA check's status
RUN_TONE = {
    "pending": "wait",
    "queued": "wait",
    "running": "run",
    "waiting": "wait",
    "succeeded": "ok",
    "reused": "ok",
    "failed": "bad",
    "upstream_failed": "warn",
    "cancelled": "muted",
    "skipped": "muted",
    "pass": "ok",
    "warn": "warn",
    "fail": "bad",
}


@dataclass(frozen=True)
class Outcome:
    tone: str
    title: str
    detail: str
    hint: str | None = None


def state_label(state: JobState | str) -> str:
    state = JobState(state)
    return STATE_LABEL.get(state, state.value)


def tone(state: JobState | str) -> str:
    return STATE_TONE[JobState(state)]


def run_tone(state: str) -> str:
    return RUN_TONE.get(state, "muted")


def run_label(state: str) -> str:
    return state.replace("_", " ")


def bytes_text(value: int | None) -> str:
    return "-" if value is None else format_bytes(value)


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def clock(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def ago(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "-"
    delta = max(0.0, (now or time.time()) - ts)
    if delta < 5:
        return "just now"
    return f"{format_duration(_round(delta))} ago"


def _round(seconds: float) -> float:
    return float(int(seconds)) if seconds >= 60 else round(seconds, 1)


def elapsed(start: float | None, end: float | None, now: float | None = None) -> str:
    """How long from `start` to `end` (or to now, while it runs); "-" before it starts."""
    if start is None:
        return "-"
    stop = end or now or time.time()
    return format_duration(_round(max(0.0, stop - start)))


def run_time(view: JobView, now: float | None = None) -> str:
    return elapsed(view.started_at, view.ended_at, now)


def outcome(view: JobView, *, queue_paused: bool = False, scheduler_up: bool = True) -> Outcome:
    """One banner: what happened, or what it is waiting for, and what to do about it."""
    spec = view.spec
    last = view.attempt_list[-1] if view.attempt_list else None
    reason = view.reason or ""
    state = view.state
    if state is JobState.SUCCEEDED:
        return Outcome("ok", "Succeeded", f"Exited 0 after {run_time(view)}.")
    if state is JobState.OOM_KILLED:
        limit = bytes_text(spec.resources.memory)
        peak = f" (peak {bytes_text(last.peak_memory)})" if last and last.peak_memory else ""
        # the title already says "out of memory"; the reason starts with it too
        detail = (
            sentence(reason.removeprefix("out of memory: "))
            or f"The kernel killed it at its {limit} memory limit{peak}."
        )
        return Outcome(
            "bad",
            "Killed: out of memory",
            detail,
            f"Raise resources.memory above {limit}, or make it use less.",
        )
    if state is JobState.TIMED_OUT:
        limit = format_duration(spec.timeout) if spec.timeout else "its"
        detail = sentence(reason) or f"It ran past its {limit} timeout and was stopped."
        return Outcome("bad", "Timed out", detail, "Raise timeout if it needs longer.")
    if state is JobState.FAILED:
        if last is not None and last.error:
            return Outcome(
                "bad", "Could not start", last.error, "Check the command and its working directory."
            )
        if last is not None and last.signal:
            return Outcome(
                "bad", f"Killed by signal {last.signal}", sentence(reason) or "It was killed by a signal."
            )
        code = "-" if view.exit_code is None else str(view.exit_code)
        return Outcome(
            "bad", f"Failed with exit code {code}", sentence(reason) or "It exited non-zero; see its log."
        )
    if state is JobState.CANCELLED:
        return Outcome("muted", "Cancelled", sentence(reason) or "Cancelled on request.")
    if state is JobState.LOST:
        return Outcome("warn", "Lost", sentence(reason) or "Its process vanished with no exit record.")
    if state is JobState.RETRYING:
        return Outcome("warn", "Retrying", sentence(reason) or "Waiting for its retry backoff.")
    if state in (JobState.STARTING, JobState.RUNNING):
        return Outcome("run", "Running", f"Attempt {view.attempts}, running for {run_time(view)}.")
    # queued: why is it waiting?
    why = []
    if not scheduler_up:
        why.append("No scheduler is running on this store, so nothing starts. Start one with `freight up`.")
    if queue_paused:
        why.append(f"Its queue {view.queue!r} is paused.")
    if reason:
        why.append(sentence(reason))
    if not why:
        why.append("In its queue; it starts as soon as its turn comes and it fits.")
    return Outcome("wait", "Waiting to start", " ".join(why))


def sentence(text: str | None) -> str:
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def filters_query(params: dict[str, Any]) -> str:
    from urllib.parse import urlencode

    return urlencode([(k, v) for k, v in params.items() if v not in (None, "", [])], doseq=True)
