"""SubmitCoalescer and JobService.submit_groups: concurrent submits share one transaction, each
submission stays all or nothing, and a refused one leaves nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from freight.config import Settings
from freight.errors import ConflictError, NotFoundError
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec, parse_spec
from freight.server.coalescer import SubmitCoalescer


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
