"""`freight build` handed to a running server (FREIGHT_URL), from the standard library only.

With FREIGHT_URL set, the server (`freight up`, a warm process: its imports, store and job platform
are already open) builds the workspace at the same absolute path. This client asks it to with
http.client and json, so a handed-over build costs Python's start and a few requests, not the ~0.25 s
of typer, pydantic, httpx and SQLAlchemy the full CLI imports first:

1. `POST /api/v1/builds` with the options (the server plans at once: bad input is its 4xx, said here
   in one line, exit 2);
2. `GET /api/v1/builds/{id}/events?after=N&wait=S`, a long poll: the server answers as soon as there is
   progress or the build ended, and the events are replayed through the same `PlainReporter` as a
   local build's;
3. `GET /api/v1/builds/{id}`: the summary, printed as `freight build` prints it, and its exit code
   (1 when a task failed, 130 when cancelled).

An option it does not know (`--dry`, `--why`, `--cancel`, `--summarize`, a typo) returns None: the
full CLI (`RemoteBuilds`) runs and says what is wrong, if anything is.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from freight.builds.progress import PlainReporter, replay
from freight.builds.results import RunSummary
from freight.config import load_settings
from freight.errors import FreightError, UserError

API = "/api/v1"
#: seconds the server may hold a request for events (as RemoteBuilds.WAIT)
WAIT = 20.0
#: socket timeout: above WAIT, and above the time the server takes to plan a large workspace
TIMEOUT = 60.0
#: an empty page sooner than this means the server did not hold the request: ask again after it
MIN_POLL = 0.25
ENDED = ("succeeded", "failed", "cancelled")
#: Exit codes as cli/main.py and cli/build.py use them.
USER_ERROR_EXIT = 2
CANCELLED_EXIT = 130
TOKEN_HINT = "set FREIGHT_TOKEN to a token from `freight tokens create` or the one `freight up` printed"


@dataclass(frozen=True)
class Request:
    """What `freight build ARGS` asks for, as `POST /builds` takes it."""

    cwd: Path = Path(".")
    packages: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    affected_since: str | None = None
    keep_going: bool = False
    force: bool = False
    no_publish: bool = False
    as_json: bool = False

    def body(self) -> dict[str, Any]:
        return {
            "workspace": str(self.cwd.resolve()),
            "packages": list(self.packages),
            "tasks": list(self.tasks or ("build",)),
            "affected_since": self.affected_since,
            "continue": self.keep_going,
            "force": self.force,
            "publish": False if self.no_publish else None,
        }


_FLAGS = {"--json": "as_json", "--no-publish": "no_publish", "--continue": "keep_going", "--force": "force"}
_VALUES = {
    "--cwd": "cwd",
    "-C": "cwd",
    "--affected-since": "affected_since",
    "--task": "tasks",
    "-t": "tasks",
}


def parse(argv: list[str]) -> Request | None:
    """The command line, when every option is one this client handles; None otherwise."""
    flags: dict[str, bool] = {}
    values: dict[str, Any] = {"tasks": [], "packages": []}
    args = iter(argv)
    for arg in args:
        name, eq, inline = arg.partition("=")
        if arg in _FLAGS:
            flags[_FLAGS[arg]] = True
        elif name in _VALUES and (eq or name == arg):
            value = inline if eq else next(args, None)
            if value is None or value == "" or (not eq and value.startswith("-")):
                return None
            key = _VALUES[name]
            if key == "tasks":
                values["tasks"].append(value)
            else:
                values[key] = value
        elif arg.startswith("-"):
            return None  # --dry, --why, --cancel, --summarize, --help, `--`, a typo: the full CLI
        else:
            values["packages"].append(arg)
    return Request(
        cwd=Path(values.get("cwd", ".")),
        packages=tuple(values["packages"]),
        tasks=tuple(values["tasks"]),
        affected_since=values.get("affected_since"),
        **flags,
    )


def try_remote(argv: list[str], environ: Mapping[str, str] | None = None) -> int | None:
    """Hand `freight build ARGV` to FREIGHT_URL's server; its exit code, or None: the full CLI runs."""
    request = parse(argv)
    if request is None:
        return None
    try:
        settings = load_settings(dict(os.environ if environ is None else environ))
    except FreightError:
        return None  # the full CLI says what is wrong with the settings
    if not settings.url:
        return None
    try:
        client = _Api(settings.url, settings.token)
    except (ValueError, http.client.HTTPException) as exc:  # e.g. a port that is not a number
        return _fail(f"FREIGHT_URL: {settings.url!r} is not a server's URL: {exc}", USER_ERROR_EXIT)
    try:
        return _HandedBuild(client, request).run()
    except UserError as exc:
        return _fail(str(exc), USER_ERROR_EXIT)
    except FreightError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:  # a second Ctrl-C, after the first one's question was answered
        sys.stderr.write("\nfreight: aborted\n")
        return CANCELLED_EXIT
    finally:
        client.close()


def _fail(message: str, code: int) -> int:
    sys.stdout.flush()
    sys.stderr.write(f"error: {message}\n")
    return code


