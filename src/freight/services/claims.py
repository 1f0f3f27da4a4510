"""A service's gateway claims: its hosts and prefix, checked with the rule builds apps share
(db/claims.py) inside the transaction that writes the service."""

from __future__ import annotations

from sqlalchemy import Connection

from freight.db import claims
from freight.db.claims import app_hosts, claiming
from freight.services.spec import ServiceSpec

__all__ = ["app_hosts", "check", "claiming"]


def check(conn: Connection, name: str, spec: ServiceSpec) -> None:
    """Raise ConflictError when another service or a builds app holds one of `spec`'s routes."""
    claims.check(conn, claims.Owner(claims.SERVICE, name, tuple(spec.hosts), spec.prefix))
