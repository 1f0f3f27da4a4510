"""Notifications: a signed JSON webhook to a local HTTP receiver, email to a local SMTP sink (aiosmtpd),
and on_late from the planner's tick (clock injected)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from freight.pipelines.loader import load_pipeline
from freight.pipelines.planner import Planner
from freight.pipelines.registry import ScheduleRegistry
from freight.pipelines.runner import PipelineRunner
from tests.pipelines.conftest import Env
from tests.pipelines.helpers import run_yaml


class Receiver:
    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.got = threading.Condition()


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    box = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with box.got:
                box.posts.append((dict(self.headers), body))
                box.got.notify_all()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", box
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp() -> Iterator[tuple[int, list[bytes]]]:
    from aiosmtpd.controller import Controller

    got: list[bytes] = []

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            got.append(envelope.content)
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, got
    controller.stop()


def test_failure_goes_to_a_signed_webhook_once(
    env: Env, local_runner: PipelineRunner, receiver: tuple[str, Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, box = receiver
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    run = run_yaml(
        env,
        local_runner,
        f"""
name: breaks
notify:
  on_failure: [{{webhook: "{url}", secret_env: HOOK_SECRET}}]
  on_success: [{{webhook: "{url}"}}]
  link: http://freight.example
steps:
  - {{name: bad, type: sql, sql: SELECT * FROM no_such_table}}
""",
    )
    assert run.state == "failed"
    assert len(box.posts) == 1  # sent before the run was returned; once
    headers, body = box.posts[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Freight-Signature"] == expected
    data = json.loads(body)
    assert data["event"] == "failure" and data["pipeline"] == "breaks" and data["run"] == run.id
    assert data["failed_step"] == "bad" and "no_such_table" in data["error"]
    assert data["link"] == f"http://freight.example/pipelines/runs/{run.id}"
    local_runner.notify_end(run.id)  # a second follower finishing the same run sends nothing
    assert len(box.posts) == 1


def test_success_goes_by_email(env: Env, local_runner: PipelineRunner, smtp: tuple[int, list[bytes]]) -> None:
    port, got = smtp
    run = run_yaml(
        env,
        local_runner,
        f"""
name: fine
notify:
  on_success: [{{email: [ops@example.com], smtp: "127.0.0.1:{port}"}}]
steps:
  - {{name: ok, type: sql, sql: SELECT 1}}
""",
    )
    assert run.state == "succeeded"
    assert len(got) == 1
    mail = message_from_bytes(got[0])
    assert mail["To"] == "ops@example.com"
    assert mail["Subject"] == f"[freight] pipeline fine run {run.id}: success"
    assert "state: succeeded" in mail.get_payload()


def test_late_and_wait_for_timeout_from_the_planner(
    env: Env, local_runner: PipelineRunner, receiver: tuple[str, Receiver]
) -> None:
    url, box = receiver
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    path = env.write(
        "late.yaml",
        f"""
name: late
schedule: {{cron: "0 0 * * *", start: 2026-01-01, end: 2026-01-02, late_after: 1h}}
wait_for: [{{pipeline: never_runs, timeout: 10h}}]
notify:
  on_late: [{{webhook: "{url}"}}]
  on_failure: [{{webhook: "{url}"}}]
steps:
  - {{name: ok, type: sql, sql: SELECT 1}}
""",
    )
    pipeline = load_pipeline(path)
    ScheduleRegistry(local_runner.store.engine).register(
        "late",
        pipeline.spec.model_dump(mode="json", exclude_none=True),
        spec_path=str(path),
        base_dir=str(env.root),
        config_path=str(env.config),
    )
    planner = Planner(local_runner.store, lambda _c: local_runner)
    day_end = (start + dt.timedelta(days=1)).timestamp()
    first = planner.tick(day_end + 60)
    assert len(first.started) == 1 and first.late == []
    run_id = first.started[0]
    assert local_runner.store.get(run_id).state == "waiting"
    assert planner.tick(day_end + 2 * 3600).late == [run_id]
    assert planner.tick(day_end + 3 * 3600).late == []  # once
    assert planner.tick(day_end + 11 * 3600).failed == [run_id]
    run = local_runner.store.get(run_id)
    assert run.state == "failed" and "timed out after 10h" in (run.error or "")
    assert [json.loads(b)["event"] for _, b in box.posts] == ["late", "failure"]
