"""Gateway claims: which service or builds app a host name or path prefix belongs to. The one rule
both sides apply (services/store.py when a service is deployed, builds/store.py when an app's route
is set), read from the tables both write; it lives here because builds/ and services/ may not import
each other.

A host name is one owner's: a service's `hosts` or a builds app's. A service's prefix may not be one
another service holds, nor overlap a builds app's prefix (one inside the other), except an app served
at `/`, the catch-all that every more specific prefix is carved out of. Builds apps among themselves
are the builds config's business (several apps share a host under different prefixes). The check runs
inside `claiming`'s transaction, the one that writes the claim, so two writers cannot claim the same
host at once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, text

from freight.db.schema import build_apps, services
from freight.errors import ConflictError

#: the PostgreSQL advisory lock that serialises claim checks ("freight" in ASCII)
LOCK_KEY = 0x66726569676874

SERVICE = "service"
APP = "app"
#: how the claimant moves out of the way, by its kind
_MOVE = {SERVICE: "pick another prefix", APP: "set another `prefix` for the app in freight.toml"}


@dataclass(frozen=True)
class Owner:
    kind: str  # SERVICE or APP
    name: str
    hosts: tuple[str, ...]
    prefix: str | None

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def owners(conn: Connection, *, besides: Owner | None = None) -> list[Owner]:
    """Every service and builds app that routes something, but `besides` (the claimant itself)."""
    found: list[Owner] = []
    for name, raw in conn.execute(select(services.c.name, services.c.spec)):
        spec = json.loads(raw)  # a ServiceSpec as services/store.py stored it (hosts lower-cased)
        hosts, prefix = tuple(spec.get("hosts") or ()), spec.get("prefix")
        if hosts or prefix:
            found.append(Owner(SERVICE, name, hosts, prefix))
    for app, hosts, prefix in conn.execute(select(build_apps.c.app, build_apps.c.hosts, build_apps.c.prefix)):
        found.append(Owner(APP, app, tuple(h.lower() for h in json.loads(hosts)), prefix))
    if besides is None:
        return found
    return [o for o in found if (o.kind, o.name) != (besides.kind, besides.name)]


def app_hosts(conn: Connection) -> frozenset[str]:
    """The host names builds apps serve (a service's prefix-only route does not apply on them)."""
    rows = conn.execute(select(build_apps.c.hosts))
    return frozenset(host.lower() for (hosts,) in rows for host in json.loads(hosts))


def collision(claim: Owner, others: list[Owner]) -> ConflictError | None:
    """The first of `claim`'s hosts or prefix that someone in `others` already holds, or None."""
    rivals = [o for o in others if not (claim.kind == APP and o.kind == APP)]
    for host in claim.hosts:
        for other in rivals:
            if host.lower() in other.hosts:
                return ConflictError(
                    f"host {host.lower()} is already routed to {other}",
                    where="hosts",
                    hint=f"a host name belongs to one service or app; remove it from {other.name} first",
                )
    prefix = claim.prefix
    if prefix is None:
        return None
    for other in rivals:
        theirs = other.prefix
        if theirs is None:
            continue
        if claim.kind == SERVICE and other.kind == SERVICE:
            if theirs == prefix:
                return ConflictError(
                    f"prefix {prefix} is already routed to {other}",
                    where="prefix",
                    hint="a prefix belongs to one service; pick another",
                )
            continue
        app_prefix = theirs if other.kind == APP else prefix
        if app_prefix != "/" and (prefix.startswith(theirs) or theirs.startswith(prefix)):
            return ConflictError(
                f"prefix {prefix} overlaps {other}'s prefix {theirs}",
                where="prefix",
                hint=f"a service's prefix may not take paths a builds app serves; {_MOVE[claim.kind]}",
            )
    return None


def check(conn: Connection, claim: Owner) -> None:
    """Raise ConflictError when someone else holds one of `claim`'s hosts or its prefix."""
    if not (claim.hosts or claim.prefix):
        return
    found = collision(claim, owners(conn, besides=claim))
    if found is not None:
        raise found


@contextlib.contextmanager
def claiming(engine: Engine) -> Iterator[Connection]:
    """A write transaction in which claim checks are serialised: PostgreSQL takes an advisory lock for
    the transaction; on SQLite, BEGIN IMMEDIATE already holds the one write lock."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        yield conn
