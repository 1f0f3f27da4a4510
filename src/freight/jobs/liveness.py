"""Whether a lease's holder is alive: the rule the scheduler lease (jobs/lease.py) and the quick
listing (jobs/listing.py) share. Standard library only, so a command that reads the store with sqlite3
judges the lease as the service does."""

from __future__ import annotations

import os

#: the scheduler's lease in the `leases` table
SCHEDULER_LEASE = "scheduler"

#: SQLite's clock as float seconds since the epoch (the store's clock judges expiry, never a host's)
SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


def holder_alive(holder: str, expires_at: float, now: float) -> bool:
    """A lease row's holder holds it: not expired by the store's clock `now`, and not a process of
    this host that is gone."""
    return expires_at >= now and not holder_dead(holder)


def holder_dead(holder: str) -> bool:
    """`holder` (host:pid:nonce) is a process of this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid = rest.split(":", 1)[0]
    if host != os.uname().nodename or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
