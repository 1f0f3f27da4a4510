"""Reading and writing job state. The store is the source of truth; the scheduler's heaps are a cache.

Every state change is a compare-and-set on the previous state (`WHERE id = :id AND state = :old`) and
is recorded in the events table in the same transaction. The scheduler collects a tick's changes in a
`Batch` and applies them with one executemany per table (group commit).
"""

from __future__ import annotations

import functools
import itertools
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, and_, bindparam, delete, insert, select, update

from freight.db.schema import attempts, definitions, dependencies, events, jobs, queues
from freight.errors import NotFoundError, UserError
from freight.jobs.client import AttemptView, JobView
from freight.jobs.spec import STORED, JobSpec, format_validation_error
from freight.jobs.states import JobState, check_transition

_counter = itertools.count()


def new_job_id(now: float | None = None) -> str:
    """Sortable by submission time: 12 hex digits of milliseconds, a per-process sequence (so ids of
    one batch keep their order), then random digits (so other processes do not collide)."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:012x}{next(_counter) % 65536:04x}{secrets.token_hex(2)}"


@dataclass
class JobRecord:
    """One row of `jobs`, with the spec parsed. The scheduler keeps these in memory."""

    id: str
    name: str | None
    queue: str
    priority: int
    state: JobState
    spec: JobSpec
    submitted_at: float
    updated_at: float
    started_at: float | None = None
    ended_at: float | None = None
    attempts: int = 0
    exit_code: int | None = None
    reason: str | None = None
    not_before: float | None = None
    cancel_requested: bool = False
    definition: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    #: why the stored spec could not be read (then `spec` is a stand-in that runs nothing); the
    #: scheduler fails such a job with this reason instead of failing to read the others
    broken: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> JobRecord:
        m = row._mapping
        spec, broken = _stored_spec(m["spec"], m["queue"])
        return cls(
            id=m["id"],
            name=m["name"],
            queue=m["queue"],
            priority=m["priority"],
            state=JobState(m["state"]),
            spec=spec,
            submitted_at=m["submitted_at"],
            updated_at=m["updated_at"],
            started_at=m["started_at"],
            ended_at=m["ended_at"],
            attempts=m["attempts"],
            exit_code=m["exit_code"],
            reason=m["reason"],
            not_before=m["not_before"],
            cancel_requested=bool(m["cancel_requested"]),
            definition=m["definition"],
            labels=json.loads(m["labels"]),
            idempotency_key=m["idempotency_key"],
            broken=broken,
        )

    def insert_params(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "queue": self.queue,
            "priority": self.priority,
            "state": self.state.value,
            "spec": self.spec.model_dump_json(),
            "definition": self.definition,
            "labels": json.dumps(self.labels),
            "idempotency_key": self.idempotency_key,
            "submitted_at": self.submitted_at,
            "updated_at": self.updated_at,
            "attempts": self.attempts,
            "cancel_requested": False,
        }

    def view(self, attempt_list: Sequence[AttemptView] = ()) -> JobView:
        return JobView(
            id=self.id,
            name=self.name,
            queue=self.queue,
            state=self.state,
            priority=self.priority,
            spec=self.spec,
            submitted_at=self.submitted_at,
            started_at=self.started_at,
            ended_at=self.ended_at,
            attempts=self.attempts,
            exit_code=self.exit_code,
            reason=self.reason,
            labels=self.labels,
            definition=self.definition,
            attempt_list=tuple(attempt_list),
        )


@functools.lru_cache(maxsize=4096)
def _stored_spec(text: str, queue: str) -> tuple[JobSpec, str | None]:
    """The spec stored as `text`, parsed once per distinct text: jobs submitted together usually
    share one spec, and a JobSpec is frozen, so they share one object (at 100k queued jobs this is
    most of the scheduler's start-up time and memory)."""
    try:
        return JobSpec.model_validate_json(text, context=STORED), None
    except ValidationError as exc:
        stand_in = JobSpec.model_validate({"command": ["false"], "queue": queue}, context=STORED)
        return stand_in, format_validation_error(exc, "stored spec").__str__()


def record_from_spec(spec: JobSpec, *, now: float, definition: str | None = None) -> JobRecord:
    return JobRecord(
        id=new_job_id(now),
        name=spec.name,
        queue=spec.queue,
        priority=spec.priority,
        state=JobState.QUEUED,
        spec=spec,
        submitted_at=now,
        updated_at=now,
        definition=definition,
        labels=dict(spec.labels),
        idempotency_key=spec.idempotency_key,
    )


# --- the group-commit batch -------------------------------------------------------------------------

_JOB_MUTABLE = (
    "state",
    "updated_at",
    "started_at",
    "ended_at",
    "attempts",
    "exit_code",
    "reason",
    "not_before",
)
_ATTEMPT_END = (
    "state",
    "ended_at",
    "exit_code",
    "signal",
    "oom_killed",
    "peak_memory",
    "cpu_seconds",
    "error",
)

_update_job_cas = (
    update(jobs)
    .where(and_(jobs.c.id == bindparam("b_id"), jobs.c.state == bindparam("b_old")))
    .values({name: bindparam(name) for name in _JOB_MUTABLE})
)
_update_job_reason = update(jobs).where(jobs.c.id == bindparam("b_id")).values(reason=bindparam("reason"))
_update_attempt_running = (
    update(attempts)
    .where(attempts.c.id == bindparam("b_id"))
    .values(state=bindparam("state"), handle=bindparam("handle"), started_at=bindparam("started_at"))
)
_update_attempt_end = (
    update(attempts)
    .where(attempts.c.id == bindparam("b_id"))
    .values({name: bindparam(name) for name in _ATTEMPT_END})
)
_update_attempt_stop = (
    update(attempts).where(attempts.c.id == bindparam("b_id")).values(stop_reason=bindparam("stop_reason"))
)


@dataclass
class Batch:
    """The writes of one scheduler tick, applied in one transaction."""

    #: (job, old state, new state, attempt number, detail), in the order they happened
    transitions: list[tuple[JobRecord, JobState, JobState, int, str | None]] = field(default_factory=list)
    new_attempts: list[dict[str, Any]] = field(default_factory=list)
    running_attempts: list[dict[str, Any]] = field(default_factory=list)
    ended_attempts: list[dict[str, Any]] = field(default_factory=list)
    stop_reasons: list[dict[str, Any]] = field(default_factory=list)
    reasons: dict[str, str | None] = field(default_factory=dict)
    clear_cancel: list[str] = field(default_factory=list)
    #: attempts that never began, deleted so that the job's next claim reuses their number
    dropped_attempts: list[str] = field(default_factory=list)

    def move(self, job: JobRecord, new: JobState, now: float, detail: str | None = None) -> None:
        """Record job.state -> new (the caller already set the other fields on `job`). Raises
        IllegalTransition, changing nothing, if the transition table does not allow it."""
        old = job.state
        check_transition(job.id, old, new)
        job.state = new
        job.updated_at = now
        self.transitions.append((job, old, new, job.attempts, detail))

    def only_running(self) -> bool:
        """Whether all it holds is attempts that began running (what a tick may hold back: see
        Scheduler.tick)."""
        return (
            all(new is JobState.RUNNING for _, _, new, _, _ in self.transitions)
            and not self.new_attempts
            and not self.ended_attempts
            and not self.stop_reasons
            and not self.reasons
            and not self.clear_cancel
            and not self.dropped_attempts
        )

    def __bool__(self) -> bool:
        return bool(
            self.transitions
            or self.new_attempts
            or self.running_attempts
            or self.ended_attempts
            or self.stop_reasons
            or self.reasons
            or self.clear_cancel
            or self.dropped_attempts
        )


def apply_batch(conn: Connection, batch: Batch, now: float) -> set[str]:
    """Write a batch. Returns the ids of jobs whose compare-and-set lost (changed by someone else);
    the caller must drop its in-memory view of those and re-read them."""
    lost: set[str] = set()
    if batch.transitions:
        # A job may move more than once in a tick (running, then succeeded): one compare-and-set from
        # its first state to its last, and one event per step.
        first_old: dict[str, JobState] = {}
        final: dict[str, JobRecord] = {}
        for job, old, _, _, _ in batch.transitions:
            first_old.setdefault(job.id, old)
            final[job.id] = job
        params = []
        for job_id, job in final.items():
            row = {name: getattr(job, name) for name in _JOB_MUTABLE}
            row["state"] = job.state.value
            row["b_id"] = job_id
            row["b_old"] = first_old[job_id].value
            params.append(row)
        result = conn.execute(_update_job_cas, params)
        if result.rowcount != len(params):
            lost = _find_cas_losers(conn, final)
        event_params = [
            {
                "job_id": job.id,
                "attempt": attempt or None,
                "from_state": old.value,
                "to_state": new.value,
                "at": now,
                "detail": detail,
            }
            for job, old, new, attempt, detail in batch.transitions
            if job.id not in lost
        ]
        if event_params:
            conn.execute(insert(events), event_params)
    dropped = [a for a in batch.dropped_attempts if a.rsplit("-", 1)[0] not in lost]
    if dropped:
        conn.execute(delete(attempts).where(attempts.c.id.in_(dropped)))
    new_attempts = [a for a in batch.new_attempts if a["job_id"] not in lost]
    if new_attempts:
        conn.execute(insert(attempts), new_attempts)
    for stmt, rows in (
        (_update_attempt_running, batch.running_attempts),
        (_update_attempt_end, batch.ended_attempts),
        (_update_attempt_stop, batch.stop_reasons),
    ):
        if rows:
            conn.execute(stmt, rows)
    if batch.reasons:
        conn.execute(_update_job_reason, [{"b_id": k, "reason": v} for k, v in batch.reasons.items()])
    if batch.clear_cancel:
        conn.execute(update(jobs).where(jobs.c.id.in_(batch.clear_cancel)).values(cancel_requested=False))
    return lost


def _find_cas_losers(conn: Connection, final: dict[str, JobRecord]) -> set[str]:
    wanted = {job_id: job.state.value for job_id, job in final.items()}
    rows = conn.execute(select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(list(wanted)))).all()
    return {row.id for row in rows if row.state != wanted[row.id]}


