"""Rendering for the CLI: tables, job details, and one-line errors."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from freight.jobs.placement import node_name
from freight.jobs.states import JobState

if TYPE_CHECKING:
    from freight.jobs.client import JobView
    from freight.jobs.listing import ListedJob

    Listed = JobView | ListedJob  # a listing shows the fields both have
from freight.units import format_bytes, format_duration, plural

# Piped output is read by scripts and grep: do not squeeze it into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, soft_wrap=True)  # one message, one line

STATE_STYLE = {
    JobState.QUEUED: "cyan",
    JobState.STARTING: "blue",
    JobState.RUNNING: "blue bold",
    JobState.RETRYING: "yellow",
    JobState.SUCCEEDED: "green",
    JobState.FAILED: "red",
    JobState.OOM_KILLED: "red bold",
    JobState.TIMED_OUT: "red",
    JobState.CANCELLED: "dim",
    JobState.LOST: "magenta",
}


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def duration(view: Listed) -> str:
    if view.started_at is None:
        return "-"
    end = view.ended_at or dt.datetime.now().timestamp()
    return format_duration(end - view.started_at)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def jobs_table(views: Sequence[Listed]) -> Table:
    table = Table(box=None, header_style="bold")
    table.add_column("ID", no_wrap=True, min_width=20)
    for column in ("NAME", "QUEUE", "STATE", "TRIES", "SUBMITTED", "DURATION"):
        table.add_column(column, no_wrap=True)
    table.add_column("REASON", no_wrap=True, overflow="ellipsis", max_width=60)
    for v in views:
        style = STATE_STYLE.get(v.state, "")
        table.add_row(
            v.id,
            v.name or "-",
            v.queue,
            f"[{style}]{v.state.value}[/]",
            str(v.attempts),
            when(v.submitted_at),
            duration(v),
            v.reason or "",
        )
    return table


def show_job(view: JobView) -> None:
    style = STATE_STYLE.get(view.state, "")
    spec = view.spec
    res = spec.resources
    console.print(f"[bold]{view.id}[/]  {view.name or ''}")
    rows = [
        ("state", f"[{style}]{view.state.value}[/]"),
        ("reason", view.reason or "-"),
        ("queue", f"{view.queue} (priority {view.priority})"),
        ("command", " ".join(spec.argv())),
        (
            "limits",
            f"{plural(res.cpus, 'cpu')}, {format_bytes(res.memory)} memory, {plural(res.pids, 'pid')}",
        ),
        ("timeout", format_duration(spec.timeout) if spec.timeout else "none"),
        ("retry", _retry_line(spec.retry.max_attempts, spec.retry.retry_on)),
        ("submitted", when(view.submitted_at)),
        ("started", when(view.started_at)),
        ("ended", when(view.ended_at)),
        ("exit code", "-" if view.exit_code is None else str(view.exit_code)),
    ]
    if view.definition:
        rows.append(("definition", view.definition))
    if spec.depends_on:
        rows.append(("depends on", ", ".join(f"{d.job} ({d.condition})" for d in spec.depends_on)))
    if view.labels:
        rows.append(("labels", ", ".join(f"{k}={v}" for k, v in view.labels.items())))
    for key, value in rows:
        console.print(f"  [dim]{key:>11}[/]  {value}")
    if view.attempt_list:
        table = Table(box=None, header_style="bold", title="attempts", title_justify="left")
        columns = ("#", "STATE", "NODE", "EXIT", "SIGNAL", "OOM", "PEAK MEM", "CPU", "STARTED", "ERROR")
        for column in columns:
            table.add_column(column)
        for a in view.attempt_list:
            table.add_row(
                str(a.number),
                a.state,
                node_name(a.node) if a.node else "-",
                "-" if a.exit_code is None else str(a.exit_code),
                "-" if a.signal is None else str(a.signal),
                "yes" if a.oom_killed else "no",
                format_bytes(a.peak_memory),
                "-" if a.cpu_seconds is None else f"{a.cpu_seconds:.2f}s",
                when(a.started_at),
                a.error or "",
            )
        console.print(table)


def _retry_line(max_attempts: int, retry_on: Sequence[object]) -> str:
    if max_attempts <= 1:
        return "none (1 attempt)"
    return f"up to {plural(max_attempts, 'attempt')} on {', '.join(map(str, retry_on))}"


def ending_sentence(view: JobView) -> str:
    """How `freight run` says what happened, plainly."""
    if view.state is JobState.SUCCEEDED:
        return f"job {view.id} succeeded"
    if view.state is JobState.OOM_KILLED:
        return f"job {view.id} failed, {view.reason}"
    if view.state is JobState.TIMED_OUT:
        return f"job {view.id} {view.reason}"
    return f"job {view.id} {view.state.value}: {view.reason or ''}".rstrip(": ")


def exit_code_for(view: JobView) -> int:
    """`freight run` exits like the job did; shell conventions for the rest (timeout(1): 124)."""
    if view.state is JobState.SUCCEEDED:
        return 0
    if view.state is JobState.OOM_KILLED:
        return 137
    if view.state is JobState.TIMED_OUT:
        return 124
    if view.state is JobState.CANCELLED:
        return 130
    last = view.attempt_list[-1] if view.attempt_list else None
    if last is not None and last.signal:
        return 128 + last.signal
    if view.exit_code:
        return view.exit_code
    return 1
