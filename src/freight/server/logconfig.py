"""Structured server logs: one line per event with named fields, as JSON or as key=value text.

`FREIGHT_LOG_FORMAT=json` gives JSON lines (for a log shipper); the default is readable key=value.
Each request is logged once by `AccessLog`, which also feeds the request metrics.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from freight.server.metrics import Metrics

access_log = logging.getLogger("freight.server.access")
API_PREFIX = "/api/v1"

# color_message: uvicorn's ANSI-coloured copy of the message
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        body.update(_fields(record))
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        parts = [f"{stamp} {record.levelname.lower():<7} {record.getMessage()}"]
        for key, value in _fields(record).items():
            text = str(value)
            parts.append(f"{key}={json.dumps(text) if (' ' in text or not text) else text}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Send freight's and uvicorn's logs to stderr in the chosen format (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    handler.set_name("freight-server")
    for name in ("freight", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if h.get_name() != "freight-server"]
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    # AccessLog replaces uvicorn's access log (which has no route, duration or caller)
    logging.getLogger("uvicorn.access").disabled = True


def route_label(scope: Scope) -> str:
    """The matched route's path template ("/api/v1/jobs/{job_id}"), so metric labels stay few.
    Routes of included routers carry their path without the router's prefix; put /api/v1 back."""
    path = getattr(scope.get("route"), "path", None)
    if not path:
        return "unmatched"
    if scope["path"].startswith(API_PREFIX) and not path.startswith(API_PREFIX):
        return API_PREFIX + str(path)
    return str(path)


class AccessLog:
    """ASGI middleware: log each HTTP request once and count it in the metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        timed = False

        def finish() -> None:
            nonlocal timed
            if timed:
                return
            timed = True
            elapsed = time.perf_counter() - started
            route = route_label(scope)
            self.metrics.observe_request(scope["method"], route, status, elapsed)
            principal = getattr(scope.get("state", {}).get("principal"), "name", None)
            quiet = route in ("/metrics", "/healthz") or scope["path"].startswith("/static/")
            if quiet and status < 400:
                return  # scrapes, probes and assets would drown the log
            access_log.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={"route": route, "ms": round(elapsed * 1000, 2), "token": principal},
            )

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                finish()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            finish()
