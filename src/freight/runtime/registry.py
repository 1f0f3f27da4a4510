"""The image registry: a local one run by `freight up` (Debian's docker-registry, the distribution
project), or any registry named by FREIGHT_REGISTRY; and a small client for its HTTP API (v2).

The local registry listens on 127.0.0.1 only and keeps its blobs under FREIGHT_HOME/registry/data; its
address is written to FREIGHT_HOME/registry/address while it runs, so other commands on the same home
find it. Without auth: it is reachable from this machine only.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freight.config import Settings
from freight.errors import TransientError, UserError

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def registry_dir(settings: Settings) -> Path:
    return settings.home / "registry"


def registry_address(settings: Settings) -> str | None:
    """host:port of the registry images go to: FREIGHT_REGISTRY, else the local one if it runs."""
    if settings.registry:
        return settings.registry
    try:
        address = (registry_dir(settings) / "address").read_text().strip()
    except OSError:
        return None
    return address if address and RegistryClient(address).alive() else None


@dataclass
class LocalRegistry:
    address: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_registry(
    settings: Settings, port: int = 0, *, wait: float = 30.0, token_realm: str | None = None
) -> LocalRegistry:
    """Start docker-registry on 127.0.0.1:PORT (0: a free one) with its storage under FREIGHT_HOME.
    With `token_realm` (freight's /api/v1/registry/token), it takes only tokens freight signs
    (runtime/registry_auth.py)."""
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        raise UserError(
            "docker-registry is not installed",
            where="freight up --registry",
            hint="install it (scripts/system-deps.sh installs docker-registry) or set FREIGHT_REGISTRY",
        )
    root = registry_dir(settings)
    (root / "data").mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{port or free_port()}"
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {address}\n" + (_auth_section(settings, token_realm) if token_realm else "")
    )
    log = open(root / "registry.log", "ab")  # noqa: SIM115 - the child keeps it
    try:
        process = subprocess.Popen(
            [binary, "serve", str(config)],
            # the registry reads REGISTRY_* variables as configuration (REGISTRY_AUTH_FILE, podman's
            # auth file, would be taken for its `auth.file` section): its config is the file alone
            env={k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    finally:
        log.close()
    registry = LocalRegistry(address, process)
    client = RegistryClient(address)
    deadline = time.monotonic() + wait
    while not client.alive():
        if process.poll() is not None or time.monotonic() > deadline:
            registry.stop()
            raise TransientError(f"the registry did not start on {address}; see {root / 'registry.log'}")
        time.sleep(0.05)
    (root / "address").write_text(address + "\n")
    return registry


def _auth_section(settings: Settings, realm: str) -> str:
    from freight.runtime.registry_auth import ensure_key, registry_config

    _, cert = ensure_key(settings.home)
    return registry_config(realm, cert)


_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RegistryClient:
    """The parts of the distribution API (v2) freight uses. A registry that asks for a bearer token
    (token auth) gets one from its realm, with the credentials stored for it (podman's auth file,
    see runtime/registry_auth.py) or the ones given."""

    def __init__(self, address: str, timeout: float = 10.0, *, login: tuple[str, str] | None = None) -> None:
        self.address = address
        self.base = f"http://{address}/v2"
        self.timeout = timeout
        self.login = login
        #: scope -> bearer token
        self._tokens: dict[str, str] = {}

    def _request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        status, body, answer = self._send(self.base + path, method, headers or {})
        if status == 401:
            challenge = next((v for k, v in answer.items() if k.lower() == "www-authenticate"), "")
            token = self._bearer(challenge) if challenge.lower().startswith("bearer ") else None
            if token is not None:
                status, body, answer = self._send(
                    self.base + path, method, {**(headers or {}), "Authorization": f"Bearer {token}"}
                )
        return status, body, answer

    def _send(self, url: str, method: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        request = urllib.request.Request(url, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
                return response.status, body, dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def _bearer(self, challenge: str) -> str | None:
        """A token for the challenge's scope from its realm, or None (no credentials, or refused)."""
        params = dict(_CHALLENGE.findall(challenge[len("bearer ") :]))
        realm = params.get("realm")
        scope = params.get("scope", "")
        if scope in self._tokens:
            return self._tokens[scope]
        if not realm:
            return None
        from freight.runtime.registry_auth import credentials

        login = self.login or credentials(self.address)
        if login is None:
            return None
        query = urllib.parse.urlencode(
            [("service", params.get("service", ""))] + [("scope", part) for part in scope.split(" ") if part]
        )
        basic = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        status, body, _ = self._send(f"{realm}?{query}", "GET", {"Authorization": f"Basic {basic}"})
        if status != 200:
            return None
        token = json.loads(body).get("token")
        if not isinstance(token, str):
            return None
        self._tokens[scope] = token
        return token

    def alive(self) -> bool:
        try:
            status, _, _ = self._request("GET", "/")
        except (OSError, ValueError):
            return False
        return status in (200, 401)

    def _checked(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        try:
            return self._request(method, path, headers)
        except OSError as exc:
            raise TransientError(f"registry {self.address} cannot be reached: {exc}") from None

    def repositories(self) -> list[str]:
        status, body, _ = self._checked("GET", "/_catalog?n=1000")
        return list(json.loads(body).get("repositories") or []) if status == 200 else []

    def tags(self, name: str) -> list[str]:
        status, body, _ = self._checked("GET", f"/{name}/tags/list")
        return sorted(json.loads(body).get("tags") or []) if status == 200 else []

    def manifest(self, name: str, reference: str) -> tuple[str, dict[str, Any]] | None:
        """(digest, manifest) of NAME:REFERENCE (a tag or a digest), or None if the registry lacks it."""
        status, body, headers = self._checked(
            "GET", f"/{name}/manifests/{reference}", {"Accept": MANIFEST_TYPES}
        )
        if status != 200:
            return None
        digest = headers.get("Docker-Content-Digest") or headers.get("docker-content-digest") or reference
        return digest, json.loads(body)

    def blob(self, name: str, digest: str) -> bytes | None:
        status, body, _ = self._checked("GET", f"/{name}/blobs/{digest}")
        return bytes(body) if status == 200 else None

    def delete(self, name: str, digest: str) -> bool:
        status, _, _ = self._checked("DELETE", f"/{name}/manifests/{digest}")
        return status == 202
