"""HMAC signing of cache entries and dependency snapshots.

Every machine that shares a cache must share the key (FREIGHT_BUILD_CACHE_KEY); without it, each
FREIGHT_HOME makes its own key on first use, which is right for a local cache only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from typing import Any

from freight.config import Settings

KEY_ENV = "FREIGHT_BUILD_CACHE_KEY"


def cache_key(settings: Settings, environ: Mapping[str, str] | None = None) -> bytes:
    environ = os.environ if environ is None else environ
    if environ.get(KEY_ENV):
        return environ[KEY_ENV].encode()
    if settings.extra.get("build_cache_key"):
        return settings.extra["build_cache_key"].encode()
    path = settings.home / "builds" / "cache.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        # Two processes racing here both write a key; link() keeps the first and the other reads it.
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()


def canonical(meta: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in meta.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(key: bytes, meta: Mapping[str, Any]) -> str:
    return hmac.new(key, canonical(meta), hashlib.sha256).hexdigest()


def verify(key: bytes, meta: Mapping[str, Any]) -> bool:
    given = meta.get("signature")
    return isinstance(given, str) and hmac.compare_digest(given, sign(key, meta))
