"""Registry token auth tied to freight's tokens, on the real registry (distribution) and the real app:
anonymous calls are refused; an admin token's login pushes (podman) and runs the image as a job; a
queue-scoped token pulls but may neither push nor delete; the token endpoint's bad input is one 4xx."""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from freight.builds.gateway import serving
from freight.config import Settings
from freight.errors import TransientError
from freight.jobs.service import JobService
from freight.runtime import create_runtime, images
from freight.runtime.base import AttemptRequest, Container, Limits
from freight.runtime.container import ContainerRuntime
from freight.runtime.registry import LocalRegistry, RegistryClient, start_registry
from freight.runtime.registry_auth import (
    Access,
    ensure_key,
    grant,
    key_id,
    parse_scope,
    store_credentials,
)
from freight.server import create_app
from freight.server.tokens import create_token
from tests.containers import CONTAINERFILE


@dataclass
class Setup:
    url: str
    registry: LocalRegistry
    settings: Settings
    admin: str
    unscoped: str
    scoped: str


@pytest.fixture
def setup(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    svc = JobService.open(settings)
    _, admin = create_token(svc.engine, "admin", admin=True)
    _, unscoped = create_token(svc.engine, "ci")
    _, scoped = create_token(svc.engine, "team", queues=["team"])
    try:
        with serving(create_app(service=svc)) as url:
            registry = start_registry(settings, token_realm=f"{url}/api/v1/registry/token")
            try:
                local = replace(settings, registry=registry.address)
                yield Setup(url, registry, local, admin, unscoped, scoped)
            finally:
                registry.stop()
    finally:
        svc.close()


def context(tmp_path: Path) -> Path:
    folder = tmp_path / f"image-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / "Containerfile").write_text(CONTAINERFILE)
    shutil.copy2("/bin/busybox", folder / "busybox")
    return folder


def test_only_freight_tokens_reach_the_registry(setup: Setup, tmp_path: Path) -> None:
    address = setup.registry.address
    anonymous = httpx.get(f"http://{address}/v2/_catalog")
    assert anonymous.status_code == 401 and "/api/v1/registry/token" in anonymous.headers["www-authenticate"]
    assert RegistryClient(address).repositories() == []  # no login: nothing to see

    with pytest.raises(TransientError, match="pushing"):  # no login: podman may not push
        images.build(context(tmp_path), "nologin:v1", setup.settings)

    store_credentials(address, setup.admin)
    pinned, digest = images.build(context(tmp_path), "authtest:v1", setup.settings)
    assert pinned == f"{address}/authtest@{digest}"
    assert RegistryClient(address).repositories() == ["authtest"]

    # the node pulls and runs it with its login, whatever the job's environment holds
    runtime = ContainerRuntime(create_runtime(setup.settings), setup.settings.home)
    try:
        request = AttemptRequest(
            f"r-{uuid.uuid4().hex[:8]}",
            ["sh", "-c", "cat /www/healthz"],
            {"PATH": "/bin"},
            None,
            Limits(1.0, 64 << 20, 64),
            tmp_path / "run.log",
            container=Container(pinned),
        )
        handle = runtime.start(request)
        outcome = runtime.wait(handle, timeout=120)
        runtime.release(handle)
        assert outcome is not None and outcome.exit_code == 0, request.log_path.read_text()
        assert request.log_path.read_text() == "ok\n"
    finally:
        runtime.remove_leftovers()
        runtime.close()

    team = RegistryClient(address, login=("freight", setup.scoped))
    assert team.manifest("authtest", "v1") is not None  # any token pulls
    assert not team.delete("authtest", digest)  # only an admin deletes
    store_credentials(address, setup.scoped)
    with pytest.raises(TransientError, match="pushing"):  # a queue-scoped token may not push
        images.build(context(tmp_path), "authtest:v2", setup.settings)
    store_credentials(address, setup.unscoped)
    images.build(context(tmp_path), "authtest:v3", setup.settings)  # an unscoped token may
    assert RegistryClient(address).tags("authtest") == ["v1", "v3"]


def test_the_token_endpoint(setup: Setup) -> None:
    endpoint = f"{setup.url}/api/v1/registry/token"
    refused = httpx.get(endpoint, params={"service": "freight-registry"})
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
    wrong = httpx.get(endpoint, auth=("freight", "frt_not-a-token"))
    assert wrong.status_code == 401
    bad = httpx.get(endpoint, params={"scope": "nonsense"}, auth=("freight", setup.admin))
    assert bad.status_code == 400 and "scope" in bad.json()["where"]
    other = httpx.get(endpoint, params={"service": "elsewhere"}, auth=("freight", setup.admin))
    assert other.status_code == 400

    answer = httpx.get(
        endpoint,
        params={"service": "freight-registry", "scope": "repository:app:pull,push,delete"},
        auth=("freight", setup.scoped),
    )
    assert answer.status_code == 200
    token = answer.json()["token"]
    head, body = (json.loads(base64.urlsafe_b64decode(part + "==")) for part in token.split(".")[:2])
    key, _ = ensure_key(setup.settings.home)
    assert head == {"typ": "JWT", "alg": "RS256", "kid": key_id(key.public_key())}
    assert body["sub"] == "team" and body["aud"] == "freight-registry"
    assert body["access"] == [{"type": "repository", "name": "app", "actions": ["pull"]}]


def test_grants() -> None:
    asked = [parse_scope("repository:a/b:pull,push,delete"), parse_scope("registry:catalog:*")]
    requested = [a for a in asked if a is not None]
    assert grant(requested, admin=True, all_queues=True) == [
        Access("repository", "a/b", ("delete", "pull", "push")),
        Access("registry", "catalog", ("*",)),
    ]
    assert grant(requested, admin=False, all_queues=True)[0].actions == ("pull", "push")
    assert grant(requested, admin=False, all_queues=False)[0].actions == ("pull",)
    assert parse_scope("nonsense") is None