# --- reads ------------------------------------------------------------------------------------------


def load_jobs(conn: Connection, ids: Iterable[str]) -> list[JobRecord]:
    id_list = list(ids)
    out: list[JobRecord] = []
    for start in range(0, len(id_list), 500):
        chunk = id_list[start : start + 500]
        out.extend(JobRecord.from_row(r) for r in conn.execute(select(jobs).where(jobs.c.id.in_(chunk))))
    return out


#: ids an ambiguous prefix error lists
_AMBIGUOUS_SHOWN = 3


def resolve_job_id(conn: Connection, text: str, queues: Iterable[str] | None = None) -> str:
    """The id of the job `text` names: its whole id, or a prefix of exactly one id (as docker and
    nomad accept). `queues` limits the search to the jobs a scoped caller may see, so an ambiguous
    prefix never names a job in another queue."""
    visible = None if queues is None else sorted(queues)
    query = select(jobs.c.id)
    if visible is not None:
        query = query.where(jobs.c.queue.in_(visible))
    if conn.execute(query.where(jobs.c.id == text)).first() is not None:
        return text
    # ids are lower-case hex, so anything else cannot prefix one (and needs no LIKE escaping)
    if text and all(c in "0123456789abcdef" for c in text):
        found = [
            r.id
            for r in conn.execute(
                query.where(jobs.c.id.like(f"{text}%")).order_by(jobs.c.id.desc()).limit(_AMBIGUOUS_SHOWN + 1)
            )
        ]
        if len(found) == 1:
            return str(found[0])
        if found:
            shown = ", ".join(found[:_AMBIGUOUS_SHOWN]) + (", ..." if len(found) > _AMBIGUOUS_SHOWN else "")
            raise UserError(
                f"job id prefix {text!r} matches several jobs ({shown})", hint="give more of the id"
            )
    raise NotFoundError(f"no job {text!r}", hint="see `freight jobs ls`")


