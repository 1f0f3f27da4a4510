"""HttpSource against a local HTTP server: pagination, auth, retries honouring Retry-After, limits."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from freight.connectors.http_source import HttpSource, RateLimiter, backoff, retry_after
from freight.errors import TerminalError, UserError

ITEMS = [{"id": i, "name": f"n{i}", "meta": {"k": i}} for i in range(1, 8)]


class Api:
    """What the server saw, and what it should answer next."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.fail_next: list[tuple[int, str | None]] = []


def handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            api.requests.append((parts.path, query, {k.lower(): v for k, v in self.headers.items()}))
            if api.fail_next:
                status, after = api.fail_next.pop(0)
                self.send_response(status)
                if after is not None:
                    self.send_header("Retry-After", after)
                self.end_headers()
                return
            headers: dict[str, str] = {}
            if parts.path == "/page":
                page, size = int(query["page"][0]), int(query.get("per_page", ["3"])[0])
                body: Any = {"data": ITEMS[(page - 1) * size : page * size]}
            elif parts.path == "/cursor":
                start = int(query.get("after", ["0"])[0])
                chunk = ITEMS[start : start + 3]
                body = {"items": chunk, "next": str(start + 3) if start + 3 < len(ITEMS) else None}
            elif parts.path == "/link":
                start = int(query.get("from", ["0"])[0])
                body = ITEMS[start : start + 4]
                if start + 4 < len(ITEMS):
                    headers["Link"] = f'</link?from={start + 4}>; rel="next"'
            elif parts.path == "/private":
                ok = self.headers.get("Authorization") in (
                    "Bearer s3cret",
                    "Basic " + base64.b64encode(b"me:pw").decode(),
                )
                if not ok:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = ITEMS[:1]
            else:
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def api() -> Iterator[tuple[Api, str]]:
    state = Api()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def ids(source: HttpSource) -> list[int]:
    return [r["id"] for page in source.pages() for r in page]


def test_pagination_by_page_cursor_and_link(api: tuple[Api, str]) -> None:
    _, base = api
    paged = {"type": "page", "size_param": "per_page", "size": 3}
    assert ids(HttpSource(f"{base}/page", records="data", pagination=paged)) == list(range(1, 8))
    cursor = {"type": "cursor", "cursor_param": "after", "cursor_path": "next"}
    assert ids(HttpSource(f"{base}/cursor", records="items", pagination=cursor)) == list(range(1, 8))
    assert ids(HttpSource(f"{base}/link", pagination={"type": "link"})) == list(range(1, 8))


def test_429_and_5xx_are_retried_after_what_retry_after_says(api: tuple[Api, str]) -> None:
    state, base = api
    state.fail_next = [(429, "7"), (503, None)]
    slept: list[float] = []
    source = HttpSource(f"{base}/link", pagination={"type": "link"}, sleep=slept.append)
    assert ids(source) == list(range(1, 8))
    assert slept == [7.0, 1.0] and source.retries == 2


def test_retries_run_out_as_a_terminal_error(api: tuple[Api, str]) -> None:
    state, base = api
    state.fail_next = [(500, "0")] * 3
    with pytest.raises(TerminalError, match="answered 500"):
        ids(HttpSource(f"{base}/link", max_retries=2, sleep=lambda s: None))


def test_bearer_and_basic_auth_come_from_the_environment(
    api: tuple[Api, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, base = api
    monkeypatch.setenv("API_TOKEN", "s3cret")
    monkeypatch.setenv("API_PW", "pw")
    assert ids(HttpSource(f"{base}/private", auth={"type": "bearer", "token": "${API_TOKEN}"})) == [1]
    basic = {"type": "basic", "username": "me", "password": "${API_PW}"}
    assert ids(HttpSource(f"{base}/private", auth=basic)) == [1]
    with pytest.raises(UserError, match="answered 401") as err:
        ids(HttpSource(f"{base}/private"))
    assert "s3cret" not in str(err.value)


def test_records_that_are_not_a_list_are_bad_input(api: tuple[Api, str]) -> None:
    _, base = api
    with pytest.raises(UserError, match="not a list"):
        ids(HttpSource(f"{base}/cursor", records="next"))
    with pytest.raises(UserError, match="answered 404"):
        ids(HttpSource(f"{base}/nothing"))


def test_the_rate_limiter_spaces_requests() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.wait()
    assert slept == [0.25, 0.25]
    now[0] += 10
    assert limiter.wait() == 0.0


def test_retry_after_takes_seconds_or_a_date() -> None:
    assert retry_after("12") == 12.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after("soon") is None
    assert backoff(3, None) == 2.0 and backoff(1, "600") == 60.0
