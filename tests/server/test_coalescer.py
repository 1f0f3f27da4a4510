"""SubmitCoalescer and JobService.submit_groups: concurrent submits share one transaction, each
submission stays all or nothing, and a refused one leaves nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from freight.config import Settings
from freight.errors import ConflictError, NotFoundError, TransientError
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec, parse_spec
from freight.server import create_app
from freight.server.coalescer import SubmitCoalescer
from freight.server.tokens import create_token
from tests.server.conftest import Api, TestClient, _settings


@pytest.fixture
def service(store_settings: Settings) -> Iterator[JobService]:
    with JobService.open(store_settings) as svc:
        yield svc


def spec(**extra: object) -> JobSpec:
    return parse_spec({"command": ["/bin/true"], "queue": "coalesce", **extra})


def test_concurrent_submits_are_committed_together(service: JobService) -> None:
    coalescer = SubmitCoalescer(service)

    async def main() -> list[str]:
        # gather starts all twenty before the first flush runs (asyncio runs tasks in order), so
        # they all wait in one batch: one transaction
        results = await asyncio.gather(*(coalescer.submit([(spec(name=f"j{i}"), None)]) for i in range(20)))
        return [views[0].id for views in results]

    ids = asyncio.run(main())
    coalescer.close()
    assert coalescer.commits == 1 and coalescer.groups == 20
    stored = service.get_many(ids)
    assert [v.name for v in stored] == [f"j{i}" for i in range(20)]


def test_a_refused_submission_fails_alone_and_writes_nothing(service: JobService) -> None:
    before = len(service.list_jobs(queue="coalesce", limit=1000))
    good = [(spec(name="good"), None)]
    # the second job depends on a job that does not exist: its whole group is refused
    bad = [(spec(name="bad-1"), None), (spec(name="bad-2", depends_on=[{"job": "nope"}]), None)]
    results = service.submit_groups([good, bad, [(spec(name="also-good"), None)]])
    assert isinstance(results[1], NotFoundError) and "nope" in str(results[1])
    assert not isinstance(results[0], Exception) and not isinstance(results[2], Exception)
    names = {v.name for v in service.list_jobs(queue="coalesce", limit=1000)}
    assert {"good", "also-good"} <= names and not {"bad-1", "bad-2"} & names
    assert len(names) == before + 2


def test_one_idempotency_key_in_two_submissions_of_one_commit_is_one_job(service: JobService) -> None:
    first, second, clash = service.submit_groups(
        [
            [(spec(idempotency_key="k1"), None)],
            [(spec(idempotency_key="k1"), None)],
            [(spec(idempotency_key="k1", name="other"), None)],
        ]
    )
    assert not isinstance(first, Exception) and not isinstance(second, Exception)
    assert first[0].id == second[0].id
    assert isinstance(clash, ConflictError)


def test_errors_reach_their_own_waiter(service: JobService) -> None:
    coalescer = SubmitCoalescer(service)

    async def main() -> tuple[object, object]:
        results = await asyncio.gather(
            coalescer.submit([(spec(depends_on=[{"job": "missing"}]), None)]),
            coalescer.submit([(spec(name="fine"), None)]),
            return_exceptions=True,
        )
        return results[0], results[1]

    bad, good = asyncio.run(main())
    coalescer.close()
    assert isinstance(bad, NotFoundError)
    assert isinstance(good, list) and good[0].name == "fine"


def refuse_in_store(service: JobService, name: str) -> None:
    """The store itself refuses any job named `name` (a trigger raising a constraint error, on
    either store): the failure a later group meets when it is retried alone after a conflict."""
    with service.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse BEFORE INSERT ON jobs WHEN NEW.name = '{name}' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.name = '{name}' THEN RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION refuse()"
            )


def clashing(service: JobService) -> list[list[tuple[JobSpec, str | None]]]:
    """Three submissions: the batch fails on the store's refusal of the third (an IntegrityError,
    as a race on an idempotency key gives), so each group is retried alone and the third fails again."""
    refuse_in_store(service, "third")
    return [[(spec(name="first"), None)], [(spec(name="second"), None)], [(spec(name="third"), None)]]


def test_a_store_failure_after_a_conflict_answers_only_its_own_group(service: JobService) -> None:
    first, second, third = service.submit_groups(clashing(service))
    assert isinstance(first, list) and isinstance(second, list)
    assert isinstance(third, TransientError)
    assert [v.name for v in service.get_many([first[0].id, second[0].id])] == ["first", "second"]


def test_the_coalescers_waiters_hear_their_committed_jobs_not_a_later_groups_failure(
    service: JobService,
) -> None:
    coalescer = SubmitCoalescer(service)

    async def main() -> list[object]:
        return await asyncio.gather(*(coalescer.submit(g) for g in clashing(service)), return_exceptions=True)

    first, second, third = asyncio.run(main())
    coalescer.close()
    assert coalescer.commits == 1
    assert isinstance(first, list) and first[0].name == "first"
    assert isinstance(second, list) and second[0].name == "second"
    assert isinstance(third, TransientError)


def test_images_are_pinned_before_the_group_commit(tmp_path: Path) -> None:
    """Pinning asks podman or the registry: it happens before the submission reaches the commit
    thread (which holds the write lock), so an image that resolves to nothing never gets there."""
    settings = _settings(tmp_path / "home", "pin")
    with JobService.open(settings) as service, TestClient(create_app(service=service)) as client:
        _, admin = create_token(service.engine, "admin", admin=True)
        api = Api(client, service, admin)
        coalescer = client.app.state.freight.submits  # type: ignore[attr-defined]
        refused = api.post("/api/v1/jobs", {"command": ["true"], "image": "no-such-image"})
        assert refused.status_code == 400 and "no-such-image not found" in refused.json()["message"]
        batch = api.post("/api/v1/jobs/batch", {"jobs": [{"command": ["true"], "image": "no-such-image"}]})
        assert batch.status_code == 400
        assert coalescer.commits == 0
        assert api.post("/api/v1/jobs", {"command": ["true"]}).status_code == 201
        assert coalescer.commits == 1


def test_a_transient_error_answers_503_with_retry_after() -> None:
    from fastapi import FastAPI

    from freight.server.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/flaky")
    def flaky() -> None:
        raise TransientError("the store failed this submission")

    with TestClient(app) as client:
        answer = client.get("/flaky")
    assert answer.status_code == 503 and answer.headers["Retry-After"].isdigit()
    assert answer.json()["message"] == "the store failed this submission"
