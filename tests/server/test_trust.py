"""The API's trust boundary: scopes on definitions, /metrics and the git hook; auth before validation;
strict booleans; text that is not UTF-8 refused naming the field, with nothing stored; paths a request
names checked against allowed roots before anything is opened; a locked store answered 503."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from freight.db.schema import definitions, jobs
from freight.jobs.service import JobService
from freight.server import create_app
from freight.server.tokens import create_token
from tests.server.conftest import Api, _settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _count(api: Api, table: object = jobs) -> int:
    with api.service.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _raw(api: Api, path: str, body: bytes, token: str | None = None) -> object:
    headers = {"Content-Type": "application/json", **api.headers(token)}
    return api.client.post(path, content=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('{"command": ["echo", "\\ud800"]}', "command.1"),
        ('{"shell": "echo \\udfff"}', "shell"),
        ('{"command": ["true"], "env": {"K": "\\ud800"}}', "env.K"),
        ('{"command": ["true"], "env": {"\\ud800": "v"}}', "env"),
        ('{"command": ["true"], "labels": {"a": "\\ud800"}}', "labels.a"),
        ('{"command": ["true"], "cwd": "/\\ud800"}', "cwd"),
        ('{"command": ["true"], "image": "\\ud800"}', "image"),
        ('{"command": ["true"], "depends_on": [{"job": "\\ud800"}]}', "depends_on.0.job"),
    ],
)
def test_a_lone_surrogate_is_one_400_naming_the_field_and_stores_nothing(
    api: Api, queue: str, body: str, where: str
) -> None:
    before = _count(api)
    data = json.loads(body) | {"queue": queue}
    answer = _raw(api, "/api/v1/jobs", json.dumps(data).encode())
    assert answer.status_code == 400, answer.text
    assert answer.json()["where"] == where and "not UTF-8 text" in answer.json()["message"]
    batch = _raw(api, "/api/v1/jobs/batch", json.dumps({"jobs": [{"command": ["true"]}, data]}).encode())
    assert batch.status_code == 400 and batch.json()["where"] == f"jobs.1.{where}"
    assert _count(api) == before


def test_strict_booleans_and_auth_before_validation(api: Api) -> None:
    yes = api.post("/api/v1/tokens", {"name": "x", "admin": "yes"})
    assert yes.status_code == 422 and yes.json()["where"] == "admin"
    for path, body in [("/api/v1/tokens", b'{"admin": "yes"}'), ("/api/v1/jobs", b"{not json")]:
        anonymous = api.client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert anonymous.status_code == 401, (path, anonymous.text)
        bad_token = api.client.post(path, content=body, headers={"Authorization": "Bearer frt_nope"})
        assert bad_token.status_code == 401
    assert _raw(api, "/api/v1/jobs", b"{not json").status_code == 422  # with a token: the real problem


def test_definitions_follow_scopes_can_be_deleted_and_a_bad_row_breaks_no_list(api: Api, queue: str) -> None:
    name = f"def-{queue}"
    spec = {"command": ["echo", "secret"], "queue": queue, "env": {"TOKEN": "s3cret"}}
    assert api.post("/api/v1/definitions", {"name": name, "spec": spec}).status_code == 201
    surrogate = _raw(api, "/api/v1/definitions", b'{"name": "bad", "spec": {"command": ["\\ud800"]}}')
    assert surrogate.status_code == 400 and surrogate.json()["where"] == "spec.command.0"
    with api.service.engine.begin() as conn:  # a row written before text was checked
        bad = {"name": f"bad-{queue}", "version": 1, "description": None, "created_at": 0.0}
        conn.execute(insert(definitions).values(**bad, spec=json.dumps({"command": ["\ud800"]})))
    listed = api.get("/api/v1/definitions")
    assert listed.status_code == 200
    rows = {d["name"]: d for d in listed.json()}
    assert rows[f"bad-{queue}"]["problem"] and rows[f"bad-{queue}"]["spec"] == {}
    assert rows[name]["problem"] is None
    assert api.client.get("/definitions", headers={"Cookie": f"freight_token={api.admin}"}).status_code == 200

    other = api.token(f"other-{queue}", queues=[f"{queue}-other"])
    mine = api.token(f"mine-{queue}", queues=[queue])
    assert name not in {d["name"] for d in api.get("/api/v1/definitions", other).json()}
    assert api.get(f"/api/v1/definitions/{name}", other).status_code == 404
    assert name in {d["name"] for d in api.get("/api/v1/definitions", mine).json()}
    assert api.client.delete(f"/api/v1/definitions/{name}", headers=api.headers(mine)).status_code == 403

    gone = api.client.delete(f"/api/v1/definitions/bad-{queue}", headers=api.headers())
    assert gone.status_code == 200 and gone.json() == {"name": f"bad-{queue}", "deleted": 1}
    assert api.client.delete(f"/api/v1/definitions/{name}:1", headers=api.headers()).json()["deleted"] == 1
    assert api.client.delete(f"/api/v1/definitions/{name}", headers=api.headers()).status_code == 404


@pytest.mark.parametrize("path", ["/etc/passwd", "/nonexistent/pipeline.yaml"])
def test_a_path_outside_the_roots_gets_one_answer_whether_it_exists_or_not(
    api: Api, queue: str, path: str
) -> None:
    spec = {"name": "p", "steps": [{"name": "a", "type": "transform-sql", "sql": "select 1"}]}
    token = api.token(f"paths-{queue}", queues=["default"])
    answer = api.post("/api/v1/pipelines/runs", {"spec": spec, "spec_path": path}, token)
    assert answer.status_code == 400
    assert answer.json()["message"] == f"{path!r} is not under a folder this server takes pipelines from"


def test_a_step_file_outside_the_pipeline_folder_is_never_read(api: Api, tmp_path: Path) -> None:
    for name in ("/etc/passwd", "../../../../etc/passwd", "/nonexistent"):
        spec = {"name": "p", "steps": [{"name": "a", "type": "transform-sql", "file": name}]}
        answer = api.post("/api/v1/pipelines/runs", {"spec": spec, "base_dir": str(tmp_path)})
        assert answer.status_code == 400
        assert answer.json()["message"] == f"steps.a.file: {name!r} is not inside the pipeline's folder"
        assert "root:" not in answer.text


@pytest.fixture
def guarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, str, str]]:
    """An app on a store of its own, with FREIGHT_METRICS_TOKEN and the git hook's secret set."""
    monkeypatch.setenv("FREIGHT_GIT_HOOK_SECRET", "hook-secret")
    settings = replace(_settings(tmp_path / "home"), metrics_token="scrape-me")
    service = JobService.open(settings)
    _, admin = create_token(service.engine, "admin", admin=True)
    _, scoped = create_token(service.engine, "scoped", queues=["q"])
    with TestClient(create_app(service=service)) as client:
        yield client, admin, scoped
    service.close()


