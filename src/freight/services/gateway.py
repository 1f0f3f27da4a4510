"""ServiceGateway: the gateway's HTTP routing to services, in front of the builds gateway.

A request whose Host is one of a service's `hosts`, or whose path is under its `prefix` (the longest
wins; the prefix is stripped) on a host no builds app serves (an app's host is the app's alone: a
service's prefix does not reach into it), is proxied to the service's router on 127.0.0.1:PORT, which sends it
to a healthy replica (services/router.py: a replica leaves the route before it is stopped). Every
other request goes to `fallback` (the builds gateway, serving releases). The routes are read from the
services table and cached for `ttl` seconds, so a deploy elsewhere (another process) shows within it.

Request bodies are read whole (capped at MAX_BODY); responses stream back. A service with no healthy
replica answers 502 with one line saying so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from freight.services.claims import app_hosts
from freight.services.store import ServiceStore

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 16 << 20
#: headers that belong to one connection, not to the request (RFC 9110 7.6.1), plus the ones httpx sets
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


@dataclass(frozen=True)
class ServiceRoute:
    name: str
    port: int
    hosts: tuple[str, ...]
    prefix: str | None


class ServiceGateway:
    def __init__(
        self,
        engine: Engine,
        fallback: ASGIApp | None = None,
        *,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = ServiceStore(engine)
        self.fallback = fallback
        self.ttl, self.clock = ttl, clock
        self._lock = threading.Lock()
        self._routes: list[ServiceRoute] = []
        self._app_hosts: frozenset[str] = frozenset()
        self._loaded_at: float | None = None
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = self.match(_host(scope), scope.get("path", "/"))
            if found is not None:
                request = Request(scope, receive)
                response = await self._proxy(request, *found)
                await response(scope, receive, send)
                return
        if self.fallback is None:
            if scope["type"] == "http":
                await PlainTextResponse("no service is served at this address\n", 404)(scope, receive, send)
            return
        await self.fallback(scope, receive, send)

    def routes(self) -> list[ServiceRoute]:
        return self._load()[0]

    def _load(self) -> tuple[list[ServiceRoute], frozenset[str]]:
        now = self.clock()
        with self._lock:
            if self._loaded_at is None or now - self._loaded_at >= self.ttl:
                self._routes = [
                    ServiceRoute(row.name, row.spec.port, tuple(row.spec.hosts), row.spec.prefix)
                    for row in self.store.all()
                    if row.status != "removing" and (row.spec.hosts or row.spec.prefix)
                ]
                with self.store.engine.connect() as conn:
                    self._app_hosts = app_hosts(conn)
                self._loaded_at = now
            return self._routes, self._app_hosts

    def match(self, host: str, path: str) -> tuple[ServiceRoute, str] | None:
        """The service a request goes to and the path its replica sees, or None (not a service's)."""
        routes, apps = self._load()
        for route in routes:
            if host and host in route.hosts:
                return route, path
        if host in apps:  # a builds app's host: its paths are the app's
            return None
        best: ServiceRoute | None = None
        for route in routes:
            prefix = route.prefix or ""
            under = bool(prefix) and (path.startswith(prefix) or path == prefix.rstrip("/"))
            if under and (best is None or len(prefix) > len(best.prefix or "")):
                best = route
        if best is None or best.prefix is None:
            return None
        return best, "/" + path[len(best.prefix) :]

    async def _proxy(self, request: Request, route: ServiceRoute, path: str) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse(f"request body over {MAX_BODY >> 20} MiB\n", 413)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP]
        client_host = request.client.host if request.client else ""
        headers += [
            ("x-forwarded-for", client_host),
            ("x-forwarded-host", request.headers.get("host", "")),
            ("x-forwarded-proto", request.url.scheme),
        ]
        if route.prefix:
            headers.append(("x-forwarded-prefix", route.prefix.rstrip("/")))
        url = f"http://127.0.0.1:{route.port}{path}"
        if request.url.query:
            url += f"?{request.url.query}"
        client = self._http()
        upstream = client.build_request(request.method, url, headers=headers, content=body)
        try:
            answer = await client.send(upstream, stream=True)
        except httpx.HTTPError:
            return PlainTextResponse(f"service {route.name} has no healthy replica answering\n", 502)
        out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP - {"content-length"}}
        return StreamingResponse(
            _chunks(answer),
            status_code=answer.status_code,
            headers=out,
            background=BackgroundTask(answer.aclose),
        )

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # no pooling: the router picks a replica per connection, so each request gets its own
            limits = httpx.Limits(max_keepalive_connections=0)
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0), limits=limits)
        return self._client


async def _chunks(answer: httpx.Response) -> AsyncIterator[bytes]:
    async for chunk in answer.aiter_raw():
        yield chunk


def _host(scope: Scope) -> str:
    for key, value in scope.get("headers") or ():
        if key == b"host":
            return str(value.decode("latin-1").split(":", 1)[0].lower())
    return ""
