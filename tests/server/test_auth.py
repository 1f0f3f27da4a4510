"""Bearer tokens: none, unknown, revoked, scoped to queues, admin-only routes; the UI's cookie."""

from __future__ import annotations

import pytest

from freight.server.tokens import revoke_token
from tests.server.conftest import Api

pytestmark = pytest.mark.postgres


def test_no_token_is_401_with_a_bearer_challenge(api: Api) -> None:
    for method, path in [
        ("GET", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs"),
        ("GET", "/api/v1/queues"),
        ("GET", "/api/v1/nodes"),
    ]:
        response = api.client.request(method, path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["where"] == "Authorization"


@pytest.mark.parametrize(
    "header", ["Bearer frt_nope_nope", "Bearer not-a-token", "Basic dXNlcjpwdw==", "Bearer "]
)
def test_bad_tokens_are_401(api: Api, header: str) -> None:
    response = api.client.get("/api/v1/jobs", headers={"Authorization": header})
    assert response.status_code == 401


def test_revoked_token_stops_working_at_once(api: Api, queue: str) -> None:
    token = api.token(f"temp-{queue}")
    assert api.get("/api/v1/jobs", token=token).status_code == 200
    revoked = api.client.delete(f"/api/v1/tokens/temp-{queue}", headers=api.headers())
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    response = api.get("/api/v1/jobs", token=token)
    assert response.status_code == 401 and "revoked" in response.json()["message"]
    assert api.client.delete(f"/api/v1/tokens/temp-{queue}", headers=api.headers()).status_code == 404


def test_queue_scoped_token_sees_submits_and_cancels_only_its_queues(api: Api, queue: str) -> None:
    other = f"{queue}-other"
    token = api.token(f"scoped-{queue}", queues=[queue])
    mine = api.post("/api/v1/jobs", {"command": ["true"], "queue": queue}, token=token)
    assert mine.status_code == 201
    theirs = api.post("/api/v1/jobs", {"command": ["true"], "queue": other}).json()

    denied = api.post("/api/v1/jobs", {"command": ["true"], "queue": other}, token=token)
    assert denied.status_code == 403 and denied.json()["where"] == "queue"
    batch = api.post("/api/v1/jobs/batch", {"jobs": [{"command": ["true"], "queue": other}]}, token=token)
    assert batch.status_code == 403 and batch.json()["where"] == "jobs.0.queue"

    listed = api.get("/api/v1/jobs", token=token).json()["jobs"]
    assert {j["queue"] for j in listed} == {queue}
    assert api.get("/api/v1/jobs", token=token, params={"queue": other}).status_code == 403
    for path in (
        f"/api/v1/jobs/{theirs['id']}",
        f"/api/v1/jobs/{theirs['id']}/logs",
        f"/api/v1/jobs/{theirs['id']}/events",
    ):
        assert api.get(path, token=token).status_code == 404, path
    assert api.post(f"/api/v1/jobs/{theirs['id']}/cancel", token=token).status_code == 404
    assert (
        api.post("/api/v1/jobs/wait", {"ids": [theirs["id"]], "timeout": 0}, token=token).status_code == 404
    )
    assert api.post(f"/api/v1/jobs/{mine.json()['id']}/cancel", token=token).json()["state"] == "cancelled"
    assert api.get(f"/api/v1/jobs/{theirs['id']}").json()["state"] == "queued"

    queues = {q["name"] for q in api.get("/api/v1/queues", token=token).json()}
    assert queues == {queue}
    events = api.get("/api/v1/events", token=token).json()
    assert events and {e["job_id"] for e in events} == {mine.json()["id"]}


def test_scoped_token_may_pause_its_queue_but_not_reweigh_or_create(api: Api, queue: str) -> None:
    token = api.token(f"ops-{queue}", queues=[queue])
    api.put(f"/api/v1/queues/{queue}", {})
    assert api.post(f"/api/v1/queues/{queue}/pause", token=token).json()["paused"] is True
    assert api.put(f"/api/v1/queues/{queue}", {"paused": False}, token=token).json()["paused"] is False
    assert api.put(f"/api/v1/queues/{queue}", {"weight": 10}, token=token).status_code == 403
    assert api.put(f"/api/v1/queues/{queue}-new", {}, token=token).status_code == 403
    assert api.post(f"/api/v1/queues/{queue}-new/pause", token=token).status_code == 403


def test_admin_only_routes(api: Api, queue: str) -> None:
    plain = api.token(f"plain-{queue}")
    scoped = api.token(f"s-{queue}", queues=[queue])
    assert api.get("/api/v1/tokens", token=plain).status_code == 403
    assert api.post("/api/v1/tokens", {"name": "x"}, token=plain).status_code == 403
    definition = {"name": f"d-{queue}", "spec": {"command": ["true"], "queue": queue}}
    assert api.post("/api/v1/definitions", definition, token=scoped).status_code == 403
    assert api.post("/api/v1/definitions", definition, token=plain).status_code == 201
    created = api.post("/api/v1/tokens", {"name": f"new-{queue}", "queues": [queue]})
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith("frt_") and body["queues"] == [queue] and body["admin"] is False
    listed = api.get("/api/v1/tokens").json()
    assert body["id"] in {t["id"] for t in listed}
    assert all("token" not in t and "secret_hash" not in t for t in listed)
    me = api.get("/api/v1/whoami", token=body["token"]).json()
    assert me["name"] == f"new-{queue}" and me["queues"] == [queue]
    bad = api.post("/api/v1/tokens", {"name": "x", "queues": ["bad queue"]})
    assert bad.status_code == 422 and bad.json()["where"] == "queues.0"
    assert api.post("/api/v1/tokens", {"name": "x", "queues": [queue], "admin": True}).status_code == 400


def test_tokens_are_stored_hashed(api: Api) -> None:
    from sqlalchemy import select

    from freight.db.schema import tokens

    text = api.token("hashed")
    with api.service.engine.connect() as conn:
        rows = conn.execute(select(tokens)).all()
    assert all(text not in str(tuple(r)) for r in rows)
    assert any(len(r.secret_hash) == 64 for r in rows)
    revoke_token(api.service.engine, "hashed")


def test_ui_sign_in_sets_a_cookie_and_changes_need_the_ui_header(api: Api, queue: str) -> None:
    client = api.client
    client.cookies.clear()
    page = client.get("/jobs", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/jobs"
    wrong = client.post("/login", data={"token": "frt_x_y", "next": "/jobs"})
    assert wrong.status_code == 401 and "unknown or was revoked" in wrong.text
    offsite = client.post(
        "/login", data={"token": api.admin, "next": "//evil.example/"}, follow_redirects=False
    )
    assert offsite.headers["location"] == "/jobs"
    cookie = offsite.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    job = client.post(
        "/api/v1/jobs", json={"command": ["true"], "queue": queue}, headers={"X-Freight-UI": "1"}
    )
    assert job.status_code == 201
    assert client.get(f"/api/v1/jobs/{job.json()['id']}").status_code == 200
    forged = client.post(f"/api/v1/jobs/{job.json()['id']}/cancel")
    assert forged.status_code == 403 and forged.json()["where"] == "x-freight-ui"
    assert client.get("/jobs").status_code == 200
    client.post("/logout")
    client.cookies.clear()
    assert client.get("/ui/jobs/rows").status_code == 401
