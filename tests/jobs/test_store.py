"""The group-commit batch: compare-and-set transitions and their events."""

from __future__ import annotations

import time

from sqlalchemy import select

from freight.config import Settings
from freight.db.schema import events, jobs
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.jobs.states import JobState
from freight.jobs.store import Batch, apply_batch, load_jobs


def test_two_moves_in_one_batch_write_both_events_and_the_final_state(store_settings: Settings) -> None:
    with JobService.open(store_settings) as svc:
        job_id = svc.submit({"command": ["true"]}).id
        with svc.engine.begin() as conn:
            job = load_jobs(conn, [job_id])[0]
            batch = Batch()
            now = time.time()
            batch.move(job, JobState.STARTING, now)
            batch.move(job, JobState.RUNNING, now)
            batch.move(job, JobState.SUCCEEDED, now)
            assert apply_batch(conn, batch, now) == set()
            rows = conn.execute(select(events.c.from_state, events.c.to_state).order_by(events.c.id)).all()
            state = conn.execute(select(jobs.c.state)).scalar_one()
        assert [(r.from_state, r.to_state) for r in rows] == [
            (None, "queued"),
            ("queued", "starting"),
            ("starting", "running"),
            ("running", "succeeded"),
        ]
        assert state == "succeeded"


def test_a_lost_compare_and_set_is_reported_and_writes_no_event(store_settings: Settings) -> None:
    with JobService.open(store_settings) as svc:
        job_id = svc.submit({"command": ["true"]}).id
        with svc.engine.begin() as conn:
            job = load_jobs(conn, [job_id])[0]
        svc.cancel(job_id)  # another writer gets there first
        with svc.engine.begin() as conn:
            batch = Batch()
            batch.move(job, JobState.STARTING, time.time())
            assert apply_batch(conn, batch, time.time()) == {job_id}
            states = [r.to_state for r in conn.execute(select(events.c.to_state).order_by(events.c.id))]
        assert states == ["queued", "cancelled"]
        assert svc.get(job_id).state is JobState.CANCELLED


def test_jobs_stored_with_one_spec_share_one_parsed_spec(settings: Settings) -> None:
    with JobService.open(settings) as svc:
        same = svc.submit_many([JobSpec(command=["true"])] * 3)
        other = svc.submit({"command": ["false"]}).id
        with svc.engine.connect() as conn:
            loaded = load_jobs(conn, [v.id for v in same] + [other])
    assert loaded[0].spec is loaded[1].spec is loaded[2].spec  # parsed once, not once per job
    assert loaded[3].spec is not loaded[0].spec and loaded[3].spec.argv() == ["false"]