def test_metrics_can_require_a_token(guarded: tuple[TestClient, str, str]) -> None:
    client, admin, scoped = guarded
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {scoped}"}).status_code == 401
    for token in ("scrape-me", admin):
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and "freight_jobs" in answer.text


def test_the_git_hook_checks_size_and_signature_before_parsing(guarded: tuple[TestClient, str, str]) -> None:
    client, admin, _ = guarded
    hook = "/api/v1/hooks/git"
    assert client.post(hook, content=b"{}").status_code == 401  # no signature: the body is not read
    big = b"x" * (5 * 1024 * 1024 + 1)
    sig = "sha256=" + hmac.new(b"hook-secret", big, hashlib.sha256).hexdigest()
    assert client.post(hook, content=big, headers={"X-Hub-Signature-256": sig}).status_code == 413
    bad = client.post(hook, content=b"{not json", headers={"X-Hub-Signature-256": "sha256=00"})
    assert bad.status_code == 401  # a wrong signature, before any parsing
    assert client.get(f"{hook}/nope").status_code == 401  # the delivery status takes a token
    assert client.get(f"{hook}/nope", headers={"Authorization": f"Bearer {admin}"}).status_code == 404


def test_release_previews_and_builds_follow_scopes(guarded: tuple[TestClient, str, str]) -> None:
    client, admin, scoped = guarded
    assert client.get("/api/v1/apps", headers={"Authorization": f"Bearer {scoped}"}).status_code == 403
    assert client.get("/api/v1/builds", headers={"Authorization": f"Bearer {scoped}"}).status_code == 403
    assert client.get("/api/v1/apps", headers={"Authorization": f"Bearer {admin}"}).status_code == 200


def test_a_locked_store_is_a_503_that_changes_nothing(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    db = settings.home / "freight.db"
    settings = replace(settings, database_url=f"sqlite:///{db}?timeout=0.2")
    service = JobService.open(settings)
    _, admin = create_token(service.engine, "admin", admin=True)
    headers = {"Authorization": f"Bearer {admin}"}
    try:
        with TestClient(create_app(service=service)) as client:
            assert client.get("/api/v1/whoami", headers=headers).status_code == 200  # the token is warm
            holder = sqlite3.connect(db, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")  # another writer holds the store
            try:
                answer = client.post("/api/v1/jobs", json={"command": ["true"]}, headers=headers)
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            assert answer.status_code == 503, answer.text
            assert answer.json()["message"].startswith("the store is busy or unreachable")
            assert client.get("/api/v1/jobs", headers=headers).json()["jobs"] == []
    finally:
        service.close()
