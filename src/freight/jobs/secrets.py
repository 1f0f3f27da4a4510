"""Named secrets: values a job needs (a password, an API key) stored encrypted, given to jobs by name.

    freight secrets set NAME   (the value from stdin)     spec: secrets: {DB_PASSWORD: warehouse-pw}

Values are encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256) under a key from
FREIGHT_SECRET_KEY, or else FREIGHT_HOME/secret.key (made on first use, mode 0600). The store holds
ciphertext only; a value is decrypted when an attempt starts and goes into that attempt's
environment, nowhere else: no API, CLI or UI call returns it, and job logs mask it when shown.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from freight.config import Settings
from freight.db.schema import secrets
from freight.errors import NotFoundError, TerminalError, UserError
from freight.jobs.spec import SECRET_NAME

KEY_ENV = "FREIGHT_SECRET_KEY"
KEY_FILE = "secret.key"
#: values longer than this are files, not secrets
MAX_VALUE = 64 * 1024
#: shorter values are not masked in logs (they would hide ordinary text, and reveal themselves)
MIN_MASKED = 4


def _key(settings: Settings) -> bytes:
    text = os.environ.get(KEY_ENV)
    if text:
        key = text.strip().encode()
    else:
        path = settings.home / KEY_FILE
        try:
            key = path.read_bytes().strip()
        except FileNotFoundError:
            key = _make_key(path)
    try:
        if len(base64.urlsafe_b64decode(key)) != 32:
            raise ValueError
    except ValueError:
        raise UserError(
            "the secrets key is not 32 url-safe base64 bytes",
            where=KEY_ENV if text else str(settings.home / KEY_FILE),
            hint="make one: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())'",
        ) from None
    return key


def _make_key(path: Path) -> bytes:
    key = base64.urlsafe_b64encode(os.urandom(32))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as file:
        file.write(key + b"\n")
    return key


def check_name(name: str, where: str = "name") -> str:
    if not SECRET_NAME.match(name):
        raise UserError(
            f"{name!r} is not a secret name", where=where, hint="use letters, digits, '.', '_' or '-'"
        )
    return name


class SecretStore:
    """The `secrets` table, encrypted. Thread-safe (the Fernet instance is)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._fernet: Any = None

    def _cipher(self) -> Any:
        if self._fernet is None:
            from cryptography.fernet import Fernet  # imported here: most commands never need it

            self._fernet = Fernet(_key(self.settings))
        return self._fernet

    def set(self, name: str, value: str) -> bool:
        """Store `value` under `name`; True if it replaced an earlier value."""
        check_name(name)
        if not value:
            raise UserError("a secret cannot be empty", where="value", hint="pipe the value on stdin")
        if len(value.encode()) > MAX_VALUE:
            raise UserError(f"a secret holds at most {MAX_VALUE // 1024} KiB", where="value")
        if "\x00" in value:
            raise UserError("a secret cannot hold NUL characters (it becomes an env variable)", where="value")
        token = self._cipher().encrypt(value.encode()).decode()
        now = time.time()
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(secrets).where(secrets.c.name == name).values(value=token, updated_at=now)
            )
            if moved.rowcount:
                return True
            conn.execute(insert(secrets).values(name=name, value=token, created_at=now, updated_at=now))
            return False

    def names(self) -> list[dict[str, Any]]:
        """Every secret's name and times; never a value."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(secrets.c.name, secrets.c.created_at, secrets.c.updated_at).order_by(secrets.c.name)
            )
            return [dict(r._mapping) for r in rows]

    def remove(self, name: str) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(delete(secrets).where(secrets.c.name == name)).rowcount:
                raise NotFoundError(f"no secret {name!r}", where="name", hint="see `freight secrets ls`")

    def missing(self, conn: Any, names: Iterable[str]) -> list[str]:
        """Which of `names` are not stored (checked at submit, in the submitter's transaction)."""
        wanted = set(names)
        if not wanted:
            return []
        have = {r.name for r in conn.execute(select(secrets.c.name).where(secrets.c.name.in_(wanted)))}
        return sorted(wanted - have)

    def values(self, names: Iterable[str]) -> dict[str, str]:
        """Decrypted values of `names`. Raises TerminalError for one removed since the submit, or one
        that does not decrypt (the key changed)."""
        wanted = set(names)
        if not wanted:
            return {}
        from cryptography.fernet import InvalidToken

        with self.engine.connect() as conn:
            rows = conn.execute(select(secrets.c.name, secrets.c.value).where(secrets.c.name.in_(wanted)))
            found = {r.name: r.value for r in rows}
        gone = sorted(wanted - found.keys())
        if gone:
            raise TerminalError(f"secret {gone[0]!r} was removed; set it again with `freight secrets set`")
        out: dict[str, str] = {}
        for name, token in found.items():
            try:
                out[name] = self._cipher().decrypt(token.encode()).decode()
            except InvalidToken:
                raise TerminalError(
                    f"secret {name!r} does not decrypt with this key ({KEY_ENV} or {KEY_FILE} changed)"
                ) from None
        return out


def mask_bytes(data: bytes, values: Iterable[bytes]) -> bytes:
    """`data` with each value overwritten by as many *s (longest first): lengths and offsets stay."""
    for value in sorted(values, key=len, reverse=True):
        if value in data:
            data = data.replace(value, b"*" * len(value))
    return data
