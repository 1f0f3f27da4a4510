"""kill -9 of the scheduler while 50 jobs run: restart, and every job ends exactly once, none lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from freight.config import Settings
from freight.db.schema import events
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.jobs.states import TERMINAL, JobState
from freight.runtime import records


def start_scheduler(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        FREIGHT_HOME=str(settings.home),
        FREIGHT_CGROUP_PARENT=settings.cgroup_parent,
        FREIGHT_CPUS="64",
        FREIGHT_MEMORY="8G",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "freight.cli.main", "up", "--port", "0"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_kill_9_scheduler_with_50_running_jobs(settings: Settings, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    log = tmp_path / "scheduler.log"
    svc = JobService.open(settings)
    first = start_scheduler(settings, log)
    try:
        wait_for(lambda: svc.scheduler_holder() is not None)
        specs = [
            JobSpec(
                name=f"j{i}",
                # each job appends its name once when it starts and once when it ends
                shell=f"echo start j{i} >> {ledger}; sleep {1 + i % 3}; echo end j{i} >> {ledger}",
                resources={"cpus": 0.05, "memory": "16M"},
            )
            for i in range(50)
        ]
        views = svc.submit_many(specs)
        ids = [v.id for v in views]
        wait_for(lambda: sum(1 for v in svc.list_jobs(state="running", limit=100)) >= 40)
        first.send_signal(signal.SIGKILL)
        first.wait()
        time.sleep(1.5)  # some jobs end while no scheduler runs: their exits must not be lost
        second = start_scheduler(settings, log)
        try:
            done = svc.wait(ids, timeout=60)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        assert [v.state for v in done] == [JobState.SUCCEEDED] * 50, log.read_text()[-3000:]
        assert all(v.attempts == 1 for v in done)
        lines = ledger.read_text().split("\n")
        for i in range(50):
            assert lines.count(f"start j{i}") == 1, f"j{i} ran more than once"
            assert lines.count(f"end j{i}") == 1
        terminal = {s.value for s in TERMINAL}
        with svc.engine.connect() as conn:
            rows = conn.execute(select(events.c.job_id, events.c.to_state)).all()
        for job_id in ids:
            ends = [r.to_state for r in rows if r.job_id == job_id and r.to_state in terminal]
            assert ends == ["succeeded"], (job_id, ends)
    finally:
        if first.poll() is None:
            first.kill()
        svc.close()


def test_restart_before_the_handle_reached_the_store_reattaches(settings: Settings, tmp_path: Path) -> None:
    """A crash between starting the shim and committing its handle: recovery finds the handle the
    scheduler wrote beside the shim's records, re-attaches, and the job runs once."""
    from dataclasses import replace

    from sqlalchemy import update

    from freight.db.schema import attempts, jobs

    ledger = tmp_path / "ledger"
    local = replace(settings, cpus=2.0, memory=4 << 30)
    svc = JobService.open(local)
    svc.start_scheduler(poll_interval=0.1)
    view = svc.submit(
        JobSpec(shell=f"sleep 1; echo ran >> {ledger}", resources={"cpus": 0.1, "memory": "16M"})
    )
    wait_for(lambda: svc.get(view.id).state is JobState.RUNNING)
    svc.stop_scheduler()
    # rewind the store to the moment after the claim commit, before the handle commit
    with svc.engine.begin() as conn:
        conn.execute(
            update(attempts).where(attempts.c.job_id == view.id).values(handle=None, state="starting")
        )
        conn.execute(update(jobs).where(jobs.c.id == view.id).values(state="starting"))
    svc.start_scheduler(poll_interval=0.1)
    try:
        done = svc.wait([view.id], timeout=30)[0]
    finally:
        svc.close()
    assert done.state is JobState.SUCCEEDED
    assert done.attempts == 1
    assert ledger.read_text() == "ran\n"


def test_a_standby_takes_over_when_the_scheduler_goes_away(store_settings: Settings) -> None:
    """Two servers on one store: one schedules, the other stands by and takes over when it stops."""
    from dataclasses import replace

    local = replace(store_settings, cpus=2.0, memory=4 << 30)
    leader, follower = JobService.open(local), JobService.open(local)
    try:
        assert leader.start_or_stand_by(poll_interval=0.1) is not None
        assert follower.start_or_stand_by(poll_interval=0.1, retry_every=0.1) is None
        first = follower.submit(JobSpec(command=["true"], resources={"cpus": 0.1, "memory": "16M"}))
        assert follower.wait([first.id], timeout=30)[0].state is JobState.SUCCEEDED  # run by the leader
        leader.stop_scheduler()
        wait_for(lambda: follower.scheduler is not None, timeout=10)
        second = follower.submit(JobSpec(command=["true"], resources={"cpus": 0.1, "memory": "16M"}))
        assert follower.wait([second.id], timeout=30)[0].state is JobState.SUCCEEDED
    finally:
        follower.close()
        leader.close()


