"""The gateway's routing to services: by host name or path prefix (the longest wins, stripped) to the
service's port on 127.0.0.1, everything else to the builds gateway behind it; a service with nothing
answering is one 502 line. Real uvicorn, real HTTP backends, the services table on SQLite."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.responses import PlainTextResponse

from freight.builds.gateway import serving
from freight.config import Settings
from freight.jobs.service import JobService
from freight.runtime.registry import free_port
from freight.services.gateway import ServiceGateway
from freight.services.spec import ServiceSpec
from freight.services.store import ServiceStore


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers with what it was asked: its own name, the method, path, body and forwarded headers."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        data = {
            "backend": self.server.name,  # type: ignore[attr-defined]
            "method": self.command,
            "path": self.path,
            "body": self.rfile.read(length).decode(),
            "host": self.headers.get("x-forwarded-host"),
            "prefix": self.headers.get("x-forwarded-prefix"),
        }
        out = json.dumps(data).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


def backend(name: str) -> tuple[http.server.ThreadingHTTPServer, int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.name = name  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


async def releases(scope: Any, receive: Any, send: Any) -> None:
    await PlainTextResponse("from the builds gateway")(scope, receive, send)


@pytest.fixture
def gateway(settings: Settings) -> Iterator[tuple[str, ServiceStore, dict[str, int]]]:
    svc = JobService.open(settings)
    store = ServiceStore(svc.engine)
    servers = {name: backend(name) for name in ("api", "api-v2", "web")}
    ports = {name: port for name, (_, port) in servers.items()}
    ports["down"] = free_port()  # nothing listens there
    routes = {
        "api": {"prefix": "/api"},
        "api-v2": {"prefix": "/api/v2/"},
        "web": {"hosts": ["Web.Example.com"]},
        "down": {"prefix": "/down/"},
    }
    for name, route in routes.items():
        spec = ServiceSpec(image="x", command=["x"], port=ports[name], **route)  # type: ignore[arg-type]
        store.deploy(name, spec)
    try:
        with serving(ServiceGateway(svc.engine, releases)) as url:
            yield url, store, ports
    finally:
        for server, _ in servers.values():
            server.shutdown()
        svc.close()


def test_routes_by_host_and_longest_prefix_and_falls_back_to_releases(
    gateway: tuple[str, ServiceStore, dict[str, int]],
) -> None:
    url, _, _ = gateway
    with httpx.Client(base_url=url) as client:
        got = client.get("/api/users?id=3").json()
        assert (got["backend"], got["path"], got["prefix"]) == ("api", "/users?id=3", "/api")
        assert client.get("/api").json()["path"] == "/"
        assert client.get("/api/v2/users").json()["backend"] == "api-v2"
        posted = client.post("/api/v2/items", content=b"hello")
        assert posted.status_code == 201 and posted.json()["body"] == "hello"
        by_host = client.get("/any/path", headers={"host": "web.example.com:8080"}).json()
        assert (by_host["backend"], by_host["path"], by_host["host"]) == (
            "web",
            "/any/path",
            "web.example.com:8080",
        )
        assert client.get("/apifoo").text == "from the builds gateway"
        assert client.get("/").text == "from the builds gateway"
        down = client.get("/down/x")
        assert down.status_code == 502 and down.text == "service down has no healthy replica answering\n"


def test_a_removed_service_is_no_longer_routed(gateway: tuple[str, ServiceStore, dict[str, int]]) -> None:
    _, store, _ = gateway
    store.mark_removing("api")
    gw = ServiceGateway(store.engine, releases)
    assert gw.match("", "/api/users") is None
    assert gw.match("", "/api/v2/x") is not None


def test_routes_are_checked() -> None:
    for bad in ({"prefix": "/_freight/x"}, {"prefix": "api"}, {"prefix": "/"}, {"hosts": ["web:80"]}):
        with pytest.raises(ValidationError):
            ServiceSpec(image="x", command=["x"], port=1, **bad)  # type: ignore[arg-type]
    spec = ServiceSpec(image="x", command=["x"], port=1, prefix="/shop", hosts=["Shop.Example.com"])
    assert (spec.prefix, spec.hosts) == ("/shop/", ["shop.example.com"])
    # routing is not part of what makes replicas interchangeable: changing it restarts nothing
    assert spec.replica_key() == ServiceSpec(image="x", command=["x"], port=1).replica_key()
