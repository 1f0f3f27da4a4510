"""The standing fault suite, API side (SQLite; tests/server/test_schema.py covers PostgreSQL with
valid-shaped requests): schemathesis sends invalid requests (negative mode) to every operation, and
Hypothesis sends job specs whose text holds lone surrogates and other odd characters. Every answer is
JSON below 500, never a traceback, and a refused request changes nothing in the store. The examples are
derandomized, so a run is the same every time and bounded (about 400 cases)."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sqlalchemy import func, select

from freight.db.schema import definitions, events, jobs, queues, tokens
from freight.jobs.service import JobService
from freight.server import create_app
from freight.server.tokens import create_token
from tests.server.conftest import _settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

DEEP = "FREIGHT_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("FREIGHT_FUZZ_EXAMPLES", "5"))
TABLES = (jobs, definitions, queues, tokens, events)


@dataclass
class Tally:
    cases: int = 0
    refused: int = 0
    accepted: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class Target:
    service: JobService
    client: TestClient
    schema: Any
    headers: dict[str, str]

    def state(self) -> tuple[int, ...]:
        with self.service.engine.connect() as conn:
            return tuple(int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in TABLES)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    service = JobService.open(_settings(tmp_path_factory.mktemp("faults")))
    app = create_app(service=service)
    # a name no generated request will guess, so a generated DELETE cannot revoke the suite's token
    _, admin = create_token(service.engine, f"fault-suite-{id(app)}", admin=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    with TestClient(app) as client:
        yield Target(service, client, schema, {"Authorization": f"Bearer {admin}"})
    service.close()


def _judge(
    tally: Tally, label: str, status: int, text: str, before: tuple[int, ...], after: tuple[int, ...]
) -> None:
    tally.cases += 1
    if status >= 500 or "Traceback" in text:
        tally.problems.append(f"{label}: {status} {text[:200]}")
    elif status >= 400:
        tally.refused += 1
        if after != before:
            tally.problems.append(f"{label}: refused ({status}) but the store changed {before} -> {after}")
    else:
        tally.accepted += 1


def test_invalid_requests_to_every_operation_are_4xx_and_change_nothing(target: Target) -> None:
    tally = Tally()
    operations = [result.ok() for result in target.schema.get_all_operations()]
    assert len(operations) >= 30

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
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
            before = target.state()
            response = case.call(headers=target.headers)
            label = f"{case.method} {case.formatted_path}"
            _judge(tally, label, response.status_code, response.text, before, target.state())

        try:
            check()
        except Unsatisfiable:  # nothing in the operation can be made invalid (no parameters, no body)
            continue
    print(f"negative API fuzz: {tally.cases} cases, {tally.refused} refused, {tally.accepted} accepted")
    assert not tally.problems, "\n".join(tally.problems[:20])
    assert tally.cases >= 150


# text with everything a JSON string can spell: lone surrogates, NUL, controls, astral characters
ODD_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
SPEC_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "command": st.lists(ODD_TEXT, min_size=1, max_size=3),
        "shell": ODD_TEXT,
        "env": st.dictionaries(ODD_TEXT, ODD_TEXT, max_size=2),
        "labels": st.dictionaries(ODD_TEXT, ODD_TEXT, max_size=2),
        "cwd": ODD_TEXT,
        "image": ODD_TEXT,
        "name": ODD_TEXT,
        "queue": ODD_TEXT,
        "depends_on": st.lists(st.fixed_dictionaries({"job": ODD_TEXT}), max_size=1),
        "resources": st.fixed_dictionaries({}, optional={"cpus": ODD_TEXT, "memory": ODD_TEXT}),
        "timeout": ODD_TEXT,
    },
)


TARGETS = ["/api/v1/jobs", "/api/v1/jobs/batch", "/api/v1/definitions"]


def test_job_specs_with_odd_text_are_stored_faithfully_or_refused_cleanly(target: Target) -> None:
    tally = Tally()

    @given(
        spec=SPEC_FIELDS, where=st.sampled_from(["/api/v1/jobs", "/api/v1/jobs/batch", "/api/v1/definitions"])
    )
    @settings(
        max_examples=EXAMPLES * 40,  # 200 by default
        derandomize=not DEEP,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(spec: dict[str, Any], where: str) -> None:
        body: Any = {"jobs": [spec]} if where.endswith("batch") else spec
        if where.endswith("definitions"):
            body = {"name": "fuzzed", "spec": spec}
        before = target.state()
        raw = json.dumps(body).encode()  # ensure_ascii: a lone surrogate travels as \\udXXX
        headers = {**target.headers, "Content-Type": "application/json"}
        response = target.client.post(where, content=raw, headers=headers)
        _judge(
            tally, f"POST {where} {raw[:120]!r}", response.status_code, response.text, before, target.state()
        )
        if response.status_code == 201 and where == "/api/v1/jobs":  # what was stored reads back the same
            stored = target.client.get(f"/api/v1/jobs/{response.json()['id']}", headers=target.headers)
            assert stored.status_code == 200
            assert stored.json()["spec"].get("command") == spec.get("command")

    check()
    print(f"odd-text spec fuzz: {tally.cases} cases, {tally.refused} refused, {tally.accepted} accepted")
    assert not tally.problems, "\n".join(tally.problems[:20])
    listed = target.client.get("/api/v1/definitions", headers=target.headers)
    assert listed.status_code == 200  # whatever was registered, the list still answers
