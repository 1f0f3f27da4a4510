"""Looking at a cluster's nodes off the scheduler's thread.

Asking a cluster for its nodes means asking every node's agent, and an agent can hang: on the tick's
thread that stalls the tick past the lease and fences the leader. So a NodeWatch lists the nodes on a
thread of its own (every `interval` seconds, or at once when asked) and hands each listing over; the
tick takes the newest (`take`) and never waits for one. It also stops, on the same thread, what still
runs on a node that answers again after it was declared lost (`stop_attempts`), since that too is a
call to an agent that may not answer.

With `threaded=False` every look happens on the caller's thread (deterministic tests, one-shot
listings): `request` lists at once and `stop_attempts` stops at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from freight.jobs.scheduler.nodes import NodeInfo, NodeSource
from freight.runtime.base import Handle

log = logging.getLogger("freight.scheduler")


class NodeWatch:
    def __init__(
        self,
        source: NodeSource,
        stop: Callable[[Handle], None],
        *,
        interval: float = 1.0,
        threaded: bool = True,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        #: kills an attempt and gives its slot back (the runtime's kill, then its release)
        self._stop_one = stop
        self.interval = interval
        self.threaded = threaded
        self._wake = wake or (lambda: None)
        self._cond = threading.Condition()
        self._asked = False
        self._closing = False
        #: the newest listing not taken yet, and how many listings were made so far
        self._listing: list[NodeInfo] | None = None
        self._version = 0
        #: node id -> attempts to stop there; node ids whose attempts were all stopped
        self._to_stop: dict[str, list[Handle]] = {}
        self._stopped: set[str] = set()
        self._stop_asked = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.threaded and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="freight-nodes", daemon=True)
            self._thread.start()
            threading.Thread(target=self._run_stops, name="freight-node-stops", daemon=True).start()

    def close(self) -> None:
        """Stop the thread (a look in progress is not waited for: it may hang)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def request(self) -> None:
        """Look at the nodes soon (threaded) or now."""
        if not self.threaded:
            self._look()
            return
        with self._cond:
            self._asked = True
            self._cond.notify_all()

    def fresh(self, timeout: float) -> list[NodeInfo] | None:
        """A listing made after this call, waiting at most `timeout` seconds for it (None: none came
        in time). For the rare caller that must know now (a start failed: did its node die?)."""
        if not self.threaded:
            self._look()
            return self.take()
        with self._cond:
            seen = self._version
            self._asked = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._version > seen or self._closing, timeout)
        return self.take()

    def take(self) -> list[NodeInfo] | None:
        """The newest listing since the last take, or None."""
        with self._cond:
            listing, self._listing = self._listing, None
            return listing

    def stop_attempts(self, node_id: str, handles: list[Handle]) -> None:
        """Kill these attempts on `node_id` and give their slots back; `stopped()` names the node
        once all of them were. A failure is tried again at the next look."""
        with self._cond:
            self._to_stop.setdefault(node_id, []).extend(handles)
            self._stop_asked = True
            self._cond.notify_all()
        if not self.threaded:
            self._stop_pending()

    def stopped(self) -> set[str]:
        """Nodes whose attempts to stop were all stopped since the last call."""
        with self._cond:
            done, self._stopped = self._stopped, set()
            return done

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._asked or self._closing, self.interval)
                if self._closing:
                    return
                self._asked = False
            self._look()

    def _run_stops(self) -> None:
        while True:
            with self._cond:
                # a failed stop is tried again after `interval`
                self._cond.wait_for(lambda: self._stop_asked or self._closing, self.interval)
                if self._closing:
                    return
                self._stop_asked = False
            if self._stop_pending():
                self._wake()

    def _look(self) -> None:
        try:
            listing = self.source.list()
        except Exception:
            log.exception("could not list the cluster's nodes; trying again")
            return
        with self._cond:
            self._listing = listing
            self._version += 1
            self._cond.notify_all()
        self._wake()

    def _stop_pending(self) -> bool:
        """Stop what is queued; True when some node's attempts were all stopped."""
        with self._cond:
            work, self._to_stop = self._to_stop, {}
        done = False
        for node_id, handles in work.items():
            failed = []
            for handle in handles:
                try:
                    self._stop_one(handle)
                except Exception:
                    log.exception(
                        "could not stop attempt %s on node %s; trying again", handle.attempt_id, node_id
                    )
                    failed.append(handle)
            with self._cond:
                if failed:
                    self._to_stop.setdefault(node_id, []).extend(failed)
                else:
                    self._stopped.add(node_id)
                    done = True
        return done
