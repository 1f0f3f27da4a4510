"""The REST API against the real app on SQLite and on PostgreSQL (no scheduler: jobs stay queued)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from freight.db.schema import scaling_events
from tests.server.conftest import Api

pytestmark = pytest.mark.postgres


def submit(api: Api, queue: str, **fields: object) -> dict:
    body = {"command": ["echo", "hi"], "queue": queue, **fields}
    response = api.post("/api/v1/jobs", body)
    assert response.status_code == 201, response.text
    return response.json()


def test_submit_and_get_round_trip_the_spec(api: Api, queue: str) -> None:
    job = submit(
        api,
        queue,
        name="greet",
        resources={"cpus": "0.5", "memory": "64M"},
        timeout="1m",
        labels={"team": "a"},
    )
    assert job["state"] == "queued"
    assert job["spec"]["resources"] == {"cpus": 0.5, "memory": 64 * 1024**2, "pids": 1024}
    got = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert got == job | {"attempt_list": []}
    assert got["labels"] == {"team": "a"} and got["spec"]["timeout"] == 60


def test_idempotency_key_returns_the_first_job(api: Api, queue: str) -> None:
    body = {"command": ["true"], "queue": queue}
    first = api.post("/api/v1/jobs", body, headers={"Idempotency-Key": f"k-{queue}"})
    again = api.post("/api/v1/jobs", body, headers={"Idempotency-Key": f"k-{queue}"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    in_body = api.post("/api/v1/jobs", {**body, "idempotency_key": f"k-{queue}"})
    assert in_body.status_code == 200 and in_body.json()["id"] == first.json()["id"]
    clash = api.post(
        "/api/v1/jobs", {"command": ["false"], "queue": queue}, headers={"Idempotency-Key": f"k-{queue}"}
    )
    assert clash.status_code == 409
    assert clash.json()["where"] == "idempotency_key"
    mismatch = api.post(
        "/api/v1/jobs", {**body, "idempotency_key": "other"}, headers={"Idempotency-Key": "k"}
    )
    assert mismatch.status_code == 400 and mismatch.json()["where"] == "Idempotency-Key"
    listed = api.get("/api/v1/jobs", params={"queue": queue}).json()["jobs"]
    assert len(listed) == 1


@pytest.mark.parametrize(
    ("body", "status", "where", "words"),
    [
        ({"command": ["x"], "resources": {"memory": "lots"}}, 400, "spec: resources.memory", "is not a size"),
        ({"command": ["x"], "colour": "red"}, 400, "spec: colour", "unknown field"),
        ({"shell": "true", "command": ["x"]}, 400, "spec: (root)", "exactly one of"),
        ({"command": ["x"], "priority": 5000}, 400, "spec: priority", "less than or equal"),
        ({"command": ["x"], "name": "a\x00b"}, 400, "name", "NUL"),
        ({"command": ["x"], "idempotency_key": ""}, 400, "idempotency_key", "cannot be empty"),
        ({"command": ["x"], "grace": None}, 400, "spec: grace", "a number or a text"),
        (
            {"command": ["x"], "resources": {"memory": [1]}},
            400,
            "spec: resources.memory",
            "a number or a text",
        ),
        ({"command": ["x"], "depends_on": [{"job": "nope"}]}, 404, "depends_on.0.job", "no job"),
        ([1, 2], 422, "body", "dictionary"),
    ],
)
def test_bad_submissions_are_4xx_with_the_field_path_and_store_nothing(
    api: Api, queue: str, body: object, status: int, where: str, words: str
) -> None:
    if isinstance(body, dict):
        body = {**body, "queue": queue}
    response = api.post("/api/v1/jobs", body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == status
    assert error["where"] == where
    assert words in error["message"]
    assert api.get("/api/v1/jobs", params={"queue": queue}).json()["jobs"] == []


def test_malformed_json_is_422(api: Api) -> None:
    response = api.client.post(
        "/api/v1/jobs", content=b"{not json", headers={**api.headers(), "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "JSON" in response.json()["message"]


def test_list_filters_and_cursor_pages(api: Api, queue: str) -> None:
    ids = [submit(api, queue, labels={"n": str(i % 2)})["id"] for i in range(5)]
    newest_first = list(reversed(ids))
    page1 = api.get("/api/v1/jobs", params={"queue": queue, "limit": 2}).json()
    assert [j["id"] for j in page1["jobs"]] == newest_first[:2]
    page2 = api.get(
        "/api/v1/jobs", params={"queue": queue, "limit": 2, "cursor": page1["next_cursor"]}
    ).json()
    assert [j["id"] for j in page2["jobs"]] == newest_first[2:4]
    page3 = api.get(
        "/api/v1/jobs", params={"queue": queue, "limit": 2, "cursor": page2["next_cursor"]}
    ).json()
    assert [j["id"] for j in page3["jobs"]] == newest_first[4:] and page3["next_cursor"] is None
    odd = api.get("/api/v1/jobs", params={"queue": queue, "label": "n=1"}).json()["jobs"]
    assert sorted(j["id"] for j in odd) == sorted(ids[1::2])
    api.post(f"/api/v1/jobs/{ids[0]}/cancel")
    cancelled = api.get("/api/v1/jobs", params={"queue": queue, "state": "cancelled"}).json()["jobs"]
    assert [j["id"] for j in cancelled] == [ids[0]]
    bad = api.get("/api/v1/jobs", params={"state": "sleeping"})
    assert bad.status_code == 400 and bad.json()["where"] == "state"
    assert api.get("/api/v1/jobs", params={"label": "novalue"}).json()["where"] == "label"


def test_batch_submit_is_all_or_nothing(api: Api, queue: str) -> None:
    ok = api.post("/api/v1/jobs/batch", {"jobs": [{"command": ["true"], "queue": queue}] * 3})
    assert ok.status_code == 201 and len(ok.json()["jobs"]) == 3
    bad = api.post(
        "/api/v1/jobs/batch",
        {"jobs": [{"command": ["true"], "queue": queue}, {"command": [], "queue": queue}]},
    )
    assert bad.status_code == 400 and bad.json()["where"] == "jobs.1: (root)"
    assert len(api.get("/api/v1/jobs", params={"queue": queue}).json()["jobs"]) == 3


def test_cancel_retry_and_their_conflicts(api: Api, queue: str) -> None:
    job = submit(api, queue)
    assert api.post(f"/api/v1/jobs/{job['id']}/retry").status_code == 409
    cancelled = api.post(f"/api/v1/jobs/{job['id']}/cancel").json()
    assert cancelled["state"] == "cancelled" and cancelled["reason"] == "cancelled before it started"
    again = api.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and "already ended" in again.json()["message"]
    assert api.post(f"/api/v1/jobs/{job['id']}/retry").json()["state"] == "queued"
    events = api.get(f"/api/v1/jobs/{job['id']}/events").json()
    assert [e["to_state"] for e in events] == ["queued", "cancelled", "queued"]
    missing = api.post("/api/v1/jobs/nope/cancel")
    assert missing.status_code == 404 and missing.json()["message"] == "no job 'nope'"


def test_gc_deletes_finished_jobs_and_ids_may_be_prefixes(api: Api, queue: str) -> None:
    job = submit(api, queue)
    waiting = submit(api, queue)
    prefix = job["id"][:-1]  # no other job shares all but its last (random) digit
    shared = next(i for i, (a, b) in enumerate(zip(job["id"], waiting["id"], strict=True)) if a != b)
    assert api.get(f"/api/v1/jobs/{prefix}").json()["id"] == job["id"]
    assert api.post(f"/api/v1/jobs/{prefix}/cancel").json()["id"] == job["id"]
    ambiguous = api.get(f"/api/v1/jobs/{job['id'][:shared]}")
    assert ambiguous.status_code == 400 and "matches several jobs" in ambiguous.json()["message"]
    bad = api.post("/api/v1/jobs/gc", {"older_than": "soon"})
    assert bad.status_code == 400 and bad.json()["where"] == "older_than"
    dry = api.post("/api/v1/jobs/gc", {"older_than": 0, "dry_run": True}).json()
    assert job["id"] in dry["ids"] and waiting["id"] not in dry["ids"] and dry["dry_run"] is True
    assert api.get(f"/api/v1/jobs/{job['id']}").status_code == 200
    done = api.post("/api/v1/jobs/gc", {"older_than": "0s"}).json()
    assert job["id"] in done["ids"]
    assert api.get(f"/api/v1/jobs/{job['id']}").status_code == 404
    assert api.get(f"/api/v1/jobs/{waiting['id']}").status_code == 200


def test_wait_returns_when_jobs_end_or_time_is_up(api: Api, queue: str) -> None:
    job = submit(api, queue)
    pending = api.post("/api/v1/jobs/wait", {"ids": [job["id"]], "timeout": 0.2}).json()["jobs"]
    assert pending[0]["state"] == "queued"
    api.post(f"/api/v1/jobs/{job['id']}/cancel")
    done = api.post("/api/v1/jobs/wait", {"ids": [job["id"]], "timeout": 30}).json()["jobs"]
    assert done[0]["state"] == "cancelled"
    assert api.post("/api/v1/jobs/wait", {"ids": ["nope"], "timeout": 0}).status_code == 404
    assert api.post("/api/v1/jobs/wait", {"ids": [job["id"]], "timeout": 99}).json()["where"] == "timeout"


def test_logs_of_a_job_that_never_ran(api: Api, queue: str) -> None:
    job = submit(api, queue)
    api.post(f"/api/v1/jobs/{job['id']}/cancel")
    raw = api.get(f"/api/v1/jobs/{job['id']}/logs")
    assert raw.status_code == 200 and raw.text == ""
    sse = api.get(f"/api/v1/jobs/{job['id']}/logs", params={"sse": "true", "follow": "true"})
    assert sse.headers["content-type"].startswith("text/event-stream")
    assert 'event: end\ndata: {"state": "cancelled"' in sse.text
    no_attempt = api.get(f"/api/v1/jobs/{job['id']}/logs", params={"attempt": 3})
    assert no_attempt.status_code == 404 and no_attempt.json()["where"] == "attempt"


def test_definitions_register_list_and_run(api: Api, queue: str) -> None:
    name = f"greet-{queue}"
    template = {"command": ["echo", "v1"], "queue": queue, "resources": {"memory": "32M"}}
    created = api.post("/api/v1/definitions", {"name": name, "spec": template, "description": "says hi"})
    assert created.status_code == 201 and created.json() == {"name": name, "version": 1}
    assert (
        api.post(
            "/api/v1/definitions", {"name": name, "spec": {**template, "command": ["echo", "v2"]}}
        ).json()["version"]
        == 2
    )
    versions = api.get(f"/api/v1/definitions/{name}").json()
    assert [v["version"] for v in versions] == [2, 1]
    job = api.post(f"/api/v1/definitions/{name}:1/jobs", {"env": {"A": "1"}})
    assert job.status_code == 201, job.text
    assert job.json()["definition"] == f"{name}:1"
    assert job.json()["spec"]["command"] == ["echo", "v1"] and job.json()["spec"]["env"] == {"A": "1"}
    latest = api.post(f"/api/v1/definitions/{name}/jobs", {}).json()
    assert latest["definition"] == f"{name}:2"
    bad = api.post("/api/v1/definitions", {"name": name, "spec": {"command": ["x"], "timeout": "soon"}})
    assert bad.status_code == 400 and bad.json()["where"] == f"definition {name}: timeout"
    assert api.post("/api/v1/definitions/nope/jobs", {}).status_code == 404
    assert api.post(f"/api/v1/definitions/{name}:x/jobs", {}).status_code == 422
    assert api.get("/api/v1/definitions/nope").status_code == 404


def test_queues_create_weigh_pause_resume(api: Api, queue: str) -> None:
    created = api.put(f"/api/v1/queues/{queue}", {"weight": 3, "priority": 5})
    assert created.status_code == 200, created.text
    assert {k: created.json()[k] for k in ("name", "weight", "priority", "paused")} == {
        "name": queue,
        "weight": 3.0,
        "priority": 5,
        "paused": False,
    }
    assert api.post(f"/api/v1/queues/{queue}/pause").json()["paused"] is True
    submit(api, queue)
    row = api.get(f"/api/v1/queues/{queue}").json()
    assert row["paused"] is True and row["jobs"] == {"queued": 1}
    assert api.post(f"/api/v1/queues/{queue}/resume").json()["paused"] is False
    assert api.put(f"/api/v1/queues/{queue}", {"weight": 0}).json()["where"] == "weight"
    assert api.put(f"/api/v1/queues/{queue}", {"weight": "heavy"}).status_code == 422
    assert api.put("/api/v1/queues/bad name!", {}).status_code == 422
    assert api.post("/api/v1/queues/never-made/pause").status_code == 404


def test_nodes_capacity_events_metrics_and_schema(api: Api, queue: str) -> None:
    job = submit(api, queue)
    nodes = api.get("/api/v1/nodes").json()
    assert nodes["scheduler"] is None
    node = nodes["nodes"][0]
    assert node["cpus"] > 0 and node["memory"] > 0 and node["used_cpus"] == 0
    assert node["state"] == "alive" and node["labels"] == {} and node["id"] == node["name"]
    api.client.post("/login", data={"token": api.admin})
    page = api.client.get("/nodes")
    assert page.status_code == 200 and f'data-node="{node["id"]}"' in page.text and "Embedded" in page.text
    capacity = api.get("/api/v1/capacity").json()
    assert capacity["now"]["cpus"] == node["cpus"] and isinstance(capacity["series"], list)
    events = api.get("/api/v1/events", params={"limit": 5}).json()
    assert events[0]["job_id"] == job["id"] and events[0]["to_state"] == "queued"
    metrics = api.client.get("/metrics").text
    assert 'freight_jobs{state="queued"}' in metrics
    assert f'freight_queue_depth{{queue="{queue}"}} 1.0' in metrics
    assert "freight_cpus_capacity" in metrics and "freight_memory_in_use_bytes 0.0" in metrics
    assert "freight_submit_to_start_seconds_bucket" in metrics
    assert 'freight_http_requests_total{method="POST",route="/api/v1/jobs",status="201"}' in metrics
    schema = api.client.get("/openapi.json").json()
    assert "/api/v1/jobs/{job_id}/logs" in schema["paths"]
    body = schema["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/JobSpecIn"}
    assert "JobSpecIn.Resources" in schema["components"]["schemas"]


def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    missing = api.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.json()["status"] == 404
    wrong = api.client.delete("/api/v1/jobs", headers=api.headers())
    assert wrong.status_code == 405 and wrong.json()["message"]


def test_the_builds_git_hook_is_mounted_and_checks_its_signature(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    assert "/api/v1/hooks/git" in schema["paths"]
    unsigned = api.client.post("/api/v1/hooks/git", json={"ref": "refs/heads/main"})
    assert unsigned.status_code == 401


def test_capacity_shows_nodes_demand_and_scaling_events(api: Api) -> None:
    with api.service.engine.begin() as conn:
        conn.execute(
            insert(scaling_events).values(
                at=1.0, kind="request", bundles=3, cpus=3.0, memory=3 << 30, nodes=1
            )
        )
        conn.execute(
            insert(scaling_events).values(
                at=2.0, kind="node_added", node="f" * 56, nodes=2, detail="test-marker"
            )
        )
    capacity = api.get("/api/v1/capacity").json()
    assert [n["state"] for n in capacity["nodes"]] == ["alive"] and capacity["nodes"][0]["cpus"] > 0
    assert capacity["demand"] == {"autoscale": False}  # no autoscaler here
    events = [e for e in capacity["scaling_events"] if e.get("detail") == "test-marker" or e["at"] == 1.0]
    assert [e["kind"] for e in events] == ["node_added", "request"]  # newest first
    assert events[1]["bundles"] == 3 and events[1]["cpus"] == 3.0
    api.client.post("/login", data={"token": api.admin})
    try:
        html = api.client.get("/capacity").text
    finally:
        api.client.cookies.clear()  # the client is the module's: leave it logged out
    assert "Demand and scaling" in html and "node_added" in html and "ffffffffffff" in html
    assert "Autoscaling is off here" in html
