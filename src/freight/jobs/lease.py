"""The scheduler lease: one holder per store, with a fencing token.

A lease row names its holder (`host:pid:nonce`), when it expires and a **fencing token** that goes up
by one each time the lease changes hands. The holder keeps the token it took and every one of its
commits checks it in the same transaction (`fence`): a scheduler that stalled (a long GC pause, a
stopped VM) and lost its lease meanwhile cannot commit after the new holder took over, because its
token is no longer the row's.

Expiry is judged by the store's clock (`db_now`), never by comparing the wall clocks of the hosts
that share the store: the holder renews and the standby checks against one clock.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, literal_column, select, update
from sqlalchemy.sql.elements import ColumnElement

from freight.db.schema import leases
from freight.errors import FreightError
from freight.jobs.liveness import SQLITE_NOW, holder_alive, holder_dead


class LeaseLostError(FreightError):
    """This scheduler's lease was taken over (its fencing token is stale): it must step down."""


def holder_id() -> str:
    """host:pid:nonce — unique per scheduler, even for two in one process."""
    return f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(4)}"


def db_now(conn: Connection) -> ColumnElement[Any]:
    """The store's clock as float seconds since the epoch, as an SQL expression."""
    return _now_sql(conn.dialect.name)


def _now_sql(dialect: str) -> ColumnElement[Any]:
    return literal_column(SQLITE_NOW if dialect == "sqlite" else "extract(epoch from clock_timestamp())")


def try_lease(conn: Connection, name: str, holder: str, ttl: float) -> int | None:
    """Take or renew a lease; its fencing token, or None when another live holder has it. A lease
    held by a dead process on this host is taken over at once."""
    now = db_now(conn)
    row = conn.execute(select(leases, now.label("now")).where(leases.c.name == name)).first()
    if row is None:
        conn.execute(insert(leases).values(name=name, holder=holder, expires_at=now + ttl, token=1))
        return 1
    ours = row.holder == holder
    if not (ours or row.expires_at < row.now or holder_dead(row.holder)):
        return None
    token = int(row.token) if ours else int(row.token) + 1
    result = conn.execute(
        update(leases)
        .where(and_(leases.c.name == name, leases.c.holder == row.holder, leases.c.token == row.token))
        .values(holder=holder, expires_at=now + ttl, token=token)
    )
    return token if result.rowcount == 1 else None


def fence(conn: Connection, name: str, holder: str, token: int, ttl: float) -> None:
    """Check, in the caller's transaction, that `holder` still holds the lease with `token` (and
    renew it); raise LeaseLostError otherwise, so the transaction rolls back. On PostgreSQL the
    update locks the row until the commit, so a takeover waits for this commit and follows it."""
    result = conn.execute(
        _fence_statement(conn.dialect.name),
        {"f_name": name, "f_holder": holder, "f_token": token, "f_ttl": ttl},
    )
    if result.rowcount != 1:
        raise LeaseLostError(f"lost the {name} lease (fencing token {token} is stale)")


_FENCES: dict[str, Any] = {}


def _fence_statement(dialect: str) -> Any:
    """The fencing update, built once per dialect: it runs in every scheduler commit, and building
    it (operators, coercions) cost more than executing it."""
    statement = _FENCES.get(dialect)
    if statement is None:
        statement = _FENCES[dialect] = (
            update(leases)
            .where(
                and_(
                    leases.c.name == bindparam("f_name"),
                    leases.c.holder == bindparam("f_holder"),
                    leases.c.token == bindparam("f_token"),
                )
            )
            .values(expires_at=_now_sql(dialect) + bindparam("f_ttl"))
        )
    return statement


def release_lease(conn: Connection, name: str, holder: str) -> None:
    conn.execute(
        update(leases).where(and_(leases.c.name == name, leases.c.holder == holder)).values(expires_at=0)
    )


def lease_holder(conn: Connection, name: str) -> str | None:
    """Who holds the lease now (by the store's clock), if anyone."""
    row = conn.execute(
        select(leases.c.holder, leases.c.expires_at, db_now(conn).label("now")).where(leases.c.name == name)
    ).first()
    if row is None or not holder_alive(row.holder, row.expires_at, row.now):
        return None
    return str(row.holder)
