"""Apply a tick's decisions: one compare-and-set transaction carrying the fencing token, then the
side effects, never before.

The batch (store.Batch) checks every move against the transition table as it is recorded; `commit`
writes it in one transaction that first checks the leader's fencing token (lease.fence), so a
scheduler that lost its lease commits nothing. `Effects` are what may happen only after that commit:
starting attempts, signals, giving slots back, deleting the shim records whose outcome the commit
recorded (write-ahead: a crash before the commit finds the record again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from freight.jobs.lease import fence
from freight.jobs.store import Batch, JobRecord, apply_batch
from freight.runtime.base import Handle

if TYPE_CHECKING:
    from freight.jobs.scheduler.loop import Running


@dataclass
class Effects:
    """Side effects to perform after the tick's commit."""

    start: list[tuple[JobRecord, Running]] = field(default_factory=list)
    kill: list[Running] = field(default_factory=list)
    release: list[Handle] = field(default_factory=list)
    #: record directories of attempts settled from them (no handle to release them with)
    remove_records: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.start or self.kill or self.release or self.remove_records)


@dataclass(frozen=True)
class Leader:
    """Who may commit: the lease's holder and the fencing token it took."""

    lease: str
    holder: str
    token: int
    ttl: float


def commit(engine: Engine, leader: Leader, batch: Batch, now: float) -> set[str]:
    """Write `batch` in one transaction, fenced (raises LeaseLostError, writing nothing, when the
    token is stale). Returns the jobs whose compare-and-set lost (someone else moved them first)."""
    with engine.begin() as conn:
        # First, so that on PostgreSQL the lease row stays locked until this commit: a takeover
        # waits for it and follows it, never the other way round.
        fence(conn, leader.lease, leader.holder, leader.token, leader.ttl)
        return apply_batch(conn, batch, now)