def _attempt_view(r: Any) -> AttemptView:
    return AttemptView(
        number=r.number,
        state=r.state,
        started_at=r.started_at,
        ended_at=r.ended_at,
        exit_code=r.exit_code,
        signal=r.signal,
        oom_killed=bool(r.oom_killed),
        peak_memory=r.peak_memory,
        cpu_seconds=r.cpu_seconds,
        error=r.error,
        log_path=r.log_path,
        node=r.node,
    )


def attempt_views(conn: Connection, job_id: str) -> list[AttemptView]:
    rows = conn.execute(select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.number))
    return [_attempt_view(r) for r in rows]


def job_views(conn: Connection, job_ids: Sequence[str]) -> list[JobView]:
    """Views of many jobs with their attempts, in the order asked, in a few queries."""
    records = {r.id: r for r in load_jobs(conn, job_ids)}
    by_job: dict[str, list[AttemptView]] = {}
    unique = list(dict.fromkeys(job_ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        query = select(attempts).where(attempts.c.job_id.in_(chunk)).order_by(attempts.c.number)
        for row in conn.execute(query):
            by_job.setdefault(row.job_id, []).append(_attempt_view(row))
    return [records[i].view(by_job.get(i, [])) for i in job_ids if i in records]


def dependents_of(conn: Connection, job_id: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        select(dependencies.c.job_id, dependencies.c.condition).where(dependencies.c.depends_on == job_id)
    )
    return [(r.job_id, r.condition) for r in rows]


def event_rows(conn: Connection, job_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    query = select(events).order_by(events.c.id.desc()).limit(limit)
    if job_id:
        query = query.where(events.c.job_id == job_id)
    return [dict(r._mapping) for r in conn.execute(query)]


def queue_rows(conn: Connection) -> dict[str, dict[str, Any]]:
    return {r.name: dict(r._mapping) for r in conn.execute(select(queues))}


def definition_row(conn: Connection, name: str, version: int | None) -> dict[str, Any] | None:
    query = select(definitions).where(definitions.c.name == name)
    query = (
        query.where(definitions.c.version == version)
        if version is not None
        else query.order_by(definitions.c.version.desc()).limit(1)
    )
    row = conn.execute(query).first()
    return dict(row._mapping) if row else None
