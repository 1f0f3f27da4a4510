"""The scheduler: decide, then apply (the shape of Nomad's scheduler).

    events.py   runtime observations: what the node shows about an attempt (started, exited with
                its record, vanished), gathered as plain data. The only reading of the runtime.
    decide.py   pure decisions: observations + now -> steps with their reasons (recovery of an
                attempt, due timers). No I/O, no clock, no threads.
    apply.py    one compare-and-set transaction per tick, transitions checked against the table and
                fenced by the lease's token; side effects (`Effects`) only after it commits.
    spawn.py    attempts being started on a small pool (a tick's starts as one batch per worker,
                `start_many`), collected by the loop on a later tick; ended attempts released on
                the same pool, one task per tick.
    changes.py  what other processes changed (submissions, retries, cancellations), followed from a
                cursor on the events table; a full rescan of waiting jobs every 15 s as a safety net.
    nodes.py    the nodes jobs may be placed on (this host, or a cluster's), with what is placed there.
    endlog.py   the jobs each commit ended, kept in memory for a waiter in the same process
                (JobService.wait), which then needs no query per wake-up.
    nodewatch.py a cluster's nodes listed (and attempts on a returning node stopped) on threads of
                their own: the tick takes the newest listing and never waits on an agent.

The loop, one mixin per step over the state they share (`Scheduler` combines them):
    loop.py     the thread: lifecycle (lease, socket, wake pipe), the tick, introspection.
    state.py    what the loop holds (`SchedulerState`, `Running`): a cache of the store.
    recovery.py on start: re-attach to attempts that still run, settle those that ended meanwhile.
    sync.py     read what changed (change feed, cancels, queue settings); admit waiting jobs to the
                retry timer, their dependencies or their queue.
    reap.py     watch running attempts for their exit (pidfds, records, a cluster's batched polls).
    settle.py   an ended attempt: its outcome recorded, retried per policy or made final.
    cluster.py  cluster nodes that died: their attempts lost (and retried per policy).
    timers.py   timeouts (TERM, then KILL after the grace) and elapsed retry backoffs.
    place.py    fair queues -> nodes while jobs fit; claims (write-ahead) and the capacity they hold.
    act.py      commit a tick's batch (fenced), then the side effects: signals, releases, spawns.
                (loop.py holds a batch that only says attempts began running for one tick.)

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
