"""The API's side of what a job can reach: queue policy (admin), named secrets (admin, never a value),
and submissions that ask for root, the server's environment or no memory limit."""

from __future__ import annotations

import pytest

from tests.server.conftest import Api

pytestmark = pytest.mark.postgres


def test_queue_policy_is_admin_only_and_is_applied_at_submit(api: Api, queue: str) -> None:
    user = api.token("user", queues=[queue])
    assert api.put(f"/api/v1/queues/{queue}", {"weight": 1}).status_code == 200
    refused = api.put(f"/api/v1/queues/{queue}", {"allow_root": True}, token=user)
    assert refused.status_code == 403 and refused.json()["where"] == "allow_root"
    bad = api.put(f"/api/v1/queues/{queue}", {"allow_root": "yes"})
    assert bad.status_code == 422

    body = {"command": ["id"], "queue": queue, "user": "root"}
    root = api.post("/api/v1/jobs", body, token=user)
    assert root.status_code // 100 == 4 and root.json()["where"] == "spec: user"
    inherit = api.post("/api/v1/jobs", {"command": ["env"], "queue": queue, "inherit_env": True}, token=user)
    assert inherit.status_code // 100 == 4 and inherit.json()["where"] == "spec: inherit_env"
    zero = api.post(
        "/api/v1/jobs", {"command": ["true"], "queue": queue, "resources": {"memory": 0}}, token=user
    )
    assert zero.status_code == 400 and "at least 1M" in zero.json()["message"]
    assert api.get(f"/api/v1/jobs?queue={queue}").json()["jobs"] == []

    policy = {"allow_root": True, "max_memory": 64 << 20, "default_memory": 32 << 20}
    row = api.put(f"/api/v1/queues/{queue}", policy).json()
    assert (row["allow_root"], row["max_memory"], row["default_memory"]) == (True, 64 << 20, 32 << 20)
    job = api.post("/api/v1/jobs", body | {"resources": {"cpus": 0.5}}, token=user).json()
    assert job["spec"]["user"] == "root" and job["spec"]["resources"]["memory"] == 32 << 20
    big = api.post(
        "/api/v1/jobs", {"command": ["true"], "queue": queue, "resources": {"memory": "1G"}}, token=user
    )
    assert big.status_code // 100 == 4 and big.json()["where"] == "spec: resources.memory"


def test_secrets_are_admin_only_and_no_call_returns_a_value(api: Api, queue: str) -> None:
    name = f"pw-{queue}"
    user = api.token("user", queues=[queue])
    assert (
        api.client.put(f"/api/v1/secrets/{name}", json={"value": "v"}, headers=api.headers(user)).status_code
        == 403
    )
    stored = api.client.put(f"/api/v1/secrets/{name}", json={"value": "top-secret-1"}, headers=api.headers())
    assert stored.json() == {"name": name, "replaced": False}
    listed = api.get("/api/v1/secrets").json()
    assert name in [r["name"] for r in listed] and "top-secret-1" not in str(listed)
    assert api.get("/api/v1/secrets", token=user).status_code == 403

    job = api.post("/api/v1/jobs", {"command": ["true"], "queue": queue, "secrets": {"PW": name}}, token=user)
    assert job.status_code == 201 and "top-secret-1" not in job.text
    missing = api.post("/api/v1/jobs", {"command": ["true"], "queue": queue, "secrets": {"PW": "nope"}})
    assert missing.status_code == 404 and missing.json()["where"] == "spec: secrets.PW"
    assert api.client.delete(f"/api/v1/secrets/{name}", headers=api.headers()).status_code == 200
    assert api.client.delete(f"/api/v1/secrets/{name}", headers=api.headers()).status_code == 404
