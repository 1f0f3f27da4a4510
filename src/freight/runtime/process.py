"""ShimRuntime: runs each attempt under a small shim process, isolated by cgroup slots or rlimits.

    scheduler ──request──▶ launcher ──fork──▶ freight-shim (own session; holds the record dir's
       (or, without the launcher: posix_spawn)       flock; ignores SIGTERM/SIGHUP/SIGINT/SIGPIPE)
                                                  └─fork─▶ job: joins the slot's cgroups, own process
                                                           group, rlimits (fallback), execvp COMMAND
    the shim waits for the job (wait4) and writes record_dir/status, then exits;
    the scheduler learns of the exit through a pidfd on the shim, and reads the status file.

The launcher (launcher.py, launcher.c) is the C shim's binary in --serve mode, started once per
runtime: a start costs it a fork instead of a spawn + exec of the shim, and costs the scheduler one
message each way. Without it (the Python shim, or no launcher can run) a start is a posix_spawn of
the shim plus a few small file operations. Only wait() blocks for long; kill() and release() wait
until the slot is empty, which takes a moment. The shim is not in the job's cgroups, so an OOM kill
in the job can never take the record with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import select
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, ParamSpec

from freight.errors import TerminalError, TransientError, disk_full
from freight.runtime import records
from freight.runtime.base import AttemptRequest, Handle, Outcome, Recovered
from freight.runtime.isolation import Isolation, Placement
from freight.runtime.launcher import (
    MAX_REQUEST,
    Launcher,
    LauncherGone,
    Request,
    ShimDied,
    Started,
    TooLarge,
)
from freight.runtime.notices import warn_once
from freight.runtime.shim import Shim

_ATTEMPT_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,200}$")
_STDIN_FROM_DEV_NULL = (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)
_ALL_SIGNALS = tuple(signal.valid_signals())
#: launcher requests sent before their replies are read (small: replies wait in our socket buffer)
LAUNCH_BATCH = 32

_P = ParamSpec("_P")


class ShimRuntime:
    """The `Runtime` for one machine. Thread-safe; one instance per scheduler process."""

    def __init__(self, isolation: Isolation, shim: Shim, run_dir: Path, *, launcher: bool = True) -> None:
        self.isolation = isolation
        self.shim = shim
        self.run_dir = run_dir
        self._run_prefix = f"{run_dir}/"
        #: forks the C shim per attempt; None: posix_spawn each shim (the Python shim, or asked to)
        self.launcher = Launcher(shim.executable) if launcher and shim.kind == "c" else None
        self.description = isolation.description + ("" if shim.kind == "c" else " with the Python shim")
        run_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # records are the platform's: no job reads another's
            os.chmod(run_dir, 0o700)
        self._lock = threading.Lock()
        #: shims this process spawned and has not reaped yet
        self._children: set[int] = set()
        self._pidfds: dict[str, int] = {}
        #: log directories known to exist: one mkdir each per instance
        self._log_dirs: set[Path] = set()
        #: attempts started and not released yet
        self._live: set[str] = set()
        #: released shims that had not exited yet
        self._unreaped: set[int] = set()

    # -- start ------------------------------------------------------------------------------------

    def start(self, request: AttemptRequest) -> Handle:
        placement, record_dir = self._begin(request)
        return self._complete(request, placement, record_dir, None)

    def start_many(self, requests: Sequence[AttemptRequest]) -> list[Handle | Exception]:
        """Start these attempts, their launcher requests sent in batches of one round trip each
        (Launcher.start_many). Each result is what start() returns or raises for that attempt alone."""
        launcher = self.launcher
        if launcher is None or launcher.broken is not None or len(requests) < 2:
            return [_outcome_of(self.start, request) for request in requests]
        results: list[Handle | Exception | None] = [None] * len(requests)
        #: attempts placed and encoded, waiting for the launcher: (index, placement, record dir)
        batch: list[tuple[int, Placement, str]] = []
        encoded: list[Request] = []
        for index, request in enumerate(requests):
            try:
                placement, record_dir = self._begin(request)
            except Exception as exc:
                results[index] = exc
                continue
            try:
                counts, payload = self._encode(launcher, request, placement, record_dir)
            except Exception as exc:  # as start() would raise it, with the slot given back
                results[index] = _outcome_of(self._complete, request, placement, record_dir, exc)
                continue
            if len(payload) > MAX_REQUEST:
                results[index] = _outcome_of(self._complete, request, placement, record_dir, TooLarge())
                continue
            batch.append((index, placement, record_dir))
            encoded.append((counts, payload, placement.lock))
        for first in range(0, len(batch), LAUNCH_BATCH):
            launched = launcher.start_many(encoded[first : first + LAUNCH_BATCH])
            for (index, placement, record_dir), got in zip(
                batch[first : first + LAUNCH_BATCH], launched, strict=True
            ):
                results[index] = _outcome_of(self._complete, requests[index], placement, record_dir, got)
        return [r if r is not None else RuntimeError("not started") for r in results]

    def _begin(self, request: AttemptRequest) -> tuple[Placement, str]:
        """Check the request and take its slot; raises as start() does."""
        if not _ATTEMPT_ID.match(request.attempt_id):
            raise TerminalError(f"attempt id {request.attempt_id!r} cannot name a directory")
        if not request.argv:
            raise TerminalError(f"attempt {request.attempt_id} has an empty command")
        with self._lock:
            if request.attempt_id in self._live:
                raise TerminalError(f"attempt {request.attempt_id} was started before and not released")
            self._live.add(request.attempt_id)
            if self._unreaped:
                self._unreaped = {pid for pid in self._unreaped if not self._reap_locked(pid)}
        try:
            placement = self.isolation.place(request.attempt_id, request.limits)
        except BaseException as exc:
            self._failed(request, exc)
        return placement, self._run_prefix + request.attempt_id

    def _complete(
        self,
        request: AttemptRequest,
        placement: Placement,
        record_dir: str,
        first: Started | Exception | None,
    ) -> Handle:
        """Launch a placed attempt (`first`: what a batch start already made of it) and make its
        handle; on failure its slot is given back and the error raised as start() raises it."""
        try:
            try:
                started = self._launch(request, placement, record_dir, first)
            except BaseException:
                self.isolation.unplace(request.attempt_id, placement)
                raise
        except BaseException as exc:
            self._failed(request, exc)
        if started.pidfd is not None:
            with self._lock:
                self._pidfds[request.attempt_id] = started.pidfd
        return Handle(
            attempt_id=request.attempt_id,
            shim_pid=started.pid,
            shim_start=started.start,
            record_dir=record_dir,
            isolation=self.isolation.kind,
            slot=placement.slot,
            oom_base=placement.oom_base,
            extra={"cpu_base": placement.cpu_base} if placement.cpu_base else {},
        )

    def _failed(self, request: AttemptRequest, exc: BaseException) -> NoReturn:
        """An attempt that did not start: no longer live; the error as start() raises it."""
        with self._lock:
            self._live.discard(request.attempt_id)
        if isinstance(exc, FileExistsError):
            raise TerminalError(
                f"attempt {request.attempt_id} was started before: {exc.filename} exists"
            ) from None
        if isinstance(exc, OSError) and disk_full(exc):
            raise TransientError(
                f"cannot start attempt {request.attempt_id}: no space left on the disk of "
                f"{exc.filename or 'its log or records'} (ENOSPC)"
            ) from exc
        if isinstance(exc, OSError):
            raise TransientError(f"cannot start attempt {request.attempt_id}: {exc}") from exc
        raise exc

    def _encode(
        self, launcher: Launcher, request: AttemptRequest, placement: Placement, record_dir: str
    ) -> tuple[tuple[int, int, int, int], bytes]:
        return launcher.encode(
            record_dir,
            str(request.log_path),
            request.cwd or "-",
            _with_user(placement.rlimits, request.user),
            placement.procs,
            placement.counters,
            request.argv,
            request.env,
        )

    def _launch(
        self,
        request: AttemptRequest,
        placement: Placement,
        record_dir: str,
        first: Started | Exception | None = None,
    ) -> Started:
        tries = 2  # a launcher that died is started again, once per attempt
        if first is not None:  # what a batch start made of it
            if isinstance(first, Started):
                return first
            if isinstance(first, TooLarge):
                tries = 0
            elif isinstance(first, (LauncherGone, ShimDied)):
                _discard_unstarted(record_dir)  # no job ran: nothing else can be in it
                tries = 1
            else:
                raise first
        launcher = self.launcher
        if tries and launcher is not None and launcher.broken is None:
            counts, payload = self._encode(launcher, request, placement, record_dir)
            if len(payload) <= MAX_REQUEST:
                for _ in range(tries):
                    try:
                        return launcher.start(counts, payload, placement.lock)
                    except (LauncherGone, ShimDied):
                        _discard_unstarted(record_dir)  # no job ran: nothing else can be in it
                    except TooLarge:
                        break
        if launcher is not None and launcher.broken is not None:
            warn_once("launcher", f"freight: {launcher.broken}; spawning a shim per attempt")
        pid = self._spawn(request, placement, record_dir)
        started = records.start_time(pid)
        return Started(pid, started if started is not None else 0, None)

    def _spawn(self, request: AttemptRequest, placement: Placement, record_dir: str) -> int:
        os.mkdir(record_dir)
        try:
            return self._spawn_shim(request, placement, record_dir)
        except BaseException:
            shutil.rmtree(record_dir, ignore_errors=True)
            raise

    def _spawn_shim(self, request: AttemptRequest, placement: Placement, record_dir: str) -> int:
        # locked before the shim exists, so no one ever sees this attempt's record unlocked
        lock = _above_stdio(os.open(record_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            log = _above_stdio(self._open_log(request.log_path))
            try:
                argv = [
                    *self.shim.argv_prefix,
                    record_dir,
                    request.cwd or "-",
                    _with_user(placement.rlimits, request.user),
                    str(len(placement.procs)),
                    *placement.procs,
                    str(len(placement.counters)),
                    *placement.counters,
                    *request.argv,
                ]
                actions = [
                    (os.POSIX_SPAWN_DUP2, log, 1),
                    (os.POSIX_SPAWN_DUP2, log, 2),
                    _STDIN_FROM_DEV_NULL,
                    (os.POSIX_SPAWN_DUP2, lock, 3),
                ]
                if placement.lock is not None:  # the slot's claim, kept by the shim while the job lives
                    actions.append((os.POSIX_SPAWN_DUP2, placement.lock, 4))
                # every signal blocked until the shim has set its dispositions and left our session
                pid = os.posix_spawn(
                    self.shim.executable, argv, request.env, file_actions=actions, setsigmask=_ALL_SIGNALS
                )
            finally:
                os.close(log)
        finally:
            os.close(lock)
        with self._lock:
            self._children.add(pid)
        return pid

    def _open_log(self, path: Path) -> int:
        if path.parent not in self._log_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._log_dirs.add(path.parent)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)

    def prewarm(self, count: int) -> None:
        """Have `count` cgroup slots ready, so the first attempts do not pay for creating them."""
        self.isolation.prewarm(count)

    def close(self) -> None:
        """Drop this instance's descriptors and its launcher. Running attempts go on; a new instance
        can recover them."""
        if self.launcher is not None:
            self.launcher.close()
        with self._lock:
            fds, self._pidfds = list(self._pidfds.values()), {}
        for fd in fds:
            os.close(fd)
        self.isolation.close()

    def destroy(self) -> None:
        """Kill every attempt and delete freight's cgroups (uninstall, tests)."""
        self.close()
        self.isolation.destroy()

    # -- learning how it ended --------------------------------------------------------------------

    def poll(self, handle: Handle) -> Outcome | None:
        """None while the shim runs, and also when it died without a record: recover() says VANISHED."""
        status = self._status(handle)
        if status is None or isinstance(status, Recovered):
            return None
        return self._outcome(handle, status)

    def _outcome(self, handle: Handle, status: records.ShimStatus) -> Outcome:
        measures = self.isolation.measure(handle, status)
        return Outcome(
            exit_code=status.exit_code,
            signal=status.signal,
            oom_killed=measures.oom_killed,
            peak_memory=measures.peak_memory,
            cpu_seconds=measures.cpu_seconds,
            started_at=status.started,
            ended_at=status.ended,
            error=status.error,
        )

    def _status(self, handle: Handle) -> records.ShimStatus | Recovered | None:
        """The shim's exit record; None while the shim runs; VANISHED if it died without one."""
        status = records.read_status(handle.record_dir)
        if status is not None:
            self._reap(handle.shim_pid)
            return status
        if self._shim_running(handle):
            return None
        # the shim writes the record before it exits: look again now that it is gone
        return records.read_status(handle.record_dir) or Recovered.VANISHED

    def _lost(self, handle: Handle) -> Outcome:
        """What wait() returns when the shim died without recording the exit (someone SIGKILLed it)."""
        now = time.time()
        return Outcome(
            exit_code=None,
            signal=None,
            oom_killed=False,
            peak_memory=None,
            cpu_seconds=None,
            started_at=now,
            ended_at=now,
            error=f"lost: the shim (pid {handle.shim_pid}) died without recording the job's exit",
        )

    def wait(self, handle: Handle, timeout: float | None = None) -> Outcome | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self.fileno(handle)
        pause, readable = 0.001, False
        while (status := self._status(handle)) is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            if fd is not None and not readable:
                readable = _readable(fd, remaining)
            else:  # no pidfd, or one that says "ended" before the record shows: poll gently
                time.sleep(pause if remaining is None else min(pause, remaining))
                pause = min(pause * 2, 0.05)
        return self._lost(handle) if isinstance(status, Recovered) else self._outcome(handle, status)

    def fileno(self, handle: Handle) -> int | None:
        with self._lock:
            fd = self._pidfds.get(handle.attempt_id)
            if fd is None:
                fd = self._pidfds[handle.attempt_id] = self._open_pidfd(handle)
            return fd

    def _open_pidfd(self, handle: Handle) -> int:
        """A pidfd on the shim; for a shim already gone, an eventfd that is readable at once."""
        try:
            fd = os.pidfd_open(handle.shim_pid)
        except ProcessLookupError:
            return os.eventfd(1, os.EFD_CLOEXEC)
        # an unreaped child of ours cannot have lost its pid; anything else must prove it is the shim
        ours = handle.shim_pid in self._children
        if not ours and not records.process_alive(handle.shim_pid, handle.shim_start):
            os.close(fd)
            return os.eventfd(1, os.EFD_CLOEXEC)
        return fd

    # -- stopping ---------------------------------------------------------------------------------

    def signal(self, handle: Handle, signum: int) -> None:
        self.isolation.signal(handle, signum)

    def terminate(self, handle: Handle) -> None:
        # A job between fork and exec has not joined its cgroup (or process group) yet, so no signal
        # can reach it: it checks this request after joining, and dies instead of running.
        records.request_kill(handle.record_dir)
        self.isolation.signal(handle, signal.SIGTERM)

    def kill(self, handle: Handle) -> None:
        records.request_kill(handle.record_dir)  # a job not exec'ed yet sees this and dies
        self.isolation.kill(handle)

    # -- restart ----------------------------------------------------------------------------------

    def recover(self, handle: Handle) -> Outcome | Recovered:
        self.isolation.claim(handle)
        status = self._status(handle)
        if status is None:
            return Recovered.RUNNING
        if isinstance(status, Recovered):
            return status
        return self._outcome(handle, status)

    def release(self, handle: Handle) -> None:
        self.isolation.release(handle)
        with self._lock:
            self._live.discard(handle.attempt_id)
            fd = self._pidfds.pop(handle.attempt_id, None)
            if not self._reap_locked(handle.shim_pid):
                self._unreaped.add(handle.shim_pid)  # released while running: reaped on a later start
        if fd is not None:
            os.close(fd)
        records.remove_record(handle.record_dir)

    def usage(self, handle: Handle) -> tuple[int | None, float | None]:
        return self.isolation.usage(handle)

    # -- the shim process -------------------------------------------------------------------------

    def _shim_running(self, handle: Handle) -> bool:
        pid = handle.shim_pid
        if pid in self._children:
            return not self._reap(pid)
        fd = self._pidfds.get(handle.attempt_id)
        if fd is not None:  # a pidfd names the shim for good (an eventfd: the shim was gone)
            return not _readable(fd, 0)
        # adopted after a restart: the lock says it even where /proc cannot (another pid namespace)
        return records.process_alive(pid, handle.shim_start) or records.lock_held(handle.record_dir)

    def _reap(self, pid: int) -> bool:
        """Collect our exited shim so it does not linger as a zombie; True once it is gone."""
        with self._lock:
            return self._reap_locked(pid)

    def _reap_locked(self, pid: int) -> bool:
        if pid not in self._children:
            return True
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid  # someone else reaped it
        if done == pid:
            self._children.discard(pid)
            return True
        return False


