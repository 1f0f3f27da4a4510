"""`POST /api/v1/hooks/git`: a GitHub-style push builds what changed and deploys where configured.

The body's HMAC (`X-Hub-Signature-256: sha256=<hex>`, keyed with the hook secret) is checked before
anything is parsed; a missing or wrong signature is a 401 and starts nothing. The body is streamed into
the HMAC and refused (413) past `MAX_BODY` bytes (a declared Content-Length that big is refused before
reading), so an unsigned caller can make the server hold at most that much. The delivery status
(`GET .../{trigger_id}`) takes the server's API token, like the rest of the API. A push to a known
repository is answered 202 at once and handled in the background:

1. fetch the repository into a work tree kept under FREIGHT_HOME (its node_modules stay warm),
2. check out the pushed commit and build what changed since `before` (everything after a force push),
3. deploy each built app whose freight.toml maps the branch to an environment.

Mount it with::

    router = create_git_hook_router(secret, GitBuildTrigger(settings, client, repos).handle)
    app.include_router(router)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from freight.builds.api import Builds
from freight.builds.background import BackgroundRun, BackgroundRuns, new_id
from freight.builds.plan import PlanOptions
from freight.builds.progress import Reporter
from freight.builds.runner import RunOptions
from freight.builds.workspace import load_workspace
from freight.config import Settings
from freight.errors import FreightError, NotFoundError, UserError
from freight.jobs.client import JobClient

SECRET_ENV = "FREIGHT_GIT_HOOK_SECRET"
#: "owner/repo=clone-url-or-path,owner/other=..." : the repositories pushes may build.
REPOS_ENV = "FREIGHT_BUILD_REPOS"
#: GitHub caps a webhook payload at 25 MB; a push names its commits and files, far less in practice.
MAX_BODY = 5 * 1024 * 1024
_ZERO = re.compile(r"^0+$")
_SHA = re.compile(r"^[0-9a-f]{7,64}$")


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    if not secret or not header:
        return False
    return hmac.compare_digest(signature(secret, body), header.strip())


@dataclass(frozen=True)
class PushEvent:
    repository: str
    ref: str
    before: str
    after: str
    pusher: str | None = None
    changed: frozenset[str] = frozenset()

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None

    @property
    def deleted(self) -> bool:
        return bool(_ZERO.match(self.after))

    @property
    def created(self) -> bool:
        return bool(_ZERO.match(self.before))


def parse_push(payload: Any) -> PushEvent:
    if not isinstance(payload, dict):
        raise UserError("a push payload must be a JSON object", where="body")
    repo = payload.get("repository")
    name = repo.get("full_name") if isinstance(repo, dict) else None
    if not isinstance(name, str) or not name:
        raise UserError("missing repository.full_name", where="body.repository.full_name")
    for key in ("ref", "before", "after"):
        if not isinstance(payload.get(key), str):
            raise UserError(f"missing {key}", where=f"body.{key}")
    for key in ("before", "after"):
        if not _SHA.match(payload[key]):
            raise UserError(f"{key} is not a commit id", where=f"body.{key}")
    changed: set[str] = set()
    for commit in payload.get("commits") or []:
        if isinstance(commit, dict):
            for kind in ("added", "modified", "removed"):
                changed.update(str(p) for p in commit.get(kind) or [])
    pusher = payload.get("pusher")
    return PushEvent(
        repository=name,
        ref=payload["ref"],
        before=payload["before"],
        after=payload["after"],
        pusher=pusher.get("name") if isinstance(pusher, dict) else None,
        changed=frozenset(changed),
    )


PushHandler = Callable[[PushEvent], dict[str, Any]]


async def _read_capped(request: Request) -> bytes | None:
    """The body, or None when it is (or says it is) larger than MAX_BODY."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _problem(error: UserError, status: int | None = None) -> JSONResponse:
    """Bad input answered in the API's error shape (status, message, where, hint): the router may be
    mounted where the server's exception handlers are not."""
    body = {"status": status or error.status_code, "message": error.message, "where": error.where}
    return JSONResponse({**body, "hint": error.hint}, status_code=status or error.status_code)