def test_a_dependency_that_ended_while_no_scheduler_ran_releases_its_dependent(
    settings: Settings, tmp_path: Path
) -> None:
    """Recovery settles the dependency (its exit was recorded by its shim) and then queues the job
    waiting on it, instead of leaving that job waiting forever for an event that already passed."""
    from dataclasses import replace

    from freight.jobs.spec import Dependency

    gate = tmp_path / "gate"
    svc = JobService.open(replace(settings, cpus=2.0, memory=4 << 30))
    small = {"cpus": 0.1, "memory": "16M"}
    first = svc.submit(JobSpec(shell=f"while [ ! -e {gate} ]; do sleep 0.02; done", resources=small))
    then = svc.submit(
        JobSpec(
            command=["true"], resources=small, depends_on=[Dependency(job=first.id, condition="after_ok")]
        )
    )
    svc.start_scheduler(poll_interval=0.1)
    try:
        wait_for(lambda: svc.get(first.id).state is JobState.RUNNING)
        svc.stop_scheduler()
        gate.touch()
        # its shim records the exit meanwhile (the record, not just the process's end: it comes after)
        run_dir = svc.settings.run_dir
        wait_for(lambda: any(d.is_dir() and records.read_status(str(d)) for d in run_dir.iterdir()))
        restarted = time.time()
        svc.start_scheduler(poll_interval=0.1)
        done = svc.wait([first.id, then.id], timeout=30)
    finally:
        svc.close()
    assert [v.state for v in done] == [JobState.SUCCEEDED, JobState.SUCCEEDED]
    # it ended when its shim recorded the exit, not when the next scheduler read that record
    assert done[0].ended_at is not None and done[0].ended_at < restarted


def test_a_scheduler_that_loses_its_lease_stands_by_and_takes_it_back(store_settings: Settings) -> None:
    """Its lease taken while it ran (a stall longer than the lease, another scheduler stepping in):
    it stops, stands by, and schedules again once the lease is free; the thread never just dies."""
    from dataclasses import replace

    from sqlalchemy import update

    from freight.db.schema import leases
    from freight.jobs.scheduler import LEASE

    svc = JobService.open(replace(store_settings, cpus=2.0, memory=4 << 30))
    try:
        first = svc.start_or_stand_by(poll_interval=0.1, retry_every=0.1)
        assert first is not None
        with svc.engine.begin() as conn:  # another node's scheduler holds it now, for 1 s
            conn.execute(
                update(leases)
                .where(leases.c.name == LEASE)
                .values(holder="elsewhere:1:x", expires_at=time.time() + 1.0)
            )
        first._last_lease = 0.0  # renew at the next tick rather than in 5 s
        first.wake()
        wait_for(lambda: svc.scheduler is not first and svc.scheduler is not None, timeout=30)
        job = svc.submit(JobSpec(command=["true"], resources={"cpus": 0.1, "memory": "16M"}))
        assert svc.wait([job.id], timeout=30)[0].state is JobState.SUCCEEDED
    finally:
        svc.close()


def test_a_scheduler_whose_tick_fails_restarts_from_the_store(pg_url: str, settings: Settings) -> None:
    """A tick that raises (here: the jobs table is briefly gone) is logged, the scheduler is closed
    and a fresh one recovers from the store once it can; the job running meanwhile ends exactly once."""
    from dataclasses import replace

    import psycopg

    svc = JobService.open(replace(settings, database_url=pg_url, cpus=2.0, memory=4 << 30))
    try:
        first = svc.start_or_stand_by(poll_interval=0.1, retry_every=0.1)
        assert first is not None
        job = svc.submit(JobSpec(shell="sleep 1; echo done", resources={"cpus": 0.1, "memory": "16M"}))
        wait_for(lambda: svc.get(job.id).state is JobState.RUNNING, timeout=30)
        with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("ALTER TABLE jobs RENAME TO jobs_away")
            first.wake()
            wait_for(lambda: svc.scheduler is not first, timeout=30)  # the failed one is gone
            conn.execute("ALTER TABLE jobs_away RENAME TO jobs")
        wait_for(lambda: svc.scheduler is not None, timeout=30)  # and a fresh one took over
        done = svc.wait([job.id], timeout=30)[0]
        assert done.state is JobState.SUCCEEDED and done.attempts == 1
    finally:
        svc.close()
