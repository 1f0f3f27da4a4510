"""Attempts being spawned, and ended ones released, on a small thread pool; spawns are collected by
the loop on a later tick.

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
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from freight.config import Settings
from freight.errors import FreightError
from freight.jobs.scheduler.events import HANDLE_FILE, describe
from freight.jobs.store import JobRecord
from freight.runtime.base import AttemptRequest, Handle, Limits, Runtime

if TYPE_CHECKING:
    from freight.jobs.scheduler.loop import Running
    from freight.jobs.secrets import SecretStore
    from freight.runtime.jobuser import JobUser

log = logging.getLogger("freight.scheduler")

#: what a spawn returns: the handle (or None and why not) and when it started
Spawned = tuple[Handle | None, str | None, float]


#: all a job sees of the server's environment unless its queue lets it inherit the whole of it
JOB_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TERM")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def attempt_request(
    job: JobRecord,
    run: Running,
    settings: Settings,
    base_env: dict[str, str],
    user: JobUser | None = None,
) -> AttemptRequest:
    """What the runtime starts: the job's command as the job user (unless its queue let it run as
    root), with an allowlisted environment (unless its queue let it inherit the server's). Its
    secrets are added on the spawn thread (Spawner._spawn_one): decrypting is I/O."""
    spec = job.spec
    if spec.inherit_env:
        env = base_env.copy()
    else:
        env = {k: base_env[k] for k in JOB_BASE_ENV if k in base_env}
        env.setdefault("PATH", DEFAULT_PATH)
        for name in spec.pass_env:
            if name.endswith("*"):
                env.update((k, v) for k, v in base_env.items() if k.startswith(name[:-1]))
            elif name in base_env:
                env[name] = base_env[name]
    ids = None
    if spec.user != "root" and user is not None:
        ids = (user.uid, user.gid)
        env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
    env.update(spec.env)
    env["FREIGHT_JOB_ID"] = job.id
    env["FREIGHT_JOB_ATTEMPT"] = env["FREIGHT_ATTEMPT"] = str(run.number)
    #: which node runs it: this machine's name, or the Ray node's id on a cluster
    env["FREIGHT_NODE"] = run.node
    res = spec.resources
    return AttemptRequest(
        attempt_id=run.attempt_id,
        argv=spec.argv(),
        env=env,
        cwd=spec.cwd,
        limits=Limits(cpus=res.cpus, memory=res.memory, pids=res.pids),
        log_path=settings.log_path(job.id, run.number),
        user=ids,
        container=spec.container(),
        node=run.node or None,
    )


class Spawner:
    def __init__(
        self,
        runtime: Runtime,
        clock: Callable[[], float],
        workers: int,
        wake: Callable[[], None],
        *,
        secrets: SecretStore | None = None,
    ) -> None:
        self.runtime = runtime
        #: named secrets are decrypted here, on the spawn thread, into one attempt's env only
        self.secrets = secrets
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
                future = self._executor().submit(self._spawn_one, request, job.spec.secrets)
            self.inflight.append((job, run, future))
            future.add_done_callback(self._finished)

    def release(self, handles: list[Handle]) -> None:
        """Give ended attempts' slots back, all in one task on the pool: killing what a job left in
        its cgroup reads the cgroup's member list, which costs the loop's thread too much per job."""
        if handles:
            self._executor().submit(self._release_all, list(handles))

    def _release_all(self, handles: list[Handle]) -> None:
        for handle in handles:
            try:
                self.runtime.release(handle)
            except Exception:  # that attempt's alone; its slot is looked at again when next taken
                log.exception("could not release attempt %s", handle.attempt_id)

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

    def _spawn_one(self, request: AttemptRequest, secret_names: dict[str, str] | None = None) -> Spawned:
        if secret_names:
            try:
                if self.secrets is None:
                    raise FreightError("this scheduler has no secret store")
                values = self.secrets.values(secret_names.values())
            except Exception as exc:  # the job fails saying why; the tick never does
                problem = exc if isinstance(exc, FreightError) else f"cannot read its secrets: {exc}"
                return None, str(problem), self.clock()
            request = replace(request, env=request.env | {var: values[n] for var, n in secret_names.items()})
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
