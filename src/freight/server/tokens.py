"""API tokens: created with a random secret, stored only as its sha256, scoped to queues or admin.

A token reads `frt_<id>_<secret>`. The id is public (listed, used to revoke); the secret is shown once.
Looking a token up is one indexed read of its hash, so checking a request costs no more than that.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine, insert, or_, select, update
from sqlalchemy.exc import OperationalError

from freight.db.schema import tokens
from freight.errors import ConflictError, NotFoundError, UserError

_QUEUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_PREFIX = "frt_"
#: last_used_at is written at most this often per token, so busy clients do not write on every call
_TOUCH_EVERY = 60.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's name and what it may touch."""

    token_id: str
    name: str
    admin: bool
    #: None means every queue
    queues: frozenset[str] | None

    def may_use(self, queue: str) -> bool:
        return self.admin or self.queues is None or queue in self.queues

    @property
    def scope(self) -> str:
        if self.admin:
            return "admin"
        if self.queues is None:
            return "all queues"
        return ", ".join(sorted(self.queues))


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    admin: bool
    queues: list[str] | None
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    engine: Engine, name: str, *, queues: list[str] | None = None, admin: bool = False
) -> tuple[TokenInfo, str]:
    """Store a new token; returns its info and the token text (shown once, never stored)."""
    name = name.strip()
    if not name or len(name) > 128:
        raise UserError("a token needs a name of 1 to 128 characters", where="name")
    if admin and queues:
        raise UserError("an admin token is not limited to queues", where="queues", hint="drop --queue")
    for index, queue in enumerate(queues or []):
        if not _QUEUE.match(queue):
            raise UserError(
                f"queue name {queue!r} must be letters, digits, '.', '_' or '-'", where=f"queues.{index}"
            )
    token_id = secrets.token_hex(4)
    text = f"{_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    now = time.time()
    scope = sorted(set(queues)) if queues else None
    with engine.begin() as conn:
        conn.execute(
            insert(tokens).values(
                id=token_id,
                name=name,
                secret_hash=hash_secret(text),
                queues=json.dumps(scope) if scope is not None else None,
                admin=admin,
                created_at=now,
            )
        )
    return TokenInfo(token_id, name, admin, scope, now, None, None), text


def authenticate(engine: Engine, text: str) -> Principal | None:
    """The principal a token stands for, or None if it is unknown or revoked."""
    if not text.startswith(_PREFIX) or len(text) > 200:
        return None
    digest = hash_secret(text)
    with engine.connect() as conn:
        row = conn.execute(select(tokens).where(tokens.c.secret_hash == digest)).first()
    # The lookup is by hash, so timing reveals nothing of the secret; compare anyway for clarity.
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.secret_hash, digest):
        return None
    now = time.time()
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
        # Bookkeeping only: a store whose write lock is stuck must not turn every read away too.
        with contextlib.suppress(OperationalError), engine.begin() as conn:
            conn.execute(update(tokens).where(tokens.c.id == row.id).values(last_used_at=now))
    scope = json.loads(row.queues) if row.queues is not None else None
    return Principal(
        token_id=row.id,
        name=row.name,
        admin=bool(row.admin),
        queues=frozenset(scope) if scope is not None else None,
    )


def list_tokens(engine: Engine, *, include_revoked: bool = False) -> list[TokenInfo]:
    query = select(tokens).order_by(tokens.c.created_at)
    if not include_revoked:
        query = query.where(tokens.c.revoked_at.is_(None))
    with engine.connect() as conn:
        return [_info(row) for row in conn.execute(query)]


def revoke_token(engine: Engine, ref: str) -> TokenInfo:
    """Revoke by id, or by name when exactly one live token has it."""
    with engine.begin() as conn:
        rows = conn.execute(
            select(tokens)
            .where(or_(tokens.c.id == ref, tokens.c.name == ref))
            .where(tokens.c.revoked_at.is_(None))
        ).all()
        by_id = [r for r in rows if r.id == ref]
        if by_id:
            rows = by_id
        if not rows:
            raise NotFoundError(f"no live token {ref!r}", where="token", hint="see `freight tokens ls`")
        if len(rows) > 1:
            raise ConflictError(
                f"{len(rows)} tokens are named {ref!r}", where="token", hint="revoke by id instead"
            )
        now = time.time()
        conn.execute(update(tokens).where(tokens.c.id == rows[0].id).values(revoked_at=now))
        return replace(_info(rows[0]), revoked_at=now)


def any_token_ever(engine: Engine) -> bool:
    """Whether a token was ever created here (revoked ones count): the first start makes an admin."""
    with engine.connect() as conn:
        return conn.execute(select(tokens.c.id).limit(1)).first() is not None


def ensure_first_admin(engine: Engine) -> str | None:
    """On a store with no tokens at all, create an admin token and return its text (else None)."""
    if any_token_ever(engine):
        return None
    _, text = create_token(engine, "admin", admin=True)
    return text


def _info(row: Any) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        admin=bool(row.admin),
        queues=json.loads(row.queues) if row.queues is not None else None,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def request_checker(engine: Engine) -> Callable[[Any], bool]:
    """For the builds gateway's release previews: does a request (Starlette's) carry a valid API
    token, as `Authorization: Bearer <token>` or the web UI's sign-in cookie?"""

    def check(request: Any) -> bool:
        header = request.headers.get("authorization") or ""
        scheme, _, value = header.partition(" ")
        text = value.strip() if scheme.lower() == "bearer" else request.cookies.get("freight_token")
        return bool(text) and authenticate(engine, text) is not None

    return check
