"""Read a JSON API page by page: pagination by page number, by cursor or by the Link header; bearer
or basic auth; retries of 429 and 5xx answers that honour Retry-After; a request rate limit.

`HttpSource.pages()` yields each page's records (a list of dicts). Time goes through `clock` and
`sleep`, so the limiter and the backoff are tested without waiting.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from freight.connectors.connections import expand, redact
from freight.errors import TerminalError, UserError

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF = 60.0


class RateLimiter:
    """At most `per_second` requests a second: each request waits until 1/rate after the last one."""

    def __init__(
        self,
        per_second: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.clock, self.sleep = clock, sleep
        self.next_at: float | None = None

    def wait(self) -> float:
        """Sleep until the next request may go; returns how long it slept."""
        now = self.clock()
        pause = max(0.0, (self.next_at or now) - now)
        if pause:
            self.sleep(pause)
        self.next_at = max(now, self.next_at or now) + self.interval
        return pause


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (then the time until it)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff(attempt: int, header: str | None) -> float:
    """How long to wait before retry number `attempt` (1-based): Retry-After when the server gave it,
    else 0.5 s doubling, capped."""
    told = retry_after(header)
    if told is not None:
        return min(told, MAX_BACKOFF)
    return min(0.5 * 2.0 ** (attempt - 1), MAX_BACKOFF)


def dig(body: Any, path: str | None) -> Any:
    """`a.b.c` inside a JSON body (None when a part is missing)."""
    if not path:
        return body
    for part in path.split("."):
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body


@dataclass
class HttpSource:
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    auth: dict[str, Any] | None = None
    records: str | None = None
    pagination: dict[str, Any] = field(default_factory=dict)
    rate_limit: float | None = None
    max_retries: int = 5
    timeout: float = 30.0
    where: str = "extract-http"
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    #: What happened, for the step's result.
    requests: int = 0
    retries: int = 0

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        limiter = RateLimiter(self.rate_limit, self.clock, self.sleep)
        kind = self.pagination.get("type", "none")
        params = dict(self.params)
        url: str | None = expand(self.url, where=f"{self.where}.url")
        page = int(self.pagination.get("start", 1))
        if kind == "page":
            params[self.pagination.get("page_param", "page")] = page
            if self.pagination.get("size_param") and self.pagination.get("size"):
                params[self.pagination["size_param"]] = self.pagination["size"]
        with httpx.Client(timeout=self.timeout, headers=self._headers(), auth=self._basic()) as client:
            for _ in range(int(self.pagination.get("max_pages", 100_000))):
                assert url is not None
                response = self._get(client, limiter, url, params)
                body = self._json(response)
                rows = dig(body, self.records)
                if rows is None:
                    rows = []
                if not isinstance(rows, list):
                    raise UserError(
                        f"the response's `{self.records or '(body)'}` is a {type(rows).__name__}, not a list",
                        where=f"{self.where}.records",
                        hint="point `records` at the list of rows, e.g. data.items",
                    )
                yield [r if isinstance(r, dict) else {"value": r} for r in rows]
                if kind == "page":
                    size = self.pagination.get("size")
                    if not rows or (size and len(rows) < int(size)):
                        return
                    page += 1
                    params[self.pagination.get("page_param", "page")] = page
                elif kind == "cursor":
                    nxt = dig(body, self.pagination.get("cursor_path"))
                    if nxt in (None, "", False):
                        return
                    params[self.pagination.get("cursor_param", "cursor")] = nxt
                elif kind == "link":
                    link = response.links.get("next", {}).get("url")
                    if not link:
                        return
                    url, params = str(response.url.join(link)), {}
                else:
                    return
        raise TerminalError(f"{self.where}: stopped after max_pages pages; the API kept saying there is more")

    def _get(
        self, client: httpx.Client, limiter: RateLimiter, url: str, params: dict[str, Any]
    ) -> httpx.Response:
        attempt = 0
        while True:
            limiter.wait()
            self.requests += 1
            try:
                # params={} would strip the query a Link URL carries
                response = client.get(url, params=params or None)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise TerminalError(f"GET {redact(url)} failed: {redact(str(exc))}") from None
                attempt += 1
                self.retries += 1
                self.sleep(backoff(attempt, None))
                continue
            if response.status_code in RETRY_STATUS and attempt < self.max_retries:
                attempt += 1
                self.retries += 1
                self.sleep(backoff(attempt, response.headers.get("retry-after")))
                continue
            if response.status_code >= 400:
                text = redact(response.text[:200].replace("\n", " "))
                message = f"GET {redact(str(response.url))} answered {response.status_code}: {text}"
                if response.status_code in (400, 401, 403, 404):
                    raise UserError(message, where=f"{self.where}.url", hint="check the URL, params and auth")
                raise TerminalError(message + f" (after {attempt} retries)")
            return response

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise TerminalError(
                f"GET {redact(str(response.url))} did not answer JSON "
                f"({response.headers.get('content-type', 'no content type')})"
            ) from None

    def _headers(self) -> dict[str, str]:
        headers = {k: expand(v, where=f"{self.where}.headers.{k}") for k, v in self.headers.items()}
        headers.setdefault("accept", "application/json")
        if self.auth and self.auth.get("type") == "bearer":
            headers["authorization"] = "Bearer " + expand(
                self.auth["token"], where=f"{self.where}.auth.token"
            )
        return headers

    def _basic(self) -> httpx.BasicAuth | None:
        if not self.auth or self.auth.get("type") != "basic":
            return None
        return httpx.BasicAuth(
            expand(str(self.auth["username"]), where=f"{self.where}.auth.username"),
            expand(str(self.auth["password"]), where=f"{self.where}.auth.password"),
        )
