"""Runtime observations: what the node shows about an attempt, gathered into plain data.

This is the scheduler's only reading of the runtime and of the record directories (I/O); `decide`
turns what is seen here into steps without touching either. An error the runtime raises for one
attempt becomes part of that attempt's observation, never an exception out of the loop.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freight.runtime import records
from freight.runtime.base import Handle, Outcome, Recovered, Runtime
from freight.runtime.records import ShimStatus

log = logging.getLogger("freight.scheduler")

#: the handle, written beside the shim's records as soon as the spawn returns
HANDLE_FILE = "handle.json"


@dataclass(frozen=True)
class AttemptSeen:
    """A job's current attempt as a restarted scheduler finds it (see decide.recovery_step)."""

    attempt_id: str
    #: whether the store has a row for the attempt (it is inserted with the claim)
    has_row: bool = True
    #: the node the attempt was placed on
    node: str | None = None
    #: from the store, else from the file beside the shim's records
    handle: Handle | None = None
    #: the handle was found beside the records only (the store does not have it yet)
    handle_from_file: bool = False
    #: text that should have been a handle and is not
    handle_error: str | None = None
    #: the shim's record directory exists (the runtime made it: a shim was asked for)
    record_dir: bool = False
    #: the shim's exit record, when the job has ended
    record: ShimStatus | None = None
    #: a shim still holds the record directory's lock (it, and the job, are alive)
    shim_alive: bool = False
    #: runtime.recover(handle), asked only with a handle of this node
    status: Outcome | Recovered | None = None
    #: what runtime.recover raised
    runtime_error: str | None = None


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def observe_attempt(
    runtime: Runtime, run_dir: Path, attempt_id: str, row: Any | None, this_node: str | Container[str]
) -> AttemptSeen:
    """Look at one attempt after a restart: its row, its record directory and, with a handle of
    this node, the runtime's word on it (which also adopts its cgroup slot)."""
    if row is None:
        return AttemptSeen(attempt_id, has_row=False, record_dir=(run_dir / attempt_id).exists())
    text: str | None = row.handle
    from_file = False
    if text is None:
        with contextlib.suppress(OSError):
            text = (run_dir / row.id / HANDLE_FILE).read_text() or None
            from_file = text is not None
    base = AttemptSeen(row.id, node=row.node)
    if text is None:
        record_dir = run_dir / row.id
        if not record_dir.exists():
            return base
        record = records.read_status(str(record_dir))
        alive = record is None and records.lock_held(str(record_dir))
        return AttemptSeen(row.id, node=row.node, record_dir=True, record=record, shim_alive=alive)
    try:
        handle = Handle.from_json(text)
    except Exception as exc:
        return AttemptSeen(row.id, node=row.node, handle_error=describe(exc))
    seen = AttemptSeen(row.id, node=row.node, handle=handle, handle_from_file=from_file, record_dir=True)
    if row.node and not (row.node == this_node if isinstance(this_node, str) else row.node in this_node):
        return seen
    try:
        status = runtime.recover(handle)
    except Exception as exc:
        log.exception("could not re-attach to attempt %s", row.id)
        return AttemptSeen(**{**seen.__dict__, "runtime_error": describe(exc)})
    return AttemptSeen(**{**seen.__dict__, "status": status})


def observe_orphan(record_dir: str) -> ShimStatus | Recovered:
    """An attempt whose shim runs but whose handle was never written down: its exit record once it
    has ended, VANISHED if the shim died without one, else RUNNING."""
    record = records.read_status(record_dir)
    if record is not None:
        return record
    return Recovered.RUNNING if records.lock_held(record_dir) else Recovered.VANISHED


def outcome_of_record(record: ShimStatus) -> Outcome:
    """The outcome a shim's exit record proves (without the handle, no cgroup measures it)."""
    return Outcome(
        record.exit_code,
        record.signal,
        False,
        record.max_rss or None,
        record.cpu_seconds,
        record.started,
        record.ended,
        error=record.error,
    )
