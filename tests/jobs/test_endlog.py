"""The scheduler's EndLog: what a waiter in the same process reads instead of the events table."""

from __future__ import annotations

from freight.jobs.scheduler.endlog import EndLog


def test_a_waiter_takes_the_jobs_ended_after_the_count_it_saw() -> None:
    log = EndLog()
    assert log.since(0) == (0, [])
    log.record(["a"])
    log.record([])  # a commit that only queued jobs again: counted, nothing ended
    seen = log.record(["b", "c"])
    assert seen == 3
    log.record(["d"])
    assert log.since(0) == (4, ["d", "b", "c", "a"])
    assert log.since(seen) == (4, ["d"])
    assert log.since(4) == (4, [])


def test_a_waiter_behind_the_window_is_told_to_read_the_store() -> None:
    log = EndLog(kept=2)
    for job in "abc":
        log.record([job])
    assert log.since(0) == (3, None)  # "a"'s commit left the window
    assert log.since(1) == (3, ["c", "b"])
