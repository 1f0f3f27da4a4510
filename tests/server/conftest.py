"""Server fixtures: the real app on SQLite or PostgreSQL (no scheduler), and a live uvicorn server
with an in-process scheduler for streaming, the remote CLI and the browser."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from freight.config import Settings, load_settings
from freight.jobs.service import JobService
from freight.server import create_app
from freight.server.tokens import create_token
from tests.conftest import JOB_TMP, pg_database

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@dataclass
class Api:
    """A TestClient (httpx) on the real app, with an admin token at hand."""

    client: TestClient
    service: JobService
    admin: str
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin}"}

    def token(self, name: str, *, queues: list[str] | None = None, admin: bool = False) -> str:
        _, text = create_token(self.service.engine, name, queues=queues, admin=admin)
        return text

    def get(self, path: str, token: str | None = None, **kw: Any) -> Any:
        return self.client.get(path, headers=self.headers(token), **kw)

    def post(self, path: str, body: Any = None, token: str | None = None, **kw: Any) -> Any:
        headers = {**self.headers(token), **kw.pop("headers", {})}
        return self.client.post(path, json=body, headers=headers, **kw)

    def put(self, path: str, body: Any = None, token: str | None = None) -> Any:
        return self.client.put(path, json=body, headers=self.headers(token))


def _settings(home: Path, tag: str = "server") -> Settings:
    # a cgroup parent of its own: the live server's scheduler runs beside other tests' schedulers
    parent = f"freight-test-{os.getpid()}-{tag}"
    return load_settings({"FREIGHT_HOME": str(home), "FREIGHT_CGROUP_PARENT": parent})


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The app on each store, shared by a module's tests (they use queues of their own)."""
    settings = _settings(tmp_path_factory.mktemp("home"))
    databases = None
    if request.param == "postgres":
        databases = pg_database()
        settings = replace(settings, database_url=next(databases))
    service = JobService.open(settings)
    app = create_app(service=service)
    with TestClient(app) as client:
        _, admin = create_token(service.engine, "admin", admin=True)
        yield Api(client, service, admin)
    service.close()
    if databases is not None:
        next(databases, None)


@pytest.fixture
def queue() -> str:
    """A queue of this test's own, so tests sharing a store do not see each other's jobs."""
    return f"q-{uuid.uuid4().hex[:8]}"


@dataclass
class Live:
    url: str
    admin: str
    settings: Settings
    service: JobService

    def env(self, token: str | None = None) -> dict[str, str]:
        return {
            "FREIGHT_URL": self.url,
            "FREIGHT_TOKEN": token or self.admin,
            "FREIGHT_HOME": str(self.settings.home),
        }


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A real server on a free port: uvicorn in a thread, the scheduler in this process, SQLite."""
    settings = _settings(tmp_path_factory.mktemp("live"), "live")
    # pipeline files the tests' tokens name live in this session's temporary folders: pytest's own
    # and the per-test folders open to the job user (tests/conftest.py's tmp_path)
    roots = (tmp_path_factory.getbasetemp().resolve(), JOB_TMP.resolve())
    settings = replace(settings, pipeline_roots=roots)
    service = JobService.open(settings)
    app = create_app(service=service, scheduler=True, sample_interval=0.25)
    _, admin = create_token(service.engine, "admin", admin=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        threading.Event().wait(0.02)
    try:
        yield Live(f"http://127.0.0.1:{port}", admin, settings, service)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        service.close()
        sock.close()
        _remove_cgroups(settings.cgroup_parent)


def _remove_cgroups(parent: str) -> None:
    """The live server's cgroup slots (and any job left in them) go when the session ends."""
    from freight.runtime.cgroups import CgroupUnavailable, open_cgroups
    from freight.runtime.slots import SlotPool

    with contextlib.suppress(CgroupUnavailable):
        SlotPool(open_cgroups(parent)).destroy()