@dataclass
class _HandedBuild:
    api: _Api
    request: Request
    build_id: str = field(default="", init=False)

    def run(self) -> int:
        reporter = PlainReporter(sys.stderr, logs=not self.request.as_json)
        try:
            self.build_id = str(self.api.call("POST", "/builds", self.request.body())["id"])
        except KeyboardInterrupt:
            sys.stderr.write("\nfreight: aborted\n")
            return CANCELLED_EXIT
        try:
            done = self._follow(reporter)
        except KeyboardInterrupt:
            if not self._ask_to_cancel():
                return CANCELLED_EXIT
            self.api.reconnect()  # the interrupted request left the connection mid-answer
            self.api.call("POST", f"/builds/{quote(self.build_id, safe='')}/cancel")
            done = self._follow(reporter)
        summary = done.get("summary")
        if summary is None:
            raise FreightError(f"build {done['id']} on {self.api.url} failed: {done['error']}")
        self._print(summary)
        if summary["status"] == "cancelled":
            return CANCELLED_EXIT
        return 0 if summary["status"] == "ok" else 1

    def _follow(self, reporter: PlainReporter) -> dict[str, Any]:
        """Replay the server's progress as it comes; the build's final record."""
        path = f"/builds/{quote(self.build_id, safe='')}"
        after = 0
        while True:
            asked = time.monotonic()
            page = self.api.call("GET", f"{path}/events?{urlencode({'after': after, 'wait': WAIT})}")
            for event in page["events"]:
                replay(event, reporter)
            after = int(page["next"])
            if page["state"] in ENDED:
                return dict(self.api.call("GET", path))
            if not page["events"] and time.monotonic() - asked < MIN_POLL:
                time.sleep(MIN_POLL)  # a server that does not hold the request (an older one)

    def _print(self, data: dict[str, Any]) -> None:
        """As cli/build.py's _print_summary."""
        if self.request.as_json:
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        else:
            lines = [RunSummary.from_dict(data).table()]
            for item in data["releases"]:
                if item["new"]:
                    lines.append(f"release {item['app']} {item['release']} ({item['files']} files)")
                if item.get("image"):
                    lines.append(f"image {item['app']} {item['image']}")
            sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()

    def _ask_to_cancel(self) -> bool:
        """After Ctrl-C: ask on a terminal (as cli/build.py's _ask_to_cancel); elsewhere say how to
        cancel later."""
        if sys.stdin.isatty():
            sys.stderr.write("\ncancel the build on the server? [y/N]: ")
            sys.stderr.flush()
            try:
                answer = sys.stdin.readline()
            except KeyboardInterrupt:
                answer = ""
            if answer.strip().lower() in ("y", "yes"):
                return True
        sys.stderr.write(
            f"\nthe build {self.build_id} goes on on the server; "
            f"cancel it with `freight build --cancel {self.build_id}`\n"
        )
        return False


class _Api:
    """JSON calls to FREIGHT_URL's /api/v1 over one kept-alive connection; errors as RemoteJobClient
    raises them (the same lines on the terminal)."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        self._https = parts.scheme == "https"
        self._host = parts.netloc
        self._prefix = parts.path.rstrip("/") + API
        self._headers = {"User-Agent": "freight-cli", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, timeout=TIMEOUT)
        return http.client.HTTPConnection(self._host, timeout=TIMEOUT)

    def reconnect(self) -> None:
        self._conn.close()
        self._conn = self._connect()

    def close(self) -> None:
        self._conn.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One call; the decoded JSON answer. A GET on a kept-alive connection the server dropped is
        sent once more on a new one (a POST never is: it might start a second build)."""
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self._conn.request(method, self._prefix + path, body=data, headers=headers)
                response = self._conn.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.reconnect()
                if attempt == 2 or method != "GET":
                    raise self._unreachable(exc) from None
            except (OSError, http.client.HTTPException) as exc:
                raise self._unreachable(exc) from None
        if response.status >= 400:
            raise _error(response.status, response.reason, raw)
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise UserError(
                f"{self.url} answered {method} {API}{path} with something that is not freight's JSON",
                where="FREIGHT_URL",
                hint="point it at `freight up`'s API address (not its gateway or another server)",
            ) from None

    def _unreachable(self, exc: BaseException) -> UserError:
        return UserError(
            f"cannot reach the freight server at {self.url}: {exc}",
            where="FREIGHT_URL",
            hint="is `freight up` running there?",
        )


def _error(status: int, reason: str, raw: bytes) -> FreightError:
    """As jobs/remote.py's _error: 4xx is bad input (exit 2), the rest the server's failure."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("message") or reason or "request failed")
    if status == 401:
        return UserError(message, where="FREIGHT_TOKEN", hint=TOKEN_HINT)
    if 400 <= status < 500:
        return UserError(message, where=body.get("where"), hint=body.get("hint"))
    if status in (502, 503, 504):
        return FreightError(f"the freight server is unavailable ({status}): {message}")
    return FreightError(f"the freight server failed ({status}): {message}")
