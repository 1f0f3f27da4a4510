"""Gateway claims: which service or builds app a host name or path prefix belongs to.

A host name is one owner's: a service's `hosts` or a builds app's. A service's prefix may not be one
another service holds, nor overlap a builds app's prefix (one inside the other), except an app served
at `/`, the catch-all that every more specific prefix is carved out of. `check` runs inside the
transaction that writes the service, so two deploys cannot claim the same host at once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, text

from freight.db.schema import build_apps, services
from freight.errors import ConflictError
from freight.services.spec import ServiceSpec

#: the PostgreSQL advisory lock that serialises claim checks ("freight" in ASCII)
LOCK_KEY = 0x66726569676874


@dataclass(frozen=True)
class Owner:
    kind: str  # "service" or "app"
    name: str
    hosts: tuple[str, ...]
    prefix: str | None

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def owners(conn: Connection, *, besides: str | None = None) -> list[Owner]:
    """Every service (but `besides`) and builds app that routes something."""
    found: list[Owner] = []
    for name, raw in conn.execute(select(services.c.name, services.c.spec)):
        if name == besides:
            continue
        spec = ServiceSpec.model_validate_json(raw)
        if spec.hosts or spec.prefix:
            found.append(Owner("service", name, tuple(spec.hosts), spec.prefix))
    for app, hosts, prefix in conn.execute(select(build_apps.c.app, build_apps.c.hosts, build_apps.c.prefix)):
        found.append(Owner("app", app, tuple(h.lower() for h in json.loads(hosts)), prefix))
    return found


def app_hosts(conn: Connection) -> frozenset[str]:
    """The host names builds apps serve (a service's prefix-only route does not apply on them)."""
    rows = conn.execute(select(build_apps.c.hosts))
    return frozenset(host.lower() for (hosts,) in rows for host in json.loads(hosts))


def collision(spec: ServiceSpec, others: list[Owner]) -> ConflictError | None:
    """The first of `spec`'s hosts or prefix that someone in `others` already holds, or None."""
    for host in spec.hosts:
        for other in others:
            if host in other.hosts:
                return ConflictError(
                    f"host {host} is already routed to {other}",
                    where="hosts",
                    hint="a host name belongs to one service or app; remove it there first",
                )
    prefix = spec.prefix
    if prefix is None:
        return None
    for other in others:
        theirs = other.prefix
        if theirs is None:
            continue
        if other.kind == "service" and theirs == prefix:
            return ConflictError(
                f"prefix {prefix} is already routed to {other}",
                where="prefix",
                hint="a prefix belongs to one service; pick another",
            )
        if other.kind == "app" and theirs != "/" and (prefix.startswith(theirs) or theirs.startswith(prefix)):
            return ConflictError(
                f"prefix {prefix} overlaps {other}'s prefix {theirs}",
                where="prefix",
                hint="a service's prefix may not take paths a builds app serves; pick another",
            )
    return None


@contextlib.contextmanager
def claiming(engine: Engine) -> Iterator[Connection]:
    """A write transaction in which claim checks are serialised: PostgreSQL takes an advisory lock for
    the transaction; on SQLite, BEGIN IMMEDIATE already holds the one write lock."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        yield conn
