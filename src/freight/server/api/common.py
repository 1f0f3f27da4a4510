"""Helpers shared by the API routers: input hygiene, JSON replies, scope-aware job lookup."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import Path
from fastapi.responses import JSONResponse

from freight.errors import NotFoundError, UserError
from freight.jobs.client import JobView
from freight.jobs.service import JobService
from freight.server.auth import check_queue
from freight.server.tokens import Principal
from freight.text import bad_text

JobId = Annotated[str, Path(max_length=200, description="A job id")]
QueuePath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", description="A queue name")]


def check_input(data: Any, where: str) -> None:
    """Reject what no store or exec can hold: NUL characters, text that is not UTF-8 (a lone
    surrogate such as "\ud800") and non-finite numbers. They would otherwise fail deep down
    (PostgreSQL text, JSON encoding, execve) instead of as a clear 400 here."""
    if isinstance(data, str):
        if "\x00" in data:
            raise UserError("text may not contain NUL characters", where=where)
        if reason := bad_text(data):
            raise UserError(f"not UTF-8 text: it holds {reason}", where=where or "body")
    elif isinstance(data, float):
        if not math.isfinite(data):
            raise UserError("numbers must be finite", where=where)
    elif isinstance(data, dict):
        for key, value in data.items():
            check_input(key, where)
            check_input(value, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            check_input(value, f"{where}.{index}" if where else str(index))


_UNIT_FIELDS = (
    ("resources", "cpus"),
    ("resources", "memory"),
    ("timeout",),
    ("grace",),
    ("retry", "backoff"),
    ("retry", "backoff_max"),
)


def check_units(spec: Any, source: str) -> None:
    """Fields that take human units must be a number or a text. The unit parsers fail on other
    types with TypeError/AttributeError, which pydantic does not turn into a validation error, so
    catch those here and name the field (a bad value of the right type is left to the spec)."""
    if not isinstance(spec, dict):
        return
    for path in _UNIT_FIELDS:
        node: Any = spec
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or path[-1] not in node:
            continue
        value = node[path[-1]]
        if value is None and path == ("timeout",):
            continue
        if not isinstance(value, str | int | float):
            raise UserError(
                "must be a number or a text such as 512M, 0.5 or 10m",
                where=f"{source}: {'.'.join(path)}",
            )


def reply(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


def list_visible(
    svc: JobService,
    principal: Principal,
    *,
    state: str | None = None,
    queue: str | None = None,
    label: dict[str, str] | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> list[JobView]:
    """Newest first, only jobs this token may see. Checks a named queue against the token's scope."""
    if queue is not None:
        check_queue(principal, queue)
        return svc.list_jobs(state=state, queue=queue, label=label, limit=limit, cursor=cursor)
    if principal.admin or principal.queues is None:
        return svc.list_jobs(state=state, label=label, limit=limit, cursor=cursor)
    # A scoped token sees the newest `limit` across its own queues: merge one page per queue.
    merged = [
        view
        for name in sorted(principal.queues)
        for view in svc.list_jobs(state=state, queue=name, label=label, limit=limit, cursor=cursor)
    ]
    return sorted(merged, key=lambda v: v.id, reverse=True)[:limit]


def job_usage(svc: JobService, view: JobView) -> dict[str, Any]:
    """Memory and CPU now, measured from the running attempt when the scheduler runs in this process;
    otherwise the last attempt's recorded peak and total."""
    live = svc.usage(view.id) if view.state.active else None
    if live is not None:
        memory, cpu = live
        return {"live": True, "memory": memory, "cpu_seconds": cpu}
    last = view.attempt_list[-1] if view.attempt_list else None
    return {
        "live": False,
        "memory": last.peak_memory if last else None,
        "cpu_seconds": last.cpu_seconds if last else None,
    }


def visible_job(svc: JobService, principal: Principal, job_id: str) -> JobView:
    """The job, if this token may see it; a job in another queue looks like no job at all."""
    check_input(job_id, "job_id")
    # a unique prefix of the id will do, among the jobs this token may see
    scope = None if principal.admin else principal.queues
    view = svc.get(svc.resolve_id(job_id, scope))
    if not principal.may_use(view.queue):
        raise NotFoundError(f"no job {job_id!r}", hint="see `freight jobs ls`")
    return view


def visible_definitions(rows: list[dict[str, Any]], principal: Principal) -> list[dict[str, Any]]:
    """The definitions this token may see: all for an admin or an unscoped token, else those whose
    template runs in one of its queues (a template's env may hold more than its owner means to share)."""
    if principal.admin or principal.queues is None:
        return rows
    return [row for row in rows if _definition_queue(row) in principal.queues]


def _definition_queue(row: dict[str, Any]) -> str | None:
    queue = row["spec"].get("queue", "default") if row.get("problem") is None else None
    return queue if isinstance(queue, str) else None
