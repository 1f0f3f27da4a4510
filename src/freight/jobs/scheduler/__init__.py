"""The scheduler: decide, then apply (the shape of Nomad's scheduler).

    events.py   runtime observations: what the node shows about an attempt (started, exited with
                its record, vanished), gathered as plain data. The only reading of the runtime.
    decide.py   pure decisions: observations + now -> steps with their reasons (recovery of an
                attempt, due timers). No I/O, no clock, no threads.
    apply.py    one compare-and-set transaction per tick, transitions checked against the table and
                fenced by the lease's token; side effects (`Effects`) only after it commits.
    spawn.py    attempts being started on a small pool, collected by the loop on a later tick; ended
                attempts released on the same pool, one task per tick.
    changes.py  what other processes changed (submissions, retries, cancellations), followed from a
                cursor on the events table; a full rescan of waiting jobs every 15 s as a safety net.
    loop.py     the thread: sync from the store, reap, timers, place, commit, act.

The store is the source of truth; the loop's collections are a cache rebuilt by `recover()`.
"""

from freight.jobs.scheduler.loop import (
    LEASE,
    LEASE_TTL,
    LeaseHeldError,
    Running,
    Scheduler,
)
from freight.runtime.capacity import detect_capacity

__all__ = ["LEASE", "LEASE_TTL", "LeaseHeldError", "Running", "Scheduler", "detect_capacity"]
