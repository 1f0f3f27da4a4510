"""Registry token auth tied to freight's API tokens (the Docker/distribution token flow).

The local registry (`freight up --registry`) is configured with `auth: token`: a client without a
bearer token gets 401 naming freight's realm (`/api/v1/registry/token`); it asks there with Basic auth
(any user name, a freight API token as the password) for the repositories and actions it needs, and
freight answers a short-lived JWT (RS256) granting what the token may do:

- `pull` of any repository and the catalog: any valid token;
- `push`: an admin token or one not limited to queues;
- `delete` (and `*`): an admin token.

Denied actions are left out of the grant (the registry then refuses them), as the flow specifies.
The signing key and its self-signed certificate (the registry's `rootcertbundle`) live under
FREIGHT_HOME/registry/auth (the key 0600); the JWT names the key by its libtrust key id (`kid`), which
is how distribution finds it in the bundle.

Clients log in as with `podman login`: credentials (`freight:<API token>`) live in podman's auth file
(REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else /run/containers/UID/auth.json),
so podman's pulls and pushes and freight's own registry client (runtime/registry.py) use the same.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SERVICE = "freight-registry"
ISSUER = "freight"
TOKEN_SECONDS = 300
USER = "freight"


@dataclass(frozen=True)
class Access:
    type: str
    name: str
    actions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


# -- the signing key -------------------------------------------------------------------------------


def auth_dir(home: Path) -> Path:
    return home / "registry" / "auth"


def ensure_key(home: Path) -> tuple[rsa.RSAPrivateKey, Path]:
    """The signing key and the path of its certificate (created on first use)."""
    folder = auth_dir(home)
    key_path, cert_path = folder / "signing-key.pem", folder / "signing-cert.pem"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (key_path.is_file() and cert_path.is_file()):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _write(key_path, pem, 0o600)
            _write(cert_path, _self_signed(key).public_bytes(serialization.Encoding.PEM), 0o644)
    stamp = key_path.stat().st_mtime_ns
    cached = _LOADED.get(key_path)
    if cached is None or cached[0] != stamp:  # loading checks the key: ~90 ms, once per process
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        cached = _LOADED[key_path] = (stamp, loaded)
    return cached[1], cert_path


#: key path -> (its mtime, the loaded key)
_LOADED: dict[Path, tuple[int, rsa.RSAPrivateKey]] = {}


def _self_signed(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "freight registry token signer")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def key_id(key: rsa.RSAPublicKey) -> str:
    """libtrust's key id: the SHA-256 of the DER public key, 240 bits in base32, in 12 groups of 4."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def registry_config(realm: str, cert: Path) -> str:
    """The `auth:` section of the registry's config.yml."""
    return (
        "auth:\n  token:\n"
        f"    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {cert}\n"
    )


# -- grants and tokens -----------------------------------------------------------------------------


def parse_scope(text: str) -> Access | None:
    """`repository:NAME:pull,push` (NAME may hold ':' only in the registry:catalog:* form)."""
    kind, _, rest = text.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name or not actions:
        return None
    return Access(kind, name, tuple(a for a in actions.split(",") if a))


def grant(requested: list[Access], *, admin: bool, all_queues: bool) -> list[Access]:
    """What a token may have of what it asked for (denied actions are dropped)."""
    out: list[Access] = []
    for access in requested:
        if access.type == "registry" and access.name == "catalog":
            allowed = set(access.actions) & {"*"}
        elif access.type == "repository":
            allowed = {"pull"}
            if admin or all_queues:
                allowed.add("push")
            if admin:
                allowed |= {"delete", "*"}
            allowed &= set(access.actions)
        else:
            allowed = set()
        if allowed:
            out.append(Access(access.type, access.name, tuple(sorted(allowed))))
    return out


def mint(
    key: rsa.RSAPrivateKey, subject: str, access: list[Access], *, now: float | None = None
) -> dict[str, Any]:
    """The token endpoint's answer: a signed JWT granting `access` for TOKEN_SECONDS."""
    issued = int(time.time() if now is None else now)
    header = {"typ": "JWT", "alg": "RS256", "kid": key_id(key.public_key())}
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": issued + TOKEN_SECONDS,
        "nbf": issued - 10,
        "iat": issued,
        "jti": secrets.token_hex(16),
        "access": [a.to_dict() for a in access],
    }
    signing_input = f"{_b64(json.dumps(header))}.{_b64(json.dumps(claims))}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input}.{_b64(signature)}"
    stamp = datetime.datetime.fromtimestamp(issued, datetime.UTC).isoformat().replace("+00:00", "Z")
    return {"token": token, "access_token": token, "expires_in": TOKEN_SECONDS, "issued_at": stamp}


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# -- credentials (podman's auth file) --------------------------------------------------------------


def auth_file() -> Path:
    if os.environ.get("REGISTRY_AUTH_FILE"):
        return Path(os.environ["REGISTRY_AUTH_FILE"])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "containers" / "auth.json"
    return Path(f"/run/containers/{os.getuid()}/auth.json")


def credentials(address: str) -> tuple[str, str] | None:
    """(user, password) stored for the registry at `address`, if any."""
    try:
        auths = json.loads(auth_file().read_text()).get("auths") or {}
    except (OSError, ValueError):
        return None
    entry = auths.get(address) or {}
    with contextlib.suppress(ValueError, TypeError):
        user, _, password = base64.b64decode(entry.get("auth") or "").decode().partition(":")
        if password:
            return user, password
    return None


def store_credentials(address: str, password: str, user: str = USER) -> None:
    """What `podman login ADDRESS` would store (written directly: the registry need not be up)."""
    path = auth_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(".freight-auth.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        data.setdefault("auths", {})[address] = {"auth": auth}
        _write(path, json.dumps(data, indent=1).encode(), 0o600)
