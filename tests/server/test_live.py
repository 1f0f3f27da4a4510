"""Against a real uvicorn server with the scheduler in-process: jobs run, logs stream while they are
written (chunked and SSE), metrics and capacity see them, and the UI says how they ended."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from tests.server.conftest import Live


@pytest.fixture
def http(live: Live) -> httpx.Client:
    with httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {live.admin}"}, timeout=60
    ) as client:
        yield client


def submit(http: httpx.Client, **spec: object) -> dict:
    response = http.post("/api/v1/jobs", json={"queue": "live", **spec})
    assert response.status_code == 201, response.text
    return response.json()


def wait(http: httpx.Client, job_id: str) -> dict:
    while True:
        job = http.post("/api/v1/jobs/wait", json={"ids": [job_id], "timeout": 30}).json()["jobs"][0]
        if job["state"] in {"succeeded", "failed", "oom_killed", "timed_out", "cancelled", "lost"}:
            return job


def until(check, what: str, limit: float = 60.0):
    """Poll `check` until it returns something true (a bounded wait, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def test_follow_streams_output_while_it_is_written(http: httpx.Client) -> None:
    gate = f"/tmp/freight-gate-{uuid.uuid4().hex}"
    job = submit(http, shell=f"echo first; while [ ! -e {gate} ]; do sleep 0.05; done; echo second")
    with http.stream("GET", f"/api/v1/jobs/{job['id']}/logs", params={"follow": "true"}) as response:
        assert response.status_code == 200
        chunks = response.iter_bytes()
        seen = b""
        while b"first\n" not in seen:
            seen += next(chunks)
        # the job is still running, blocked on the gate: output arrived before the job ended
        assert http.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "running"
        open(gate, "w").close()
        seen += b"".join(chunks)
    assert seen == b"first\nsecond\n"
    assert wait(http, job["id"])["state"] == "succeeded"


def test_sse_log_events_then_the_end(http: httpx.Client) -> None:
    job = submit(http, shell="printf 'héllo\\n'; echo oops >&2; exit 4")
    with http.stream(
        "GET",
        f"/api/v1/jobs/{job['id']}/logs",
        params={"follow": "true"},
        headers={"Accept": "text/event-stream"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    events = [block for block in body.split("\n\n") if block.startswith(("id:", "event:"))]
    logs = [json.loads(b.split("data: ", 1)[1]) for b in events if "event: log" in b]
    assert "".join(e["text"] for e in logs) == "héllo\noops\n"
    assert all(e["attempt"] == 1 for e in logs)
    end = json.loads(events[-1].split("data: ", 1)[1])
    assert end["state"] == "failed" and end["terminal"] is True and end["reason"] == "exited with code 4"
    assert events[0].startswith("id: 1:")  # attempt:offset, for Last-Event-ID
    # a reconnecting EventSource sends the last id it saw and resumes after it ("hé" is 3 bytes)
    resumed = http.get(
        f"/api/v1/jobs/{job['id']}/logs", params={"sse": "true"}, headers={"Last-Event-ID": "1:3"}
    )
    texts = [
        json.loads(b.split("data: ", 1)[1])["text"] for b in resumed.text.split("\n\n") if "event: log" in b
    ]
    assert "".join(texts) == "llo\noops\n"


def test_follow_waits_for_the_next_attempt_of_a_retry(http: httpx.Client) -> None:
    job = submit(
        http,
        shell='echo "try $FREIGHT_ATTEMPT"; [ "$FREIGHT_ATTEMPT" = 2 ]',
        retry={"max_attempts": 2, "retry_on": ["failed"], "backoff": 0.2, "jitter": 0},
    )
    first = http.get(f"/api/v1/jobs/{job['id']}/logs", params={"follow": "true", "attempt": 1}).text
    second = http.get(f"/api/v1/jobs/{job['id']}/logs", params={"follow": "true", "attempt": 2}).text
    assert (first, second) == ("try 1\n", "try 2\n")
    done = wait(http, job["id"])
    assert done["state"] == "succeeded" and [a["exit_code"] for a in done["attempt_list"]] == [1, 0]
    assert http.get(f"/api/v1/jobs/{job['id']}/logs").text == "try 2\n"


def test_metrics_and_capacity_see_running_jobs(http: httpx.Client, live: Live) -> None:
    gate = f"/tmp/freight-gate-{uuid.uuid4().hex}"
    job = submit(
        http, shell=f"while [ ! -e {gate} ]; do sleep 0.05; done", resources={"cpus": 0.5, "memory": "64M"}
    )
    until(lambda: http.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "running", "the job to run")
    node = http.get("/api/v1/nodes").json()
    assert node["scheduler"] and node["nodes"][0]["used_cpus"] >= 0.5 and node["nodes"][0]["isolation"]
    until(
        lambda: any(s["used_memory"] >= 64 * 1024**2 for s in http.get("/api/v1/capacity").json()["series"]),
        "a capacity sample with the job in it",
    )
    metrics = http.get("/metrics").text
    assert "freight_scheduler_up 1.0" in metrics
    in_use = next(line for line in metrics.splitlines() if line.startswith("freight_cpus_in_use "))
    assert float(in_use.split()[1]) >= 0.5
    usage = http.get(f"/api/v1/jobs/{job['id']}/usage").json()
    assert usage["live"] is True
    open(gate, "w").close()
    wait(http, job["id"])

    def started_count() -> float:
        for line in http.get("/metrics").text.splitlines():
            if line.startswith("freight_submit_to_start_seconds_count"):
                return float(line.split()[1])
        return 0.0

    until(lambda: started_count() >= 1, "the submit->start histogram to count a start")


def test_ui_says_plainly_that_a_job_ran_out_of_memory(http: httpx.Client, live: Live) -> None:
    job = submit(
        http,
        command=["python3", "-c", "b = bytearray(256 * 1024 * 1024)"],
        resources={"memory": "48M"},
    )
    done = wait(http, job["id"])
    assert done["state"] == "oom_killed"
    with httpx.Client(base_url=live.url) as browser:
        browser.post("/login", data={"token": live.admin})
        panel = browser.get(f"/ui/jobs/{job['id']}/panel").text
    assert "Killed: out of memory" in panel
    assert "Raise resources.memory above 48.0M" in panel


def test_the_event_feed_follows_new_events_of_one_job(http: httpx.Client) -> None:
    job = submit(http, command=["true"])
    with http.stream(
        "GET", "/api/v1/events", params={"follow": "true", "after_id": 0, "job_id": job["id"]}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        states: list[str] = []
        lines = response.iter_lines()
        while "succeeded" not in states:
            line = next(lines)
            if line.startswith("data: "):
                row = json.loads(line[6:])
                assert row["job_id"] == job["id"]
                states.append(row["to_state"])
    assert states[0] == "queued" and states[-1] == "succeeded"