def create_git_hook_router(
    secret: str | bytes | Callable[[], bytes],
    on_push: PushHandler,
    *,
    status: Callable[[str], dict[str, Any] | None] | None = None,
    status_dependencies: Sequence[Any] = (),
    path: str = "/api/v1/hooks/git",
) -> APIRouter:
    """The webhook route. `secret` may be a callable so a rotated secret is read per request.
    `status_dependencies` guard the delivery status route (the server passes its token check)."""
    router = APIRouter()

    def current_secret() -> bytes:
        value = secret() if callable(secret) else secret
        return value.encode() if isinstance(value, str) else value

    @router.post(path, status_code=202)
    async def git_push(request: Request) -> JSONResponse:
        key = current_secret()
        header = request.headers.get("x-hub-signature-256")
        if not key or not header:  # nothing could verify: do not read the body at all
            return _problem(UserError("bad or missing signature", where="X-Hub-Signature-256"), 401)
        body = await _read_capped(request)
        if body is None:
            too_big = UserError(f"the body is larger than {MAX_BODY // (1024 * 1024)} MiB", where="body")
            return _problem(too_big, 413)
        if not verify_signature(key, body, header):
            return _problem(UserError("bad or missing signature", where="X-Hub-Signature-256"), 401)
        event_type = request.headers.get("x-github-event", "push")
        if event_type == "ping":
            return JSONResponse({"ok": True}, status_code=200)
        if event_type != "push":
            return JSONResponse({"ignored": f"event {event_type!r}"}, status_code=202)
        try:
            event = parse_push(json.loads(body))
        except json.JSONDecodeError as exc:
            return _problem(UserError(f"the body is not JSON: {exc.msg}", where="body"))
        except UserError as exc:
            return _problem(exc)
        if event.deleted or event.branch is None:
            return JSONResponse({"ignored": "not a branch push"}, status_code=202)
        try:
            accepted = on_push(event)
        except UserError as exc:
            return _problem(exc)
        return JSONResponse(accepted, status_code=202)

    if status is not None:
        lookup = status

        @router.get(path + "/{trigger_id}", dependencies=list(status_dependencies))
        async def git_push_status(trigger_id: str) -> JSONResponse:
            found = lookup(trigger_id)
            if found is None:
                return _problem(NotFoundError(f"no trigger {trigger_id!r}", where="trigger_id"))
            return JSONResponse(found)

    return router


