"""Live streams: a job's log as it is written (raw chunks or Server-Sent Events) and the event feed.

Following is async and polls the log file and the job's state, so a client that goes away just stops
its stream; no thread stays blocked on a silent job. An SSE event carries `id: <attempt>:<offset>`,
so a browser that reconnects (EventSource sends Last-Event-ID) resumes where it left off.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.concurrency import run_in_threadpool

from freight.jobs.client import JobView
from freight.jobs.service import ARCHIVE_WAIT, JobService
from freight.jobs.states import JobState

POLL = 0.25
HEARTBEAT = 15.0
_READ_MAX = 256 * 1024


async def _read(svc: JobService, job_id: str, number: int, offset: int, *, archived: bool = True) -> bytes:
    """The local file, else (`archived`) the object store's copy: see JobService.read_log."""
    return await run_in_threadpool(svc.read_log, job_id, number, offset, _READ_MAX, archived=archived)


def attempt_ended(current: JobView, number: int) -> bool:
    return current.attempts != number or current.terminal or current.state is JobState.RETRYING


async def follow_log(
    svc: JobService, job_id: str, attempt: int | None, offset: int = 0, *, follow: bool = True
) -> AsyncIterator[tuple[int, int, bytes]]:
    """Yield (attempt, offset after the chunk, chunk): what is written so far, and with `follow`
    everything after until the attempt ends. An empty chunk is a heartbeat, sent when nothing was
    written for HEARTBEAT seconds. Following an attempt that has not started (the first, or the next
    one after a retry) waits for it to start, unless the job ends first."""
    view = await run_in_threadpool(svc.get, job_id)
    target = attempt or max(view.attempts, 1)
    if target > view.attempts and not follow:
        return
    quiet_since = time.monotonic()
    while view.attempts < target:
        # following an attempt that has not started yet (the first, or the next after a retry)
        if view.terminal:
            return
        await asyncio.sleep(POLL)
        view = await run_in_threadpool(svc.get, job_id)
        if time.monotonic() - quiet_since >= HEARTBEAT:
            quiet_since = time.monotonic()
            yield 0, 0, b""
    number = attempt or view.attempts
    while True:
        # while it runs, its log is on its node only: no need to ask the object store
        chunk = await _read(svc, job_id, number, offset, archived=not follow)
        if chunk:
            offset += len(chunk)
            quiet_since = time.monotonic()
            yield number, offset, chunk
            continue
        if not follow:
            return
        current = await run_in_threadpool(svc.get, job_id)
        if attempt_ended(current, number):
            # one last read: the attempt ended, so its log is complete (here or in the archive)
            deadline = time.monotonic() + ARCHIVE_WAIT
            while await run_in_threadpool(svc.log_in_flight, job_id, number) and time.monotonic() < deadline:
                await asyncio.sleep(POLL)
            while rest := await _read(svc, job_id, number, offset):
                offset += len(rest)
                yield number, offset, rest
            return
        if time.monotonic() - quiet_since >= HEARTBEAT:
            quiet_since = time.monotonic()
            yield number, offset, b""
        await asyncio.sleep(POLL)


async def raw_chunks(stream: AsyncIterator[tuple[int, int, bytes]]) -> AsyncIterator[bytes]:
    async for _, _, chunk in stream:
        if chunk:
            yield chunk


def sse(event: str, data: Any, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


async def sse_log(
    svc: JobService, job_id: str, stream: AsyncIterator[tuple[int, int, bytes]]
) -> AsyncIterator[str]:
    """Log chunks as `log` events ({"attempt", "text"}), then one `end` event with the job's state."""
    yield "retry: 2000\n\n"
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    last = 0
    async for number, offset, chunk in stream:
        if not chunk:
            yield ": keepalive\n\n"
            continue
        if number != last:
            decoder.reset()
            last = number
        text = decoder.decode(chunk)
        if text:
            yield sse("log", {"attempt": number, "text": text}, f"{number}:{offset}")
    tail = decoder.decode(b"", final=True)
    if tail:
        yield sse("log", {"attempt": last, "text": tail})
    view = await run_in_threadpool(svc.get, job_id)
    yield sse(
        "end",
        {
            "state": view.state.value,
            "attempts": view.attempts,
            "terminal": view.terminal,
            "reason": view.reason,
        },
    )


def parse_last_event_id(value: str | None) -> tuple[int | None, int]:
    """`<attempt>:<offset>` from Last-Event-ID (a reconnecting EventSource), else (None, 0)."""
    if not value:
        return None, 0
    number, _, offset = value.partition(":")
    if number.isdigit() and offset.isdigit():
        return int(number), int(offset)
    return None, 0


async def follow_events(fetch: Callable[[], list[dict[str, Any]]], poll: float = 0.5) -> AsyncIterator[str]:
    """SSE of new events: `fetch()` returns the events that became visible since its last call,
    oldest first (it keeps the cursor: see server/api/events.py, event_reader)."""
    yield "retry: 2000\n\n"
    quiet_since = time.monotonic()
    while True:
        rows = await run_in_threadpool(fetch)
        for row in rows:
            yield sse("event", row, str(row["id"]))
        if rows:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= HEARTBEAT:
            quiet_since = time.monotonic()
            yield ": keepalive\n\n"
        await asyncio.sleep(poll)
