"""The runtime's side of the launcher (`freight-shim --serve`, launcher.c): one request per attempt.

    runtime ──request (argv, env, paths; slot claim by SCM_RIGHTS)──▶ launcher ──fork──▶ shim
       ◀──────────── STARTED pid, start time; a pidfd by SCM_RIGHTS ─────────────────────┘

The shim replies itself, and forks the job only once its reply is sent: so a request with no reply
(the launcher died: EOF; or the shim died first: the launcher's DIED notice) started no job, and
can be sent again. A launcher that does not answer in time (stopped, or wedged) is abandoned the
same way: shutting our end for reading makes any later reply fail (EPIPE), so its shim never forks
the job; a reply that made it before the shutdown is still read and used. A round trip holds a
lock; `start_many` sends a batch of requests in one, before reading any reply (replies carry the
request's id), so the launcher forks the next shim while the last one sets up.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

#: the request header: magic, id, then how many PROCS, STATS, ARGV and ENV strings follow
_REQUEST = struct.Struct("=6I")
#: a reply: id, errno (or signal), pid, kind, start time (or protocol version)
_REPLY = struct.Struct("=IiiIQ")
_MAGIC = 0x4C524646
_VERSION = 1
STARTED, FAILED, DIED, HELLO = range(4)
#: larger requests (huge argv or env) go through posix_spawn instead; the launcher reads 256 KiB
MAX_REQUEST = 200_000
_ALL_SIGNALS = tuple(signal.valid_signals())
_ENCODING = sys.getfilesystemencoding()
#: room for the one descriptor a reply carries
_FD_SPACE = socket.CMSG_SPACE(4)
#: seconds a start waits for its reply before the launcher is taken for wedged and replaced
REPLY_TIMEOUT = 10.0


#: an encoded request: its counts, its strings, and the slot's claim (a descriptor) if any
Request = tuple[tuple[int, int, int, int], bytes, "int | None"]


class LauncherGone(Exception):
    """The launcher is not there (died, or could not be started). The attempt did not start."""


class ShimDied(Exception):
    """The forked shim died of a signal before it replied. The attempt did not start."""


class TooLarge(Exception):
    """The request does not fit in one message. Nothing was sent."""


@dataclass(frozen=True)
class Started:
    pid: int
    #: clock ticks after boot (field 22 of /proc/PID/stat)
    start: int
    #: a pidfd on the shim (None before Linux 5.3)
    pidfd: int | None


class Launcher:
    """One launcher process, started on first use and again after it dies. Thread-safe."""

    def __init__(self, executable: str, *, reply_timeout: float = REPLY_TIMEOUT) -> None:
        self.executable = executable
        self.reply_timeout = reply_timeout
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        #: the launcher's pid, once running (for inspection and tests)
        self.pid: int | None = None
        #: launchers started so far
        self.starts = 0
        #: why no launcher can be started here (the runtime then spawns each shim), once that is known
        self.broken: str | None = None
        self._next_id = 1
        #: the current launcher missed a reply: its socket is shut and it is dropped after this start
        self._wedged = False

    @staticmethod
    def encode(
        record_dir: str,
        log_path: str,
        cwd: str,
        rlimits: str,
        procs: tuple[str, ...],
        counters: tuple[str, ...],
        argv: list[str],
        env: dict[str, str],
    ) -> tuple[tuple[int, int, int, int], bytes]:
        """The request's counts and strings. Raises ValueError as posix_spawn would."""
        if "" in env or "=" in "".join(env):
            raise ValueError("illegal environment variable name")
        strings = (record_dir, log_path, cwd, rlimits, *procs, *counters, *argv, *map("=".join, env.items()))
        payload = ("\0".join(strings) + "\0").encode(_ENCODING, "surrogateescape")
        return (len(procs), len(counters), len(argv), len(env)), payload

    def start(self, counts: tuple[int, int, int, int], payload: bytes, slot_lock: int | None) -> Started:
        """Have a shim forked for an encoded request.

        Raises LauncherGone or ShimDied when no job was started (the record directory may have been
        made: the caller removes it), TooLarge when the request was not sent, OSError when the shim
        could not be set up (errno and path as for mkdir/open; the record directory is not left
        behind), ValueError for a NUL in a string.
        """
        result = self.start_many([(counts, payload, slot_lock)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def start_many(self, requests: Sequence[Request]) -> list[Started | Exception]:
        """Have a shim forked for each encoded request, in one round trip: every request is sent
        before any reply is read, so the launcher forks the next shim while the last one sets up and
        the caller's thread wakes once for them all. Each result is what `start` returns or raises
        for that request alone (a request with no reply started no job, as for `start`)."""
        results: list[Started | Exception | None] = [None] * len(requests)
        with self._lock:
            try:
                sock = self._sock or self._spawn()
            except LauncherGone as exc:
                return [exc for _ in requests]
            #: request id -> its index, for the requests sent and not answered yet
            pending: dict[int, int] = {}
            dead = False
            try:
                try:
                    for index, (counts, payload, slot_lock) in enumerate(requests):
                        ident = self._next_id
                        self._next_id = ident + 1 if ident < 0xFFFFFFFF else 1
                        fds = [slot_lock] if slot_lock is not None else []
                        try:
                            sock.sendmsg([_REQUEST.pack(_MAGIC, ident, *counts), payload], _rights(fds))
                        except OSError as exc:
                            if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
                                raise
                            # a socket buffer smaller than MAX_REQUEST: nothing was sent
                            too_large = exc.errno == errno.EMSGSIZE
                            results[index] = TooLarge(str(exc)) if too_large else exc
                            continue
                        pending[ident] = index
                except (BrokenPipeError, ConnectionResetError) as exc:
                    # the launcher is gone: what it was sent before may have replied (read on)
                    gone = LauncherGone(f"the launcher is gone: {exc}")
                    for index, result in enumerate(results):
                        if result is None and index not in pending.values():
                            results[index] = gone
                    dead = True
                while pending:
                    message, received = self._reply(sock)
                    if not message:
                        raise LauncherGone(
                            f"the launcher did not answer within {self.reply_timeout:g} s"
                            if self._wedged
                            else "the launcher exited"
                        )
                    got, err, pid, kind, start = _REPLY.unpack_from(message)
                    index = pending.pop(got, -1)
                    if index < 0:  # a notice for a shim that had replied long ago
                        _close(received)
                        continue
                    results[index] = _result(message, received, err, pid, kind, start)
            except (BrokenPipeError, ConnectionResetError, LauncherGone) as exc:
                self._drop()
                gone = exc if isinstance(exc, LauncherGone) else LauncherGone(f"the launcher is gone: {exc}")
                for index in pending.values():
                    results[index] = gone
            finally:
                if self._wedged or dead:
                    self._drop()
        return [r if r is not None else LauncherGone("the launcher did not answer") for r in results]

    def _reply(self, sock: socket.socket) -> tuple[bytes, list[int]]:
        """The next message. After `reply_timeout` seconds of silence our end is shut for reading
        and the launcher killed; what came before the shutdown is still read, then b"" (EOF)."""
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        if self._wedged or poller.poll(self.reply_timeout * 1000):
            return _receive(sock)
        self._wedged = True
        sock.shutdown(socket.SHUT_RD)  # from here on a late reply fails in the shim: no job starts
        sock.setblocking(False)
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)  # stopped or wedged: it would never answer
        return _receive(sock)

    def close(self) -> None:
        """Close the socket; the launcher exits (its shims go on)."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self.pid = None
        self._wedged = False

    def _spawn(self) -> socket.socket:
        if self.broken is not None:
            raise LauncherGone(self.broken)
        try:
            return self._spawn_launcher()
        except (OSError, LauncherGone) as exc:
            self.broken = f"cannot start the launcher ({self.executable} --serve): {exc}"
            raise LauncherGone(self.broken) from None

    def _spawn_launcher(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # above 0-4, so the dup2 to 3 always happens (and clears close-on-exec)
            high = fcntl.fcntl(theirs.fileno(), fcntl.F_DUPFD_CLOEXEC, 5)
            try:
                first = os.posix_spawn(
                    self.executable,
                    ["freight-shim", "--serve"],
                    {},
                    file_actions=[(os.POSIX_SPAWN_DUP2, high, 3)],
                    setsigmask=_ALL_SIGNALS,
                )
            finally:
                os.close(high)
                theirs.close()
            # it forks the launcher and exits at once: the launcher is init's child, never our zombie
            try:
                _, status = os.waitpid(first, 0)
            except ChildProcessError:  # reaped by someone else: the hello (or EOF) tells
                status = 0
            message, received = _receive(ours) if status == 0 else (b"", [])
            _close(received)
            if len(message) < _REPLY.size:
                raise LauncherGone(f"the launcher did not start (status {status})")
            _, _, pid, kind, version = _REPLY.unpack_from(message)
            if kind != HELLO or version != _VERSION:
                raise LauncherGone(f"the launcher speaks another protocol ({kind}, {version})")
        except BaseException:
            ours.close()
            raise
        self._sock, self.pid = ours, pid
        self.starts += 1
        return ours


def _result(
    message: bytes, received: list[int], err: int, pid: int, kind: int, start: int
) -> Started | Exception:
    """What one reply says of its request."""
    if kind == STARTED:
        return Started(pid, start, received[0] if received else None)
    _close(received)
    if kind == DIED:
        return ShimDied(f"the shim died of signal {err} before it started the job")
    text = message[_REPLY.size :].decode(_ENCODING, "surrogateescape")
    if err == errno.EINVAL and text == "embedded null byte":
        return ValueError(text)
    return OSError(err, os.strerror(err), text)


def _receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    """One message and the descriptors it carried, close-on-exec so no other child of the scheduler
    inherits them (socket.recv_fds would not pass MSG_CMSG_CLOEXEC on: it drops its flags)."""
    message, ancillary, _, _ = sock.recvmsg(8192, _FD_SPACE, socket.MSG_CMSG_CLOEXEC)
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += struct.unpack(f"{len(data) // 4}i", data[: len(data) - len(data) % 4])
    return message, fds


def _rights(fds: list[int]) -> list[tuple[int, int, bytes]]:
    if not fds:
        return []
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
