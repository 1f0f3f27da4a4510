"""The loop reads an attempt's exit only when its pidfd fires: a tick with many running jobs costs
nothing per job that still runs. Real runtime and store; no timed assertions."""

from __future__ import annotations

from collections.abc import Callable

from freight.config import Settings
from freight.jobs.scheduler import Scheduler
from freight.jobs.service import JobService
from freight.jobs.states import JobState
from freight.runtime.base import Handle, Outcome
from freight.runtime.factory import create_job_runtime


def until(sched: Scheduler, done: Callable[[], bool], ticks: int = 2000) -> None:
    for _ in range(ticks):
        if done():
            return
        sched.wake()
        sched.tick()
    raise AssertionError("condition not reached")


def test_a_running_attempt_is_not_polled_until_its_pidfd_fires(settings: Settings) -> None:
    with JobService.open(settings) as svc:
        runtime = create_job_runtime(settings)
        sched = Scheduler(svc.engine, runtime, settings, poll_interval=0.01)
        sched.start()
        polled: list[str] = []
        poll = runtime.poll

        def counting(handle: Handle) -> Outcome | None:
            polled.append(handle.attempt_id)
            return poll(handle)

        runtime.poll = counting  # type: ignore[method-assign]
        try:
            job = svc.submit({"command": ["sleep", "60"], "resources": {"cpus": 0.1, "memory": "32M"}}).id
            until(sched, lambda: job in sched.running and sched.running[job].fd is not None)
            polled.clear()
            for _ in range(5):
                sched.wake()
                sched.tick()
            assert polled == []  # it runs: nothing read for it
            svc.cancel(job)
            until(sched, lambda: svc.get(job).state is JobState.CANCELLED)
            assert polled == [f"{job}-1"]  # read once, when its shim exited
        finally:
            sched.stop()
            sched.close()
            runtime.destroy()
