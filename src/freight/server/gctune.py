"""The garbage collector's settings for a long-running server.

Each API request allocates thousands of short-lived objects, so CPython's default thresholds
(700, 10, 10) run a full collection every fraction of a second under load, and a full collection
walks every object the process holds: the app, SQLAlchemy's and pydantic's caches, all imported
modules. It holds the event loop, and every request in flight, for tens to hundreds of milliseconds
on a busy machine: in bench/api.py (50 clients on SQLite) it was the p99 (see docs/benchmarks.md).
Once the server is up, what it holds lives as long as the process: freeze it out of the collector's
walks, and collect the young generation less often. Cycles are still collected.
"""

from __future__ import annotations

import gc

#: (young, middle, old): a young collection every 10,000 net allocations instead of 700
THRESHOLDS = (10_000, 20, 20)


def tune_for_serving() -> None:
    """Call once the server has started (imports done, caches built)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
