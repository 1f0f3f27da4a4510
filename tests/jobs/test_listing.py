"""The quick listing (jobs/listing.py) reads what JobService.list_jobs reads, without SQLAlchemy, and
hands every case that needs one of the service's rules back to it."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from dataclasses import replace

import pytest
from rich.console import Console

from freight.cli.output import jobs_table
from freight.config import Settings
from freight.db import schema
from freight.db.revisions import sqlite_file
from freight.jobs.listing import COLUMNS, ListedJob, quick_list
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec


@pytest.fixture
def svc(settings: Settings) -> Iterator[JobService]:
    service = JobService.open(replace(settings, cpus=2.0, memory=4 << 30))
    yield service
    service.close()


def finished(svc: JobService) -> None:
    """Five jobs that ended, in two queues, one failed."""
    with svc.running():
        ids = [
            svc.submit(JobSpec(command=[cmd], queue=queue, name=name)).id
            for cmd, queue, name in [
                ("true", "a", "one"),
                ("false", "a", None),
                ("true", "b", "three"),
                ("true", "a", None),
                ("true", "b", "five"),
            ]
        ]
        assert all(view.terminal for view in svc.wait(ids, timeout=60))


def rendered(views: list[ListedJob] | list[object]) -> str:
    out = io.StringIO()
    Console(file=out, width=200).print(jobs_table(views))  # type: ignore[arg-type]
    return out.getvalue()


def test_the_columns_are_the_schemas() -> None:
    assert set(COLUMNS) <= set(schema.jobs.c.keys())
    assert {"name", "paused"} <= set(schema.queues.c.keys())  # the reasons queued jobs wait
    assert {"name", "holder", "expires_at"} <= set(schema.leases.c.keys())


@pytest.mark.parametrize(
    "filters",
    [{}, {"state": "failed"}, {"queue": "a"}, {"queue": "b", "state": "succeeded"}, {"limit": 2}],
    ids=str,
)
def test_the_same_jobs_and_the_same_table_as_the_service(svc: JobService, filters: dict[str, object]) -> None:
    finished(svc)
    views = svc.list_jobs(**filters)  # type: ignore[arg-type]
    listed = quick_list(svc.settings.database_url, **filters)  # type: ignore[arg-type]
    assert listed is not None and views
    assert [(j.id, j.name, j.queue, j.state, j.attempts, j.reason) for j in listed] == [
        (v.id, v.name, v.queue, v.state, v.attempts, v.reason) for v in views
    ]
    assert [(j.submitted_at, j.started_at, j.ended_at) for j in listed] == [
        (v.submitted_at, v.started_at, v.ended_at) for v in views
    ]
    assert rendered(listed) == rendered(views)  # type: ignore[arg-type]


def test_a_page_after_a_cursor(svc: JobService) -> None:
    finished(svc)
    first = svc.list_jobs(limit=2)
    listed = quick_list(svc.settings.database_url, limit=2, cursor=first[-1].id)
    assert listed is not None
    assert [j.id for j in listed] == [v.id for v in svc.list_jobs(limit=2, cursor=first[-1].id)]


def same_reasons(svc: JobService) -> list[str | None]:
    views = svc.list_jobs()
    listed = quick_list(svc.settings.database_url)
    assert listed is not None
    assert [(j.id, j.state, j.reason) for j in listed] == [(v.id, v.state, v.reason) for v in views]
    assert rendered(listed) == rendered(views)  # type: ignore[arg-type]
    return [j.reason for j in listed]


def test_queued_jobs_wait_for_the_same_reasons_the_service_gives(svc: JobService) -> None:
    finished(svc)
    svc.submit(JobSpec(command=["true"]))
    svc.set_queue("held", paused=True)
    svc.submit(JobSpec(command=["true"], queue="held"))
    reasons = same_reasons(svc)  # no scheduler runs: said for both; the paused queue first
    assert reasons[0] is not None and reasons[0].startswith("queue held is paused")
    assert reasons[1] is not None and reasons[1].startswith("no scheduler is running")
    with svc.running():  # a live lease: only the paused queue is said
        svc.wait([svc.list_jobs()[1].id], timeout=60)
        reasons = same_reasons(svc)
        assert reasons[0] is not None and reasons[0].startswith("queue held is paused")
        assert not (reasons[1] or "").startswith("no scheduler")


def test_what_it_does_not_read(settings: Settings) -> None:
    assert quick_list(settings.database_url) is None  # no store yet: the service makes it
    svc = JobService.open(settings)
    svc.close()
    assert quick_list(settings.database_url) == []
    assert quick_list(settings.database_url, state="nope") is None  # the service names the states
    assert quick_list("postgresql://postgres@127.0.0.1/x") is None
    assert sqlite_file("sqlite:///:memory:") is None
    path = sqlite_file(settings.database_url)
    assert path is not None
    with sqlite3.connect(path) as db:  # a store a migration behind
        db.execute("UPDATE alembic_version SET version_num = 'older'")
    assert quick_list(settings.database_url) is None