@dataclass(kw_only=True)
class Trigger(BackgroundRun):
    """A push being handled: the BackgroundRun fields, plus what was built and deployed."""

    repository: str
    branch: str
    after: str
    built: list[str] = field(default_factory=list)
    deployed: list[dict[str, str]] = field(default_factory=list)


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise FreightError(f"git {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout.strip()


class GitBuildTrigger:
    """Handles pushes for the repositories it knows (full name -> clone URL or local path)."""

    def __init__(
        self,
        settings: Settings,
        client: JobClient,
        repos: Mapping[str, str],
        *,
        builds: Builds | None = None,
        reporter: Reporter | None = None,
        background: bool = True,
    ) -> None:
        self.settings = settings
        self.client = client
        self.repos = dict(repos)
        self.builds = builds or Builds.open(settings)
        self.reporter = reporter
        #: this server's background builds: pushes, and the API's builds (`builds.background`)
        self.runs = BackgroundRuns(background=background)

    @property
    def triggers(self) -> dict[str, Trigger]:
        return {k: r for k, r in self.runs.records.items() if isinstance(r, Trigger)}

    def handle(self, event: PushEvent) -> dict[str, Any]:
        if event.repository not in self.repos:
            raise NotFoundError(
                f"repository {event.repository!r} is not configured for builds",
                where="body.repository.full_name",
            )
        trigger = Trigger(
            id=new_id(), repository=event.repository, branch=event.branch or "", after=event.after
        )
        # keyed by the work tree, so an API build of the same folder waits its turn too
        key = str(self.workdir(event.repository).resolve())
        self.runs.start(trigger, key, lambda t: self._run(event, t))
        return {"accepted": True, "trigger": trigger.id, "after": event.after, "branch": event.branch}

    def status(self, trigger_id: str) -> dict[str, Any] | None:
        found = self.runs.get(trigger_id)
        return found.to_dict() if isinstance(found, Trigger) else None

    def join(self, trigger_id: str, timeout: float | None = None) -> Trigger:
        found = self.runs.join(trigger_id, timeout)
        assert isinstance(found, Trigger)
        return found

    def workdir(self, repository: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "__", repository)
        return self.settings.home / "builds" / "repos" / safe

    def checkout(self, event: PushEvent) -> Path:
        work = self.workdir(event.repository)
        if not (work / ".git").exists():
            work.parent.mkdir(parents=True, exist_ok=True)
            _git(work.parent, "clone", "--quiet", "--no-checkout", self.repos[event.repository], work.name)
        _git(work, "fetch", "--quiet", "--force", "origin", "+refs/heads/*:refs/remotes/origin/*")
        _git(work, "checkout", "--quiet", "--force", "--detach", event.after)
        # Keep node_modules (the warm dependencies); everything else untracked goes.
        _git(work, "clean", "-ffdxq", "-e", "node_modules")
        return work

    def _run(self, event: PushEvent, trigger: Trigger) -> None:
        work = self.checkout(event)
        since = None
        if not event.created:
            known = subprocess.run(
                ["git", "cat-file", "-e", f"{event.before}^{{commit}}"], cwd=work, capture_output=True
            )
            since = event.before if known.returncode == 0 else None
        summary = self.builds.build(
            self.client,
            work,
            PlanOptions(affected_since=since),
            RunOptions(continue_on_error=True, trigger="git", labels={"build.commit": event.after[:40]}),
            reporter=self.reporter,
        )
        trigger.run_id = summary.id
        trigger.built = [r.task for r in summary.results.values() if r.status in ("built", "cached")]
        if not summary.ok:
            trigger.state = "failed"
            failed = [r.task for r in summary.results.values() if r.status == "failed"]
            trigger.error = f"failed: {', '.join(failed)}" if failed else "some tasks did not run"
        ws = load_workspace(work)
        by_slug = {p.slug: p for p in ws.apps}
        for item in summary.releases:
            pkg = by_slug.get(item["app"])
            env = ws.config.deploy_env(pkg.names, trigger.branch) if pkg else None
            if env is None:
                continue
            done = self.builds.store.deploy(
                item["app"], env, item["release"], actor=f"git:{event.pusher or '?'}"
            )
            trigger.deployed.append(
                {"app": item["app"], "env": env, "release": item["release"], "changed": str(done is not None)}
            )


def parse_repos(text: str) -> dict[str, str]:
    repos: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise UserError(f"expected owner/repo=URL, got {item!r}", where=REPOS_ENV)
        repos[name.strip()] = url.strip()
    return repos


def router_from_env(
    settings: Settings,
    client: JobClient,
    environ: Mapping[str, str] | None = None,
    *,
    status_dependencies: Sequence[Any] = (),
) -> tuple[APIRouter, GitBuildTrigger]:
    """The hook wired from FREIGHT_GIT_HOOK_SECRET and FREIGHT_BUILD_REPOS (for `freight up`).

    Without a secret every request is refused with 401: an unsigned hook would let anyone start builds.
    """
    import os

    env = os.environ if environ is None else environ
    trigger = GitBuildTrigger(settings, client, parse_repos(env.get(REPOS_ENV, "")))
    secret = env.get(SECRET_ENV, "").encode()
    router = create_git_hook_router(
        secret, trigger.handle, status=trigger.status, status_dependencies=status_dependencies
    )
    return router, trigger
