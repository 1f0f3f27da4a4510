"""The gateway: serves each app's current release by host name or path prefix, with CDN semantics.

- hashed assets: `Cache-Control: public, max-age=31536000, immutable`; HTML and other files: `no-cache`
  (always revalidated, cheap thanks to ETags: an unchanged file answers 304).
- gzip: text files have a gzip twin stored at publish time; it is served when the client accepts it.
- SPA fallback: a navigation to a path the release does not have gets the release's index.html.
- assets of earlier releases stay reachable, so a tab opened before a deploy keeps loading its chunks.
- `/_freight/releases/<app>/<release>/<path>` serves any release, deployed or not (a preview), to a
  caller `may_preview` lets in (the server passes a check of an API token, bearer or the UI's cookie);
  without one, previews are refused: an undeployed release is not public.

What is current is read from the state store and cached for `ttl` seconds; manifests are immutable
and cached for good.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route as StarletteRoute

from freight.builds.config import RESERVED_PREFIX
from freight.builds.releases import FileEntry, Manifest, blob_key, load_manifest
from freight.builds.store import BuildStore, Route
from freight.errors import NotFoundError
from freight.storage.objectstore import ObjectStore

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
PREVIEW = f"{RESERVED_PREFIX}releases/"


@dataclass(frozen=True)
class _Resolved:
    entry: FileEntry
    manifest: Manifest


def accepts_gzip(header: str | None) -> bool:
    for part in (header or "").split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() in ("gzip", "*"):
            q = params.strip()
            if q.startswith("q="):
                try:
                    return float(q[2:]) > 0
                except ValueError:
                    return False
            return True
    return False


def _etag_matches(header: str | None, etags: tuple[str, ...]) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    given = {t.strip().removeprefix("W/") for t in header.split(",")}
    return any(e in given for e in etags)


class Gateway:
    def __init__(
        self,
        store: BuildStore,
        objects: ObjectStore,
        *,
        env: str = "prod",
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        may_preview: Callable[[Request], bool] | None = None,
    ) -> None:
        self.may_preview = may_preview
        self.store = store
        self.objects = objects
        self.env = env
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._loaded_at: float | None = None
        self._routes: list[Route] = []
        self._current: dict[str, str] = {}
        self._manifests: dict[tuple[str, str], Manifest] = {}
        #: app -> (release ids it was built from, path -> the newest immutable entry with that path)
        self._assets: dict[str, tuple[tuple[str, ...], dict[str, _Resolved]]] = {}
        self.app = Starlette(
            routes=[
                StarletteRoute(f"{RESERVED_PREFIX}health", self._health, methods=["GET"]),
                StarletteRoute("/{path:path}", self._serve, methods=["GET", "HEAD"]),
            ]
        )

    async def __call__(self, scope: object, receive: object, send: object) -> None:
        await self.app(scope, receive, send)  # type: ignore[arg-type]

    # state -----------------------------------------------------------------------------------------

    def _refresh(self) -> tuple[list[Route], dict[str, str]]:
        now = self.clock()
        with self._lock:
            if self._loaded_at is None or now - self._loaded_at >= self.ttl:
                self._routes = self.store.routes()
                self._current = self.store.current(self.env)
                self._loaded_at = now
            return self._routes, self._current

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = None

    def manifest(self, app: str, release_id: str) -> Manifest:
        key = (app, release_id)
        if key not in self._manifests:
            self._manifests[key] = load_manifest(self.objects, app, release_id)
        return self._manifests[key]

    def _earlier_asset(self, app: str, path: str) -> _Resolved | None:
        releases = tuple(r.id for r in self.store.releases(app))
        cached = self._assets.get(app)
        if cached is None or cached[0] != releases:
            index: dict[str, _Resolved] = {}
            for release_id in reversed(releases):  # oldest first, so newer entries win
                try:
                    manifest = self.manifest(app, release_id)
                except NotFoundError:
                    continue
                for rel, entry in manifest.files.items():
                    if entry.immutable:
                        index[rel] = _Resolved(entry, manifest)
            cached = (releases, index)
            self._assets[app] = cached
        return cached[1].get(path)

    # routing ---------------------------------------------------------------------------------------

    def _route(self, request: Request) -> tuple[Route, str] | Response | None:
        routes, _ = self._refresh()
        host = (request.headers.get("host") or "").split(":", 1)[0].lower()
        path = request.url.path
        for route in routes:
            if host and host in (h.lower() for h in route.hosts):
                return route, path.lstrip("/")
        best: Route | None = None
        for route in routes:
            if path.startswith(route.prefix) and (best is None or len(route.prefix) > len(best.prefix)):
                best = route
            elif path == route.prefix.rstrip("/") and route.prefix != "/":
                query = f"?{request.url.query}" if request.url.query else ""
                return RedirectResponse(route.prefix + query, status_code=308)
        if best is None:
            return None
        return best, path[len(best.prefix) :]

    def _health(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    def _serve(self, request: Request) -> Response:
        path = request.url.path
        if path.startswith(PREVIEW):
            return self._preview(request, path[len(PREVIEW) :])
        routed = self._route(request)
        if routed is None:
            return PlainTextResponse("no app is served at this address\n", status_code=404)
        if isinstance(routed, Response):
            return routed
        route, rel = routed
        release_id = self._refresh()[1].get(route.app)
        if release_id is None:
            return PlainTextResponse(f"{route.app} has no release deployed in {self.env}\n", status_code=404)
        manifest = self.manifest(route.app, release_id)
        resolved = self._lookup(manifest, rel)
        if resolved is None:
            resolved = self._earlier_asset(route.app, rel)
        if resolved is None and route.spa and self._is_navigation(request, rel):
            resolved = self._lookup(manifest, "index.html")
        if resolved is None:
            return PlainTextResponse("not found\n", status_code=404)
        return self._respond(request, resolved)

    def _preview(self, request: Request, rest: str) -> Response:
        if self.may_preview is None or not self.may_preview(request):
            return PlainTextResponse(
                "a release preview needs an API token (Authorization: Bearer <token>)\n",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        app, _, tail = rest.partition("/")
        release_id, _, rel = tail.partition("/")
        try:
            release = self.store.release(app, release_id) if app and release_id else None
        except NotFoundError:
            release = None
        if release is None:
            return PlainTextResponse("no such release\n", status_code=404)
        manifest = self.manifest(app, release.id)
        resolved = self._lookup(manifest, rel) or (
            self._lookup(manifest, "index.html") if self._is_navigation(request, rel) else None
        )
        if resolved is None:
            return PlainTextResponse("not found\n", status_code=404)
        return self._respond(request, resolved)

    @staticmethod
    def _is_navigation(request: Request, rel: str) -> bool:
        last = rel.rsplit("/", 1)[-1]
        return "." not in last or "text/html" in request.headers.get("accept", "")

    def _lookup(self, manifest: Manifest, rel: str) -> _Resolved | None:
        rel = rel.strip("/") if rel else ""
        for candidate in (rel, f"{rel}/index.html" if rel else "index.html"):
            entry = manifest.files.get(candidate)
            if entry is not None:
                return _Resolved(entry, manifest)
        return None

    # responses -------------------------------------------------------------------------------------

    def _respond(self, request: Request, resolved: _Resolved) -> Response:
        entry = resolved.entry
        gz = entry.gzip_size is not None and accepts_gzip(request.headers.get("accept-encoding"))
        etag = f'"{entry.sha256[:32]}{"-gz" if gz else ""}"'
        headers = {
            "Cache-Control": IMMUTABLE if entry.immutable else REVALIDATE,
            "ETag": etag,
            "Last-Modified": formatdate(resolved.manifest.created_at, usegmt=True),
        }
        if entry.gzip_size is not None:
            headers["Vary"] = "Accept-Encoding"
        # Either representation validates: the bytes behind both are the same file.
        if _etag_matches(
            request.headers.get("if-none-match"), (f'"{entry.sha256[:32]}"', f'"{entry.sha256[:32]}-gz"')
        ):
            return Response(status_code=304, headers=headers)
        key = blob_key(entry.sha256, gz=gz)
        if gz:
            headers["Content-Encoding"] = "gzip"
        local = self.objects.local_path(key)
        if local is not None:
            return FileResponse(local, headers=headers, media_type=entry.content_type)
        data = self.objects.get_bytes(key)
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return Response(b"", headers=headers, media_type=entry.content_type)
        return Response(data, headers=headers, media_type=entry.content_type)


def create_gateway(
    store: BuildStore,
    objects: ObjectStore,
    *,
    env: str = "prod",
    ttl: float = 1.0,
    may_preview: Callable[[Request], bool] | None = None,
) -> Gateway:
    return Gateway(store, objects, env=env, ttl=ttl, may_preview=may_preview)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve `app` (a gateway, or any ASGI app) with uvicorn on a free local port, in a thread, as
    `freight serve` would; yields its base URL and stops it afterwards (the demo and the tests)."""
    import uvicorn  # only here: the gateway module is loaded by commands that serve nothing

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
