"""The change feed on PostgreSQL (scheduler/changes.py), where a sequence hands out event ids before
their transactions commit: a transaction that holds a low id and commits after hundreds of later ids
is still read, by the next read. Two connections on the real PostgreSQL, no scheduler."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from freight.config import Settings
from freight.db.schema import events
from freight.jobs import eventfeed
from freight.jobs.eventfeed import GAP_HOLD
from freight.jobs.scheduler.changes import Change, ChangeFeed
from freight.jobs.service import JobService


@pytest.fixture
def engine(settings: Settings, pg_url: str) -> Iterator[Engine]:
    with JobService.open(replace(settings, database_url=pg_url)) as svc:
        yield svc.engine


def event(job_id: str, to_state: str = "queued") -> dict[str, Any]:
    return {"job_id": job_id, "attempt": None, "from_state": None, "to_state": to_state, "at": 0.0}


def read(engine: Engine, feed: ChangeFeed, now: float) -> list[Change]:
    with engine.connect() as conn:
        return feed.read(conn, now)


def started(engine: Engine) -> ChangeFeed:
    feed = ChangeFeed()
    with engine.connect() as conn:
        feed.restart(conn, 0.0)
    return feed


def test_a_commit_behind_many_later_ids_is_read_when_it_lands(engine: Engine) -> None:
    feed = started(engine)
    with engine.connect() as early:
        early.execute(insert(events), [event("early")])  # takes an id and stays open
        with engine.begin() as burst:  # a group commit: 200 later ids, committed first
            burst.execute(insert(events), [event(f"burst{i}") for i in range(200)])
        first = read(engine, feed, 1.0)
        assert {c.job_id for c in first} == {f"burst{i}" for i in range(200)}
        early.commit()
    assert read(engine, feed, 2.0) == [Change("early", "queued")]
    assert read(engine, feed, 3.0) == [] and feed.gaps == {}


def test_a_rolled_back_id_is_asked_for_until_gap_hold_then_forgotten(engine: Engine) -> None:
    feed = started(engine)
    with engine.connect() as lost:
        lost.execute(insert(events), [event("lost")])
        lost.rollback()
    with engine.begin() as conn:
        conn.execute(insert(events), [event("kept")])
    assert read(engine, feed, 1.0) == [Change("kept", "queued")]
    assert len(feed.gaps) == 1
    assert read(engine, feed, 1.0 + GAP_HOLD) == [] and feed.gaps == {}


def test_the_schedulers_own_moves_are_read_past_not_taken_for_gaps(engine: Engine) -> None:
    feed = started(engine)
    with engine.begin() as conn:
        conn.execute(insert(events), [event("a", "starting"), event("a", "running"), event("a", "cancelled")])
    assert read(engine, feed, 1.0) == [Change("a", "cancelled")]
    assert feed.gaps == {}


def test_a_rescan_keeps_the_cursor_so_a_commit_in_flight_meanwhile_is_read(engine: Engine) -> None:
    feed = started(engine)
    with engine.connect() as early:
        early.execute(insert(events), [event("early")])
        with engine.begin() as conn:
            conn.execute(insert(events), [event(f"later{i}") for i in range(200)])
        with engine.connect() as conn:
            feed.restart(conn, 1.0)  # a full scan reads the jobs now: "early" is not visible yet
        early.commit()
    assert Change("early", "queued") in read(engine, feed, 2.0)


def test_gaps_are_bounded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventfeed, "MAX_GAPS", 5)
    feed = started(engine)
    with engine.connect() as lost:
        lost.execute(insert(events), [event(f"lost{i}") for i in range(20)])
        lost.rollback()
    with engine.begin() as conn:
        conn.execute(insert(events), [event("kept")])
    assert read(engine, feed, 1.0) == [Change("kept", "queued")]
    assert len(feed.gaps) == 5 and max(feed.gaps) == feed.cursor - 1
