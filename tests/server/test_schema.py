"""Schemathesis against /openapi.json on SQLite and on PostgreSQL: generated requests (valid and
invalid) for every operation, none answered 5xx, and responses that match the schema. 25 examples per
operation, the same ones every run, keep it quick and steady; `FREIGHT_FUZZ_EXAMPLES=200` explores new
ones (that is how the empty idempotency key, null units and out-of-range event ids were found). No
scheduler runs, so generated jobs are only stored, never executed."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import replace

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from freight.jobs.service import JobService
from freight.server import create_app
from freight.server.tokens import create_token
from tests.conftest import pg_database
from tests.server.conftest import _settings

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
TOKENS: dict[str, str] = {}
#: `make test` runs the same few examples every time; FREIGHT_FUZZ_EXAMPLES=200 explores afresh
DEEP = "FREIGHT_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("FREIGHT_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api_schema(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    settings_ = _settings(tmp_path_factory.mktemp("schema"))
    databases = None
    if request.param == "postgres":
        databases = pg_database()
        settings_ = replace(settings_, database_url=next(databases))
    service = JobService.open(settings_)
    app = create_app(service=service)
    # a name no generated request will guess, so a generated DELETE cannot revoke the test's own token
    _, TOKENS["admin"] = create_token(service.engine, f"schemathesis-{id(app)}", admin=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    service.close()
    if databases is not None:
        next(databases, None)


def _fuzz(operation: schemathesis.APIOperation, headers: dict[str, str]) -> None:
    # routers of workloads (the git hook) document less; hold them to "no 5xx" only
    chosen = CHECKS if not operation.path.startswith("/api/v1/hooks/") else CHECKS[:1]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        derandomize=not DEEP,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        if case.query and "follow" in case.query:
            case.query["follow"] = False  # a followed stream of a job that never runs never ends
        case.call_and_validate(headers=headers, checks=chosen)

    check()


def test_no_request_is_answered_with_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    headers = {"Authorization": f"Bearer {TOKENS['admin']}"}
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        try:
            _fuzz(operation, headers)
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
