"""Serving: `freight up` runs the API, the UI and the scheduler in one process under uvicorn, and
the builds gateway on a port of its own when asked (its routing owns every path of its host)."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn

from freight.builds.api import Builds
from freight.config import Settings
from freight.errors import UserError
from freight.jobs.service import JobService
from freight.server.app import create_app
from freight.server.gctune import tune_for_serving
from freight.server.logconfig import configure_logging
from freight.server.tokens import ensure_first_admin, request_checker

log = logging.getLogger("freight.server")

#: what `freight up` runs on (both come with uvicorn[standard])
LOOP = "uvloop"
HTTP = "httptools"


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8321,
    log_format: str = "text",
    gateway_port: int | None = None,
    gateway_env: str = "prod",
    announce: Callable[[str, str | None], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. `announce(url, first_admin_token)` is called once the store is
    ready, before the socket opens; the token is None unless this is the store's first start."""
    configure_logging(log_format)
    svc = JobService.open(settings)
    try:  # a busy port is said in one line before anything is announced
        sock = bind(host, port)
    except BaseException:
        svc.close()
        raise
    token = ensure_first_admin(svc.engine)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown_host}:{port}"
    app = create_app(service=svc, scheduler=True)
    app.state.freight.base_url = url
    if announce is not None:
        announce(url, token)
    gateway = _start_gateway(settings, host, gateway_port, gateway_env) if gateway_port else None
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # uvicorn[standard]: the C HTTP parser and libuv's event loop cost a fraction of the pure-Python
        # h11 parser and asyncio's default loop per request (see docs/benchmarks.md, issue 8)
        loop=LOOP,
        http=HTTP,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    try:
        _Server(config).run(sockets=[sock])
    finally:
        if gateway is not None:
            gateway()
        svc.close()
    log.info("stopped; running jobs keep running and are re-attached on the next start")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, opened before the server says it serves: a port in use is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(
                f"{host}:{port} is already in use (another `freight up`, or `make run`?)",
                where="--port",
                hint="stop it, or give another --port",
            ) from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}", where="--host/--port") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal that stopped it once it has shut down, so the process dies of
    it: a traceback for Ctrl-C, and no cleanup after it. A graceful stop is a normal exit here."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        tune_for_serving()  # the app and the scheduler are up: what they hold now stays

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def _start_gateway(settings: Settings, host: str, port: int, env: str) -> Callable[[], None]:
    """The builds gateway in a thread of its own (signals stay with the main server); returns a stop
    function."""
    from freight.services.gateway import ServiceGateway

    builds = Builds.open(settings)
    releases = builds.gateway(env, may_preview=request_checker(builds.store.engine))
    server = uvicorn.Server(
        uvicorn.Config(
            # services' hosts and prefixes first, then the builds' releases
            ServiceGateway(builds.store.engine, releases),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), name="freight-gateway", daemon=True)
    thread.start()
    log.info("builds gateway serving %s releases", env, extra={"url": f"http://{host}:{port}"})

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        builds.close()

    return stop
