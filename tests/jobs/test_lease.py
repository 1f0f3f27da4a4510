"""The scheduler lease: fencing tokens and expiry by the store's clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, update

from freight.config import Settings
from freight.db.engine import open_engine
from freight.db.schema import leases
from freight.jobs.lease import LeaseLostError, db_now, fence, lease_holder, try_lease

TTL = 15.0
OTHER_HOST = "elsewhere:1:aa"  # another machine: never judged dead by a pid check here
NEXT_HOST = "another:2:bb"


@pytest.fixture
def engine(store_settings: Settings) -> Engine:
    return open_engine(store_settings.database_url)


def expire(engine: Engine) -> None:
    """What the passing of the TTL looks like to the store (its clock, not this test's)."""
    with engine.begin() as conn:
        conn.execute(update(leases).values(expires_at=db_now(conn) - 1))


def test_the_token_goes_up_when_the_lease_changes_hands_only(engine: Engine) -> None:
    with engine.begin() as conn:
        first = try_lease(conn, "s", OTHER_HOST, TTL)
        again = try_lease(conn, "s", OTHER_HOST, TTL)  # a renewal keeps it
        refused = try_lease(conn, "s", NEXT_HOST, TTL)
    assert first == again == 1 and refused is None
    expire(engine)
    with engine.begin() as conn:
        taken = try_lease(conn, "s", NEXT_HOST, TTL)
        assert lease_holder(conn, "s") == NEXT_HOST
    assert taken == 2


def test_a_commit_with_a_stale_token_fails_and_writes_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        old = try_lease(conn, "s", OTHER_HOST, TTL)
    assert old is not None
    expire(engine)  # the old holder stalled past its TTL ...
    with engine.begin() as conn:
        new = try_lease(conn, "s", NEXT_HOST, TTL)  # ... and a standby took over
    assert new == old + 1
    with pytest.raises(LeaseLostError, match="stale"), engine.begin() as conn:
        conn.execute(update(leases).values(holder="scribble"))  # stands for the old leader's writes
        fence(conn, "s", OTHER_HOST, old, TTL)
    with engine.begin() as conn:
        fence(conn, "s", NEXT_HOST, new, TTL)  # the new holder's commits pass
        assert lease_holder(conn, "s") == NEXT_HOST  # and the old one's writes were rolled back


def test_expiry_is_judged_by_the_store_clock(engine: Engine) -> None:
    """A holder whose expires_at is in the store's future holds, whatever this host's clock says."""
    with engine.begin() as conn:
        try_lease(conn, "s", OTHER_HOST, TTL)
        assert lease_holder(conn, "s") == OTHER_HOST
        assert try_lease(conn, "s", NEXT_HOST, TTL) is None
    expire(engine)
    with engine.begin() as conn:
        assert lease_holder(conn, "s") is None