def _readable(fd: int, timeout: float | None) -> bool:
    """`fd` is readable within `timeout` seconds (poll, not select: descriptors may exceed 1023)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, math.ceil(timeout * 1000))))


def _with_user(rlimits: str, user: tuple[int, int] | None) -> str:
    """The shim's RLIMITS argument, with the user to switch to: "as=N,uid=U,gid=G" (or "-")."""
    if user is None:
        return rlimits
    creds = f"uid={user[0]},gid={user[1]}"
    return creds if rlimits == "-" else f"{rlimits},{creds}"


def _discard_unstarted(record_dir: str) -> None:
    """Remove the record directory a shim made before it died without starting the job (empty)."""
    with contextlib.suppress(OSError):  # not there, or not empty: not ours to remove
        os.rmdir(record_dir)


def _above_stdio(fd: int) -> int:
    """Move `fd` above 0-4, the descriptors a spawn rewires, so no file action clobbers another's source
    (and no dup2(fd, fd) keeps close-on-exec where a libc skips it)."""
    if fd > 4:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5)
    os.close(fd)
    return moved


def _outcome_of(call: Callable[_P, Handle], *args: _P.args, **kwargs: _P.kwargs) -> Handle | Exception:
    """What `call` returns, or the exception it raised (one attempt's, kept with that attempt)."""
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        return exc
