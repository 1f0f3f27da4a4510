"""Pipeline runs a server follows in the background (the counterpart of `builds.background`).

The server owns the runs it starts, as Airflow or Dagster do: `PipelineRunner.start` submits the step
jobs, then a follower thread per run records each step as its job ends (`PipelineRunner.follow`), so
a run goes on when the client that started it goes away. At startup the server follows again the runs
an earlier process left running (`Followers.resume`), and stops its followers at shutdown (`stop`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from freight.config import Settings
from freight.errors import NotFoundError
from freight.jobs.client import JobClient
from freight.pipelines.runner import PipelineRunner
from freight.pipelines.store import RunStore

log = logging.getLogger("freight.server")

#: how long one wait on a run's jobs lasts before the follower looks at its stop event again
FOLLOW_POLL = 0.25
FOLLOW_SLICE = 1.0


class Followers:
    """One daemon thread per run this server follows, all stopped by one event at shutdown."""

    def __init__(self, client: JobClient, store: RunStore, settings: Settings) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def runner(self, config_path: Path | None = None) -> PipelineRunner:
        return PipelineRunner(self.client, self.store, self.settings, config_path=config_path)

    def follow(self, run_id: str) -> None:
        """Record the run's steps as they end, in the background, unless a thread here already does."""
        with self._lock:
            running = self._threads.get(run_id)
            if self._stop.is_set() or (running is not None and running.is_alive()):
                return
            thread = threading.Thread(
                target=self._follow, args=(run_id,), name=f"pipeline-run-{run_id}", daemon=True
            )
            self._threads[run_id] = thread
            thread.start()

    def resume(self) -> None:
        """Follow the runs an earlier server process left running (it stopped or crashed)."""
        for run in self.store.list(limit=10_000, state="running"):
            log.info("following pipeline run %s again", run.id)
            self.follow(run.id)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    def _follow(self, run_id: str) -> None:
        runner = self.runner()
        try:
            while not self._stop.is_set():
                try:
                    if runner.follow(run_id, poll=FOLLOW_POLL, timeout=FOLLOW_SLICE).state != "running":
                        return
                except NotFoundError:
                    return
                except Exception:  # the store went away for a moment: log it, try again
                    log.exception("following pipeline run %s failed; trying again", run_id)
                    self._stop.wait(1.0)
        finally:
            with self._lock:
                if self._threads.get(run_id) is threading.current_thread():
                    del self._threads[run_id]
