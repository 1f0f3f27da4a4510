"""RemoteJobClient: the JobClient over HTTP, for talking to a `freight up` server (FREIGHT_URL).

It mirrors JobService's public methods (submit, get, list_jobs, wait, cancel, retry, logs, events,
definitions, queues), so the CLI prints the same output in either mode. The server's JSON errors come
back as the same UserError subclasses the embedded service raises, with their field path.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from freight.errors import (
    ConflictError,
    FreightError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
    UserError,
)
from freight.jobs.client import JobView
from freight.jobs.spec import JobSpec

API = "/api/v1"
#: the server answers a wait after at most 30 s; ask for a little less so no proxy times out first
_WAIT_SLICE = 25.0
_PAGE_MAX = 1000


def _q(part: str) -> str:
    """A path segment, quoted so an id can never reach another route."""
    return quote(part, safe="")


class ServerUnreachable(UserError):
    """No answer from FREIGHT_URL: the server is down or restarting, or the address is wrong."""


def _error(response: httpx.Response) -> FreightError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("message") or response.reason_phrase or "request failed")
    where = body.get("where")
    hint = body.get("hint")
    status = response.status_code
    if status == 401:
        return UserError(
            message,
            where="FREIGHT_TOKEN",
            hint="set FREIGHT_TOKEN to a token from `freight tokens create` or the one `freight up` printed",
        )
    kinds: dict[int, type[UserError]] = {
        403: PermissionDeniedError,
        404: NotFoundError,
        409: ConflictError,
    }
    if status in kinds:
        return kinds[status](message, where=where, hint=hint)
    if 400 <= status < 500:
        return UserError(message, where=where, hint=hint)
    if status in (502, 503, 504):
        return TransientError(f"the freight server is unavailable ({status}): {message}")
    return FreightError(f"the freight server failed ({status}): {message}")


class RemoteJobClient:
    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"User-Agent": "freight-cli", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteJobClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing -----------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """One API call; the decoded JSON body, or the server's error raised as a FreightError."""
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = timeout
        try:
            response = self._http.request(
                method, f"{API}{path}", json=json, params=params, headers=headers, **extra
            )
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise _error(response)
        return response.json() if response.content else None

    def _unreachable(self, exc: Exception) -> ServerUnreachable:
        return ServerUnreachable(
            f"cannot reach the freight server at {self.url}: {exc}",
            where="FREIGHT_URL",
            hint="is `freight up` running there?",
        )

    # --- the scheduler (it runs on the server) ------------------------------------------------------

    def scheduler_holder(self) -> str | None:
        holder = self.request("GET", "/nodes")["scheduler"]
        return str(holder) if holder else None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The server runs the scheduler; nothing to start here."""
        yield None

    def poke(self) -> None:
        """The server pokes its scheduler on every submission."""

    # --- submit -------------------------------------------------------------------------------------

    def submit(self, spec: JobSpec | dict[str, Any], *, definition: str | None = None) -> JobView:
        if isinstance(spec, JobSpec):
            body = spec.model_dump(mode="json", exclude_unset=definition is not None)
        else:
            body = dict(spec)
        path = "/jobs" if definition is None else f"/definitions/{_q(definition)}/jobs"
        return JobView.from_dict(self.request("POST", path, json=body))

    def submit_many(self, specs: Sequence[JobSpec]) -> list[JobView]:
        if not specs:
            return []
        body = {"jobs": [s.model_dump(mode="json") for s in specs]}
        return [JobView.from_dict(d) for d in self.request("POST", "/jobs/batch", json=body)["jobs"]]

    # --- read ---------------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobView:
        return JobView.from_dict(self.request("GET", f"/jobs/{_q(job_id)}"))

    def list_jobs(
        self,
        *,
        state: str | None = None,
        queue: str | None = None,
        label: dict[str, str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> list[JobView]:
        views: list[JobView] = []
        while len(views) < limit:
            params: dict[str, Any] = {"limit": min(_PAGE_MAX, limit - len(views))}
            if state:
                params["state"] = state
            if queue:
                params["queue"] = queue
            if label:
                params["label"] = [f"{k}={v}" for k, v in label.items()]
            if cursor:
                params["cursor"] = cursor
            page = self.request("GET", "/jobs", params=params)
            views.extend(JobView.from_dict(d) for d in page["jobs"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        return views

    def events(self, job_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": min(limit, 1000)}
        if job_id:
            return list(self.request("GET", f"/jobs/{_q(job_id)}/events", params=params))
        return list(self.request("GET", "/events", params=params))

    def wait(self, job_ids: Sequence[str], timeout: float | None = None) -> list[JobView]:
        ids = list(job_ids)
        if not ids:
            return []
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = (
                _WAIT_SLICE if deadline is None else max(0.0, min(_WAIT_SLICE, deadline - time.monotonic()))
            )
            views: list[JobView] = []
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
                # only the first chunk waits; the rest just reads the states it ended with
                body = {"ids": chunk, "timeout": left if start == 0 else 0.0}
                reply = self.request("POST", "/jobs/wait", json=body, timeout=left + 30.0)
                views.extend(JobView.from_dict(d) for d in reply["jobs"])
            done = all(v.terminal for v in views)
            if done or (deadline is not None and time.monotonic() >= deadline):
                return views

    # --- control ------------------------------------------------------------------------------------

    def cancel(self, job_id: str) -> JobView:
        return JobView.from_dict(self.request("POST", f"/jobs/{_q(job_id)}/cancel"))

    def retry(self, job_id: str) -> JobView:
        return JobView.from_dict(self.request("POST", f"/jobs/{_q(job_id)}/retry"))

    def logs(self, job_id: str, *, attempt: int | None = None, follow: bool = False) -> Iterator[bytes]:
        params: dict[str, Any] = {"follow": str(follow).lower()}
        if attempt is not None:
            params["attempt"] = attempt
        # a followed log may be silent for a long time: no read timeout
        timeout = httpx.Timeout(30.0, read=None if follow else 60.0)
        try:
            with self._http.stream(
                "GET",
                f"{API}/jobs/{_q(job_id)}/logs",
                params=params,
                timeout=timeout,
                headers={"Accept": "text/plain"},
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def purge(self, *, older_than: float, dry_run: bool = False) -> list[str]:
        body = {"older_than": older_than, "dry_run": dry_run}
        return list(self.request("POST", "/jobs/gc", json=body)["ids"])

    # --- definitions and queues ---------------------------------------------------------------------

    def register_definition(self, name: str, template: dict[str, Any], description: str | None = None) -> int:
        body = {"name": name, "spec": template, "description": description}
        return int(self.request("POST", "/definitions", json=body)["version"])

    def definitions(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/definitions"))

    def delete_definition(self, name: str, version: int | None = None) -> int:
        ref = name if version is None else f"{name}:{version}"
        return int(self.request("DELETE", f"/definitions/{_q(ref)}")["deleted"])

    def set_queue(
        self,
        name: str,
        *,
        weight: float | None = None,
        priority: int | None = None,
        paused: bool | None = None,
    ) -> dict[str, Any]:
        body = {
            k: v for k, v in (("weight", weight), ("priority", priority), ("paused", paused)) if v is not None
        }
        return dict(self.request("PUT", f"/queues/{_q(name)}", json=body))

    def queues(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/queues"))
