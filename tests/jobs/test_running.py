"""JobService.running(): the scheduler a command borrows may go away before the command is done."""

from __future__ import annotations

from dataclasses import replace

from freight.config import Settings
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.jobs.states import JobState

SMALL = {"cpus": 0.2, "memory": "32M"}


def test_a_borrowed_scheduler_that_goes_away_is_taken_over(settings: Settings) -> None:
    """Two `freight build`s on one FREIGHT_HOME: the second borrowed the first one's scheduler; when
    the first ended, the second's jobs stayed queued for ever (nobody scheduled the store)."""
    settings = replace(settings, cpus=2.0, memory=4 << 30)
    first, second = JobService.open(settings), JobService.open(settings)
    try:
        with first.running() as own:
            assert own is not None
            with second.running(take_over_every=0.05) as borrowed:
                assert borrowed is None and second.scheduler is None
                first.stop_scheduler()  # the first command is done
                job = second.submit(JobSpec(command=["true"], resources=SMALL))  # type: ignore[arg-type]
                assert second.wait([job.id], timeout=60)[0].state is JobState.SUCCEEDED
                assert second.scheduler is not None
            assert second.scheduler is None and second.scheduler_holder() is None
    finally:
        first.close()
        second.close()


def test_running_starts_and_stops_its_own_scheduler(settings: Settings) -> None:
    with JobService.open(settings) as svc:
        with svc.running() as scheduler:
            assert scheduler is not None and svc.scheduler_holder() is not None
        assert svc.scheduler is None and svc.scheduler_holder() is None
