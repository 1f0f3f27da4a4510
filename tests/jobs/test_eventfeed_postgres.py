"""Every reader that follows the events table shares one follower (jobs/eventfeed.py), so none of
them misses an event that commits on PostgreSQL after later ids are visible: JobService.wait, the
live SSE event feed (server/api/events.py) and the sampler's start latencies (server/sampler.py).
Two connections on the real PostgreSQL; no scheduler runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Connection, insert, update

from freight.config import Settings
from freight.db.schema import events, jobs
from freight.jobs import service as service_module
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.server.api.events import event_reader
from freight.server.sampler import Sampler
from freight.server.tokens import Principal


@pytest.fixture
def svc(settings: Settings, pg_url: str) -> Iterator[JobService]:
    with JobService.open(replace(settings, database_url=pg_url)) as service:
        yield service


def event(job_id: str, to_state: str, **extra: Any) -> dict[str, Any]:
    return {"job_id": job_id, "attempt": None, "from_state": None, "to_state": to_state, "at": 0.0} | extra


def later_burst(svc: JobService, n: int = 50) -> None:
    """A group commit of later ids that lands first."""
    with svc.engine.begin() as conn:
        conn.execute(insert(events), [event(f"other{i}", "queued") for i in range(n)])


def test_the_live_event_feed_sends_an_event_that_commits_after_later_ones(svc: JobService) -> None:
    job = svc.submit(JobSpec(command=["true"], queue="default")).id
    other = svc.submit(JobSpec(command=["true"], queue="other")).id
    scoped = Principal(token_id="t", name="t", admin=False, queues=frozenset({"default"}))
    fetch = event_reader(svc.engine, scoped, None, None)
    assert fetch() == []  # follows from the newest event
    with svc.engine.connect() as early:
        early.execute(insert(events), [event(job, "cancelled"), event(other, "cancelled")])
        later_burst(svc)
        with svc.engine.begin() as conn:
            conn.execute(insert(events), [event(job, "queued")])
        assert [r["to_state"] for r in fetch()] == ["queued"]  # the burst is another queue's
        early.commit()
    assert [(r["job_id"], r["to_state"]) for r in fetch()] == [(job, "cancelled")]
    assert fetch() == []


def test_the_sampler_observes_a_start_that_commits_after_later_events(svc: JobService) -> None:
    job = svc.submit(JobSpec(command=["true"])).id
    observed: list[float] = []
    sampler = Sampler(svc, on_started=observed.append)
    sampler.sample()  # primes the follower
    start = event(job, "running", from_state="starting", attempt=1)
    with svc.engine.connect() as early:
        early.execute(insert(events), [start])
        later_burst(svc)
        sampler.sample()
        assert observed == []
        early.commit()
    sampler.sample()
    assert len(observed) == 1


def test_wait_returns_when_an_ending_commits_after_later_events(
    svc: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "_WAIT_RECHECK", 3600.0)  # only the feed may notice
    job = svc.submit(JobSpec(command=["true"])).id
    early: Connection = svc.engine.connect()
    early.execute(update(jobs).where(jobs.c.id == job).values(state="cancelled"))
    early.execute(insert(events), [event(job, "cancelled")])  # takes its id, commits later
    later_burst(svc)
    states = svc._states
    calls = 0

    def states_then_commit(conn: Any, job_ids: list[str]) -> Any:
        nonlocal calls
        calls += 1
        out = states(conn, job_ids)
        if calls == 1:  # wait has its cursor (past the burst) and saw the job still queued
            early.commit()
            early.close()
        return out

    monkeypatch.setattr(svc, "_states", states_then_commit)
    result: list[Any] = []
    waiter = threading.Thread(target=lambda: result.extend(svc.wait([job])), daemon=True)
    waiter.start()
    waiter.join(60)  # a hang detector, not a timing: before the fix, wait never returned
    assert not waiter.is_alive()
    assert [v.state.value for v in result] == ["cancelled"]
