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
#: an attempt handed to a batch: its request, the names of its secrets, and where its spawn goes
Asked = tuple[AttemptRequest, "dict[str, str] | None", "Future[Spawned]"]


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
        #: a tick's spawns in a few pool tasks, started in batches (False: one task per attempt)
        self.batch = True

    def start(self, items: list[tuple[JobRecord, Running, AttemptRequest | str]]) -> None:
        """Spawn these attempts; a str in place of a request is why it could not even be asked.
        With `batch` (the default), a tick's spawns go to the pool as one task per worker, each
        starting its share in one call (`start_many`, one launcher round trip) rather than one task
        per attempt: handing each attempt to a thread of its own cost the loop more than its start."""
        if not items:
            return
        with self._lock:
            self._unfinished += len(items)
        asked: list[Asked] = []
        for job, run, request in items:
            future: Future[Spawned] = Future()
            if isinstance(request, str):
                future.set_result((None, request, self.clock()))
            elif self.batch:
                asked.append((request, job.spec.secrets, future))
            else:
                future = self._executor().submit(self._spawn_one, request, job.spec.secrets)
            self.inflight.append((job, run, future))
            future.add_done_callback(self._finished)
        if asked:
            share = -(-len(asked) // min(self.workers, len(asked)))
            for first in range(0, len(asked), share):
                self._executor().submit(self._spawn_batch, asked[first : first + share])

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

    def _spawn_batch(
        self, asked: list[tuple[AttemptRequest, dict[str, str] | None, Future[Spawned]]]
    ) -> None:
        """Start a share of a tick's attempts in one call to the runtime where it can (one launcher
        round trip); each future gets what its attempt's spawn alone would have returned."""
        try:
            start_many = getattr(self.runtime, "start_many", None)
            if start_many is None or len(asked) < 2:
                for request, secret_names, future in asked:
                    future.set_result(self._spawn_one(request, secret_names))
                return
            ready: list[tuple[AttemptRequest, Future[Spawned]]] = []
            for request, secret_names, future in asked:
                with_secrets = self._with_secrets(request, secret_names)
                if isinstance(with_secrets, str):
                    future.set_result((None, with_secrets, self.clock()))
                else:
                    ready.append((with_secrets, future))
            try:
                results: list[Handle | Exception] = start_many([request for request, _ in ready])
            except Exception as exc:  # the runtime's batch call itself failed: each attempt fails alike
                log.exception("starting %d attempts failed", len(ready))
                results = [exc] * len(ready)
            for (request, future), result in zip(ready, results, strict=True):
                future.set_result(self._spawned(request, result))
        except BaseException as exc:  # never leave a future unset: the loop would wait on it forever
            for _, _, future in asked:
                if not future.done():
                    future.set_result((None, describe(exc), self.clock()))
            raise

    def _with_secrets(
        self, request: AttemptRequest, secret_names: dict[str, str] | None
    ) -> AttemptRequest | str:
        """The request with its named secrets decrypted into its env, or why they cannot be read."""
        if not secret_names:
            return request
        try:
            if self.secrets is None:
                raise FreightError("this scheduler has no secret store")
            values = self.secrets.values(secret_names.values())
        except Exception as exc:  # the job fails saying why; the tick never does
            problem = exc if isinstance(exc, FreightError) else f"cannot read its secrets: {exc}"
            return str(problem)
        return replace(request, env=request.env | {var: values[n] for var, n in secret_names.items()})

    def _spawn_one(self, request: AttemptRequest, secret_names: dict[str, str] | None = None) -> Spawned:
        with_secrets = self._with_secrets(request, secret_names)
        if isinstance(with_secrets, str):
            return None, with_secrets, self.clock()
        try:
            handle = self.runtime.start(with_secrets)
        except Exception as exc:
            return self._spawned(with_secrets, exc)
        return self._spawned(with_secrets, handle)

    def _spawned(self, request: AttemptRequest, result: Handle | Exception) -> Spawned:
        """What a start came to: the handle (written beside the shim's records) or why it failed."""
        if isinstance(result, FreightError):
            return None, str(result), self.clock()
        if isinstance(result, Exception):  # one attempt's failure, whatever it is, is that attempt's alone
            log.error("starting attempt %s failed", request.attempt_id, exc_info=result)
            return None, describe(result), self.clock()
        started_at = self.clock()
        with contextlib.suppress(OSError):
            Path(result.record_dir, HANDLE_FILE).write_text(result.to_json())
        return result, None, started_at
