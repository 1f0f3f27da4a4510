"""Submission, validation, idempotency, definitions and queues on the real stores (no scheduler)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from freight.config import Settings
from freight.db.schema import events, jobs
from freight.errors import ConflictError, NotFoundError, UserError
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec


@pytest.fixture
def svc(store_settings: Settings):
    service = JobService.open(store_settings)
    yield service
    service.close()


def count_jobs(svc: JobService) -> int:
    with svc.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(jobs)).scalar_one())


def test_submit_stores_job_and_event(svc: JobService) -> None:
    view = svc.submit(
        {"command": ["echo", "hi"], "resources": {"memory": "64M", "cpus": "0.5"}, "timeout": "1m"}
    )
    assert view.state.value == "queued"
    got = svc.get(view.id)
    assert got.spec.resources.memory == 64 * 1024**2
    assert got.spec.resources.cpus == 0.5
    assert got.spec.timeout == 60
    with svc.engine.connect() as conn:
        rows = conn.execute(select(events.c.to_state).where(events.c.job_id == view.id)).all()
    assert [r.to_state for r in rows] == ["queued"]


@pytest.mark.parametrize(
    ("payload", "where", "message"),
    [
        ({"command": ["x"], "resources": {"memory": "lots"}}, "spec: resources.memory", "is not a size"),
        ({"command": ["x"], "resources": {"cpus": 0}}, "spec: resources.cpus", "cpus must be more than 0"),
        ({"command": ["x"], "timeout": "soon"}, "spec: timeout", "is not a duration"),
        ({"shell": "true", "command": ["x"]}, "spec: (root)", "exactly one of"),
        ({"command": ["x"], "colour": "red"}, "spec: colour", "unknown field"),
        ({"command": ["x"], "queue": "a b"}, "spec: queue", "queue name 'a b' must be letters"),
        (
            {"command": ["x"], "retry": {"retry_on": ["oom", "sometimes"]}},
            "spec: retry.retry_on",
            "'sometimes' is not an outcome; use oom, timeout, lost, failed or exit codes",
        ),
        (
            {"command": ["x"], "retry": {"max_attempts": 0}},
            "spec: retry.max_attempts",
            "greater than or equal",
        ),
    ],
)
def test_malformed_specs_rejected_with_one_clear_message_and_nothing_stored(
    svc: JobService, payload: dict, where: str, message: str
) -> None:
    with pytest.raises(UserError) as err:
        svc.submit(payload)
    assert err.value.where == where
    assert message in err.value.message
    assert count_jobs(svc) == 0


def test_unknown_dependency_rejected(svc: JobService) -> None:
    with pytest.raises(NotFoundError) as err:
        svc.submit({"command": ["true"], "depends_on": [{"job": "nope"}]})
    assert err.value.where == "depends_on.0.job"
    assert count_jobs(svc) == 0


def test_idempotency_key_returns_the_same_job(svc: JobService) -> None:
    first = svc.submit({"command": ["true"], "idempotency_key": "nightly-2026-11-26"})
    again = svc.submit({"command": ["true"], "idempotency_key": "nightly-2026-11-26"})
    assert again.id == first.id
    assert count_jobs(svc) == 1
    with pytest.raises(ConflictError):
        svc.submit({"command": ["false"], "idempotency_key": "nightly-2026-11-26"})


def test_idempotency_within_one_batch(svc: JobService) -> None:
    spec = JobSpec(command=["true"], idempotency_key="k1")
    views = svc.submit_many([spec, spec])
    assert views[0].id == views[1].id
    assert count_jobs(svc) == 1


def test_definitions_are_versioned_templates_with_overrides(svc: JobService) -> None:
    v1 = svc.register_definition("report", {"command": ["echo", "v1"], "resources": {"memory": "128M"}})
    v2 = svc.register_definition("report", {"command": ["echo", "v2"], "resources": {"memory": "256M"}})
    assert (v1, v2) == (1, 2)
    latest = svc.submit({"resources": {"cpus": 2}}, definition="report")
    assert latest.definition == "report:2"
    assert latest.spec.command == ["echo", "v2"]
    assert latest.spec.resources.memory == 256 * 1024**2 and latest.spec.resources.cpus == 2
    pinned = svc.submit({}, definition="report:1")
    assert pinned.spec.command == ["echo", "v1"]
    with pytest.raises(NotFoundError):
        svc.submit({}, definition="nope")
    with pytest.raises(UserError):
        svc.register_definition("bad", {"command": []})


def test_cancel_queued_job_and_retry_it(svc: JobService) -> None:
    view = svc.submit({"command": ["true"]})
    cancelled = svc.cancel(view.id)
    assert cancelled.state.value == "cancelled"
    with pytest.raises(ConflictError):
        svc.cancel(view.id)
    again = svc.retry(view.id)
    assert again.state.value == "queued"


def test_queues_created_on_submit_and_configurable(svc: JobService) -> None:
    svc.submit({"command": ["true"], "queue": "etl"})
    row = svc.set_queue("etl", weight=3, priority=5, paused=True)
    assert (row["weight"], row["priority"], row["paused"]) == (3, 5, True)
    assert row["jobs"] == {"queued": 1}
    with pytest.raises(UserError):
        svc.set_queue("etl", weight=0)


def test_list_filters_and_cursor_pagination(svc: JobService) -> None:
    ids = [svc.submit({"command": ["true"], "labels": {"team": "a" if i % 2 else "b"}}).id for i in range(7)]
    page1 = svc.list_jobs(limit=3)
    page2 = svc.list_jobs(limit=3, cursor=page1[-1].id)
    page3 = svc.list_jobs(limit=3, cursor=page2[-1].id)
    assert [v.id for v in page1 + page2 + page3] == list(reversed(ids))
    assert len(svc.list_jobs(label={"team": "a"})) == 3
    with pytest.raises(UserError):
        svc.list_jobs(state="sleeping")


def test_purge_deletes_old_finished_jobs_with_their_rows_and_logs(svc: JobService) -> None:
    import time

    from sqlalchemy import update

    old = svc.submit({"command": ["true"]})
    svc.cancel(old.id)
    fresh = svc.submit({"command": ["true"]})
    svc.cancel(fresh.id)
    waiting = svc.submit({"command": ["true"]})
    log = svc.settings.log_path(old.id, 1)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("old output\n")
    with svc.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == old.id).values(ended_at=time.time() - 90 * 86400))
        from freight.db.schema import attempts

        conn.execute(
            attempts.insert().values(
                id=f"{old.id}-1",
                job_id=old.id,
                number=1,
                state="cancelled",
                cpus=1,
                memory=1,
                log_path=str(log),
            )
        )
    assert svc.purge(older_than=30 * 86400, dry_run=True) == [old.id]
    assert svc.get(old.id).id == old.id
    assert svc.purge(older_than=30 * 86400) == [old.id]
    with pytest.raises(NotFoundError):
        svc.get(old.id)
    assert not log.exists()
    with svc.engine.connect() as conn:
        assert conn.execute(select(events).where(events.c.job_id == old.id)).all() == []
    assert {svc.get(fresh.id).id, svc.get(waiting.id).id} == {fresh.id, waiting.id}


def test_a_unique_id_prefix_names_a_job_an_ambiguous_one_says_so(svc: JobService) -> None:
    a, b = svc.submit_many([JobSpec(command=["true"]), JobSpec(command=["true"], queue="other")])
    common = next(i for i in range(len(a.id)) if a.id[i] != b.id[i])  # they share a.id[:common]
    assert svc.get(a.id[: common + 1]).id == a.id
    assert [e["job_id"] for e in svc.events(b.id[: common + 1])] == [b.id]
    assert svc.cancel(a.id[: common + 1]).id == a.id
    with pytest.raises(UserError, match=r"prefix .* matches several jobs .*give more of the id") as err:
        svc.get(a.id[:common])
    assert not isinstance(err.value, NotFoundError)
    # a caller limited to one queue sees only its own job under the shared prefix
    assert svc.resolve_id(a.id[:common], queues={"other"}) == b.id
    for text in ("nope", a.id + "0", "%", ""):
        with pytest.raises(NotFoundError, match="no job"):
            svc.get(text)


def test_reads_of_what_does_not_exist_are_errors_not_silence(svc: JobService) -> None:
    view = svc.submit(JobSpec(command=["true"]))
    with pytest.raises(NotFoundError, match="no job 'nope'"):
        svc.events("nope")
    for number in (0, -1, 2):
        with pytest.raises(NotFoundError, match=f"has no attempt {number} \\(it has 0\\)"):
            list(svc.logs(view.id, attempt=number))
    for limit in (0, -1):
        with pytest.raises(UserError, match="limit must be 1 or more"):
            svc.list_jobs(limit=limit)


def test_a_waiting_job_says_why_when_no_scheduler_can(svc: JobService) -> None:
    view = svc.submit(JobSpec(command=["true"], queue="etl"))
    assert svc.get(view.id).reason == "no scheduler is running (start one with `freight up`)"
    svc.set_queue("etl", paused=True)
    said = "queue etl is paused (resume it: `freight queues set etl --resume`)"
    assert svc.get(view.id).reason == said
    assert [v.reason for v in svc.list_jobs()] == [said]


def test_a_home_that_cannot_be_made_is_one_error(settings: Settings) -> None:
    from dataclasses import replace
    from pathlib import Path

    with pytest.raises(UserError, match=r"^FREIGHT_HOME: cannot create /proc/nope/home: .*write"):
        JobService.open(replace(settings, home=Path("/proc/nope/home")))


def test_wait_reads_the_events_in_ordered_limited_batches(
    svc: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unlimited, the events read of wait() let PostgreSQL scan the table when its statistics were
    stale (after a bulk submit); each read is ordered by id and limited, as the change feed's are."""
    from sqlalchemy import event

    from freight.jobs import eventfeed, service

    monkeypatch.setattr(eventfeed, "READ_BATCH", 2)
    ids = [v.id for v in svc.submit_many([JobSpec(command=["true"])] * 5)]
    with svc.engine.connect() as conn:
        before = int(conn.execute(select(func.max(events.c.id))).scalar_one())
    for job_id in ids[:4]:
        svc.cancel(job_id)
    with svc.engine.connect() as conn:
        follower = eventfeed.EventFollower()  # what wait() follows the events with
        follower.start(conn, 0.0, before)
        # 4 events: two full batches, then an empty one
        found = follower.read(
            conn,
            0.0,
            [events.c.id, events.c.job_id, events.c.to_state],
            match=events.c.to_state.in_(service._WAIT_STATES),
        )
    assert [r.job_id for r in found] == ids[:4]
    assert [r.to_state for r in found] == ["cancelled"] * 4
    assert [r.id for r in found] == sorted(r.id for r in found)

    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM events" in statement and "events.id >" in statement:
            statements.append(statement)

    event.listen(svc.engine, "before_cursor_execute", record)
    try:
        (view,) = svc.wait([ids[4]], timeout=0.5)  # still queued: it reads the events, then gives up
    finally:
        event.remove(svc.engine, "before_cursor_execute", record)
    assert view.state.value == "queued"
    assert statements and all("ORDER BY" in s and "LIMIT" in s for s in statements)
