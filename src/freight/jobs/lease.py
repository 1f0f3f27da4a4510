"""The scheduler's lease: its name in the store, how long it lasts, and the error when another live
scheduler holds it. Apart from the scheduler so that commands which only read (`freight jobs ls`)
can ask who schedules without importing the scheduler, the runtime and placement."""

from __future__ import annotations

from freight.errors import FreightError

LEASE = "scheduler"
LEASE_TTL = 15.0


class LeaseHeldError(FreightError):
    """Another live scheduler holds the lease on this store."""
