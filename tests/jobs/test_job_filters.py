"""Listing jobs through the service: label filters through job_labels, keyset pages, and query plans
from an index in id order (no sort of every matching job), so a page costs the same at 100k jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select

from freight.config import Settings
from freight.db import engine as db_engine
from freight.db.schema import job_labels
from freight.errors import UserError
from freight.jobs.service import JobService
from freight.jobs.spec import parse_spec


@pytest.fixture
def service(store_settings: Settings) -> Iterator[JobService]:
    with JobService.open(store_settings) as svc:
        yield svc


def submit(svc: JobService, **extra: object) -> str:
    return svc.submit({"command": ["/bin/true"], "queue": "listing", **extra}).id


def test_label_filters_and_keyset_pages(service: JobService) -> None:
    tagged = [submit(service, labels={"run": "r1", "part": str(i % 2)}) for i in range(7)]
    submit(service, labels={"run": "r2", "part": "0"})
    submit(service)
    newest_first = tagged[::-1]
    assert [v.id for v in service.list_jobs(label={"run": "r1"})] == newest_first
    both = [v.id for v in service.list_jobs(label={"run": "r1", "part": "0"})]
    assert both == [j for j in newest_first if tagged.index(j) % 2 == 0]
    pages: list[str] = []
    cursor = None
    while True:
        page = service.list_jobs(label={"run": "r1"}, limit=3, cursor=cursor)
        pages += [v.id for v in page]
        if len(page) < 3:
            break
        cursor = page[-1].id
    assert pages == newest_first
    assert service.list_jobs(label={"run": "r1"}, state="running") == []
    assert [v.id for v in service.list_jobs(label={"run": "r1"}, queue="listing", limit=2)] == newest_first[
        :2
    ]


def test_purged_jobs_take_their_labels_with_them(service: JobService) -> None:
    job = submit(service, labels={"gone": "soon"})
    service.cancel(job)
    assert service.purge(older_than=0) == [job]
    with service.engine.connect() as conn:
        assert conn.execute(select(job_labels).where(job_labels.c.job_id == job)).all() == []
    assert service.list_jobs(label={"gone": "soon"}) == []


@pytest.mark.parametrize(
    "labels, message",
    [({"k" * 129: "v"}, "1 to 128"), ({"": "v"}, "1 to 128"), ({"k": "v" * 501}, "at most 500")],
)
def test_labels_too_long_to_index_are_refused_at_the_spec(labels: dict[str, str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_spec({"command": ["/bin/true"], "labels": labels})


def test_migration_0017_copies_existing_labels(store_settings: Settings) -> None:
    engine = db_engine.open_engine(store_settings.database_url)
    svc = JobService(store_settings, engine)
    try:
        job = submit(svc, labels={"team": "data", "env": "prod"})
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(db_engine.__file__).parent / "migrations"))
        cfg.attributes["engine"] = engine
        command.downgrade(cfg, "0016")
        command.upgrade(cfg, "head")
        assert [v.id for v in svc.list_jobs(label={"team": "data", "env": "prod"})] == [job]
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "filters, index",
    [
        ({"state": "queued"}, "ix_jobs_state_id"),
        ({"queue": "q"}, "ix_jobs_queue_id"),
        ({"queue": "q", "state": "queued"}, "ix_jobs_queue_state_id"),
        ({"label": {"run": "x"}}, "ix_job_labels_key_value_job"),
    ],
)
def test_sqlite_reads_a_page_in_index_order(
    settings: Settings, filters: dict[str, object], index: str
) -> None:
    """The plan names the index and sorts nothing: no `USE TEMP B-TREE FOR ORDER BY`."""
    with JobService.open(settings) as svc:
        captured: list[str] = []
        from sqlalchemy import event

        def grab(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
            if statement.lstrip().upper().startswith("SELECT JOBS.ID"):
                captured.append(statement)
                plan_params[0] = params

        plan_params: list[object] = [None]
        event.listen(svc.engine, "before_cursor_execute", grab)
        svc.list_jobs(cursor="zzzz", **filters)  # type: ignore[arg-type]
        event.remove(svc.engine, "before_cursor_execute", grab)
        assert captured, "the listing query was not seen"
        with svc.engine.connect() as conn:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + captured[0], plan_params[0]).all()  # type: ignore[arg-type]
        text = " | ".join(str(row[-1]) for row in plan)
        assert index in text and "TEMP B-TREE" not in text, text
