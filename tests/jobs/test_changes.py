"""The scheduler follows the events table for what other processes changed (scheduler/changes.py):
new submissions and cancellations of waiting jobs are read from the feed, not from a scan of every
waiting job; the full scan still runs every FULL_EVERY seconds. Fake runtime and clock, real SQLite."""

from __future__ import annotations

from typing import Any

import pytest

from freight.jobs import eventfeed
from freight.jobs.scheduler import Scheduler, changes
from freight.jobs.scheduler.changes import FULL_EVERY
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.jobs.states import JobState
from tests.jobs import test_recovery
from tests.jobs.test_recovery import Harness, submit

# the deterministic harness of the recovery tests: a fake runtime and clock on a real SQLite store
svc = test_recovery.svc
clock = test_recovery.clock
h = test_recovery.h


def count_full_scans(sched: Scheduler) -> list[float]:
    scans: list[float] = []
    scan_all = sched._sync_all

    def counting(conn: Any, batch: Any, now: float) -> None:
        scans.append(now)
        scan_all(conn, batch, now)

    sched._sync_all = counting  # type: ignore[method-assign]
    return scans


def test_a_job_submitted_by_another_process_is_admitted_from_the_feed(h: Harness) -> None:
    sched, rt = h.scheduler()
    scans = count_full_scans(sched)
    job = submit(h)  # this service runs no scheduler: it pokes the socket, the store has the job
    h.until(sched, lambda: f"{job}-1" in rt.started)
    assert scans == []
    rt.end(f"{job}-1")
    h.until(sched, lambda: h.state(job) is JobState.SUCCEEDED)


def test_a_waiting_job_cancelled_by_another_process_is_forgotten_from_the_feed(h: Harness) -> None:
    sched, rt = h.scheduler()
    scans = count_full_scans(sched)
    first = submit(h)
    h.until(sched, lambda: f"{first}-1" in rt.started)
    second = submit(h, depends_on=[{"job": first}])
    h.until(sched, lambda: second in sched.waiting)
    h.svc.cancel(second)
    h.until(sched, lambda: second not in sched.jobs)
    assert scans == [] and second not in sched.waiting
    rt.end(f"{first}-1")
    h.until(sched, lambda: h.state(first) is JobState.SUCCEEDED)
    assert h.state(second) is JobState.CANCELLED and f"{second}-1" not in rt.started


def test_the_full_scan_still_runs_every_full_every_seconds(h: Harness) -> None:
    sched, _ = h.scheduler()
    scans = count_full_scans(sched)
    sched.tick()
    assert scans == []
    h.clock.advance(FULL_EVERY)
    sched.tick()
    assert scans == [h.clock()]


def test_a_read_after_a_burst_takes_every_change_in_batches(
    svc: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventfeed, "READ_BATCH", 2)
    feed = changes.ChangeFeed()
    with svc.engine.connect() as conn:
        feed.restart(conn, 0.0)
    ids = [v.id for v in svc.submit_many([JobSpec(command=["true"])] * 5)]
    svc.cancel(ids[0])
    with svc.engine.connect() as conn:
        read = feed.read(conn, 0.0)
        assert feed.read(conn, 0.0) == []  # the cursor moved past them
    assert {c.job_id: c.to_state for c in read} == {ids[0]: "cancelled"} | {i: "queued" for i in ids[1:]}
    assert [c.job_id for c in read][-1] == ids[0]  # in the order of each job's last change


def test_a_job_submitted_after_a_purge_of_every_event_is_read_from_the_feed(svc: JobService) -> None:
    """SQLite handed out max(id) + 1: once a purge deleted the newest events, new ones took ids the
    feed had read past (migration 0018: AUTOINCREMENT)."""
    old = [v.id for v in svc.submit_many([JobSpec(command=["true"])] * 10)]
    for job_id in old:
        svc.cancel(job_id)
    feed = changes.ChangeFeed()
    with svc.engine.connect() as conn:
        feed.restart(conn, 0.0)
    assert sorted(svc.purge(older_than=0)) == sorted(old)
    new = svc.submit(JobSpec(command=["true"])).id
    with svc.engine.connect() as conn:
        assert feed.read(conn, 1.0) == [changes.Change(new, "queued")]
