"""Attempts being spawned: on a small thread pool, collected by the loop on a later tick.

A spawn blocks its caller until the child has exec'd (vfork), and the loop need not wait for that.
Whatever a spawn raises stays with its attempt (it becomes "could not start: ..."). The handle is
written beside the shim's records as soon as the spawn returns, so a scheduler that dies before the
handle reaches the store is still found by recovery (events.observe_attempt).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from freight.config import Settings
from freight.errors import FreightError
from freight.jobs.scheduler.events import HANDLE_FILE, describe
from freight.jobs.store import JobRecord
from freight.runtime.base import AttemptRequest, Handle, Limits, Runtime

if TYPE_CHECKING:
    from freight.jobs.scheduler.loop import Running

log = logging.getLogger("freight.scheduler")

#: what a spawn returns: the handle (or None and why not) and when it started
Spawned = tuple[Handle | None, str | None, float]


def attempt_request(
    job: JobRecord, run: Running, settings: Settings, base_env: dict[str, str]
) -> AttemptRequest:
    spec = job.spec
    env = base_env.copy() if spec.inherit_env else {}
    env.update(spec.env)
    env["FREIGHT_JOB_ID"] = job.id
    env["FREIGHT_ATTEMPT"] = str(run.number)
    res = spec.resources
    return AttemptRequest(
        attempt_id=run.attempt_id,
        argv=spec.argv(),
        env=env,
        cwd=spec.cwd,
        limits=Limits(cpus=res.cpus, memory=res.memory, pids=res.pids),
        log_path=settings.log_path(job.id, run.number),
        container=spec.container(),
    )


class Spawner:
    def __init__(
        self, runtime: Runtime, clock: Callable[[], float], workers: int, wake: Callable[[], None]
    ) -> None:
        self.runtime = runtime
        self.clock = clock
        self.workers = max(1, workers)
        #: called once when the last spawn in flight finishes (not once per spawn)
        self.wake = wake
        self.inflight: list[tuple[JobRecord, Running, Future[Spawned]]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._unfinished = 0
        self._lock = threading.Lock()

    def start(self, items: list[tuple[JobRecord, Running, AttemptRequest | str]]) -> None:
        """Spawn these attempts; a str in place of a request is why it could not even be asked."""
        if not items:
            return
        with self._lock:
            self._unfinished += len(items)
        for job, run, request in items:
            future: Future[Spawned]
            if isinstance(request, str):
                future = Future()
                future.set_result((None, request, self.clock()))
            else:
                future = self._executor().submit(self._spawn_one, request)
            self.inflight.append((job, run, future))
            future.add_done_callback(self._finished)

    def collect(self) -> list[tuple[JobRecord, Running, Spawned]]:
        """The spawns that finished since the last call, in the order they were asked for."""
        done, pending = [], []
        for job, run, future in self.inflight:
            if future.done():
                done.append((job, run, future.result()))
            else:
                pending.append((job, run, future))
        self.inflight = pending
        return done

    def shutdown(self) -> bool:
        """Wait for the spawns in flight; True if there was a pool (spawns may await collecting)."""
        if self._pool is None:
            return False
        self._pool.shutdown(wait=True)
        self._pool = None
        return True

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="freight-spawn")
        return self._pool

    def _finished(self, _future: Future[Spawned]) -> None:
        with self._lock:
            self._unfinished -= 1
            last = self._unfinished <= 0
        if last:
            self.wake()

    def _spawn_one(self, request: AttemptRequest) -> Spawned:
        try:
            handle = self.runtime.start(request)
        except FreightError as exc:
            return None, str(exc), self.clock()
        except Exception as exc:  # one attempt's failure, whatever it is, is that attempt's alone
            log.exception("starting attempt %s failed", request.attempt_id)
            return None, describe(exc), self.clock()
        started_at = self.clock()
        with contextlib.suppress(OSError):
            Path(handle.record_dir, HANDLE_FILE).write_text(handle.to_json())
        return handle, None, started_at
