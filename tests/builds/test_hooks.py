"""The git webhook: HMAC checked first; a push builds what changed and deploys where configured."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from freight.builds.api import Builds
from freight.builds.gateway import serving
from freight.builds.hooks import GitBuildTrigger, PushEvent, create_git_hook_router, signature
from freight.builds.sample import git_commit
from freight.config import Settings
from freight.jobs.service import JobService

SECRET = b"s3cret"
ZERO = "0" * 40


def payload(before: str, after: str, repo: str = "acme/web", ref: str = "refs/heads/main") -> bytes:
    body = {
        "ref": ref,
        "before": before,
        "after": after,
        "repository": {"full_name": repo, "clone_url": "https://example.invalid/acme/web.git"},
        "pusher": {"name": "ana"},
        "commits": [{"added": [], "modified": ["apps/app-03/src/main.js"], "removed": []}],
    }
    return json.dumps(body).encode()


def post(http: httpx.Client, body: bytes, sig: str | None, event: str = "push") -> httpx.Response:
    headers = {"content-type": "application/json", "x-github-event": event}
    if sig is not None:
        headers["x-hub-signature-256"] = sig
    return http.post("/api/v1/hooks/git", content=body, headers=headers)


def test_bad_signature_is_401_and_starts_nothing() -> None:
    calls: list[PushEvent] = []

    def on_push(event: PushEvent) -> dict[str, Any]:
        calls.append(event)
        return {"accepted": True}

    app = FastAPI()
    app.include_router(create_git_hook_router(SECRET, on_push))
    body = payload("a" * 40, "b" * 40)
    with serving(app) as url, httpx.Client(base_url=url) as http:
        unsigned = post(http, body, None)
        assert unsigned.status_code == 401 and unsigned.json()["where"] == "X-Hub-Signature-256"
        assert post(http, body, "sha256=" + "0" * 64).status_code == 401
        assert post(http, body, signature(b"other secret", body)).status_code == 401
        tampered = body.replace(b"refs/heads/main", b"refs/heads/evil")
        assert post(http, tampered, signature(SECRET, body)).status_code == 401
        assert calls == []
        assert post(http, b"{}", signature(SECRET, b"{}"), event="ping").status_code == 200
        bad = b'{"ref": "refs/heads/main"}'
        answer = post(http, bad, signature(SECRET, bad))
        assert answer.status_code == 400 and answer.json()["where"] == "body.repository.full_name"
        assert answer.json()["message"] == "missing repository.full_name"
        not_json = post(http, b"nope", signature(SECRET, b"nope"))
        assert (not_json.status_code, not_json.json()["where"]) == (400, "body")
        deleted = payload("a" * 40, ZERO)
        assert post(http, deleted, signature(SECRET, deleted)).json() == {"ignored": "not a branch push"}
        assert calls == []
        ok = post(http, body, signature(SECRET, body))
        assert ok.status_code == 202 and ok.json() == {"accepted": True}
    assert len(calls) == 1 and calls[0].branch == "main" and calls[0].pusher == "ana"
    assert calls[0].changed == frozenset({"apps/app-03/src/main.js"})


def test_push_builds_what_changed_and_deploys_where_configured(
    template: Path, tmp_path: Path, settings: Settings, platform: JobService, builds: Builds
) -> None:
    origin = tmp_path / "origin"
    subprocess.run(["git", "clone", "-q", str(template), str(origin)], check=True)
    toml = origin / "freight.toml"
    toml.write_text(
        toml.read_text()
        + '\n[deploy]\nbranches = { main = "staging" }\n\n[apps.app-03]\ndeploy = { main = "prod" }\n'
    )
    before = git_commit(origin, "deploy rules")
    (origin / "apps/app-03/src/main.js").open("a").write("export const pushed = 1;\n")
    (origin / "apps/app-06/src/main.js").open("a").write("export const pushed = 6;\n")
    after = git_commit(origin, "change two apps")

    trigger = GitBuildTrigger(settings, platform, {"acme/web": str(origin)}, builds=builds)
    app = FastAPI()
    app.include_router(create_git_hook_router(lambda: SECRET, trigger.handle, status=trigger.status))
    with serving(app) as url, httpx.Client(base_url=url) as http:
        unknown = payload(before, after, repo="acme/other")
        assert post(http, unknown, signature(SECRET, unknown)).status_code == 404
        body = payload(before, after)
        answer = post(http, body, signature(SECRET, body))
        assert answer.status_code == 202
        trigger_id = answer.json()["trigger"]
        done = trigger.join(trigger_id, timeout=120)
        status = http.get(f"/api/v1/hooks/git/{trigger_id}").json()
    assert done.state == "succeeded", done.error
    assert status["state"] == "succeeded" and status["after"] == after
    built = {t for t in done.built if "/app-" in t}
    assert built == {"@sample/app-03#build", "@sample/app-06#build"}  # only what changed since `before`
    deployed = {(d["app"], d["env"]) for d in done.deployed}
    assert deployed == {("app-03", "prod"), ("app-06", "staging")}
    assert builds.store.current("prod") == {
        "app-03": next(d["release"] for d in done.deployed if d["app"] == "app-03")
    }
    assert set(builds.store.current("staging")) == {"app-06"}
    run = builds.store.runs(limit=1)[0]
    assert run["trigger"] == "git" and run["commit"] == after


def test_router_from_env_refuses_everything_without_a_secret(settings: Settings, builds: Builds) -> None:
    from freight.builds.hooks import parse_repos, router_from_env

    assert parse_repos("acme/web=/srv/web.git, acme/api=https://x/api.git") == {
        "acme/web": "/srv/web.git",
        "acme/api": "https://x/api.git",
    }
    router, trigger = router_from_env(settings, client=None, environ={"FREIGHT_BUILD_REPOS": "acme/web=/srv"})  # type: ignore[arg-type]
    assert trigger.repos == {"acme/web": "/srv"}
    app = FastAPI()
    app.include_router(router)
    body = payload("a" * 40, "b" * 40)
    with serving(app) as url, httpx.Client(base_url=url) as http:
        assert post(http, body, signature(b"", body)).status_code == 401
