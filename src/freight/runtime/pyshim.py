"""The pure-Python shim, for machines without a C compiler. Same argv and files as shim.c.

    python -m freight.runtime.pyshim RECORD_DIR CWD RLIMITS NPROCS PROCS... NSTATS STATS... COMMAND...

The runtime runs this file by path with `python -I -S`, so it must import nothing but the standard
library (and so the job's PYTHON* variables cannot break it). It costs a Python start per attempt
(~80 ms), which is why the C shim is the default.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import resource
import signal
import sys
import time
import warnings

# os.execvp imports it lazily; after the switch to the job user the standard library may be out of
# its reach (a Python under /root), so it is imported here, while the shim still may
_ = warnings
SHIM_FAILED = 125
IGNORED = (
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGTERM",
    "SIGPIPE",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGUSR1",
    "SIGUSR2",
)
RLIMITS = {"as": resource.RLIMIT_AS, "nproc": resource.RLIMIT_NPROC}


def write_record(record_dir: str, name: str, data: str) -> None:
    tmp = os.path.join(record_dir, f".{name}.tmp")
    with open(tmp, "w", encoding="utf-8") as file:
        file.write(data)
    os.rename(tmp, os.path.join(record_dir, name))


def child_fail(errfd: int, what: str, arg: str, err: int | None) -> None:
    message = f"cannot {what} '{arg}': {os.strerror(err or 0)}"
    try:
        os.write(2, f"freight: {message}\n".encode())
        os.write(errfd, message.encode())
    finally:
        os._exit(127)


def run_child(
    errfd: int, record_dir: str, cwd: str, rlimits: str, procs: list[str], command: list[str]
) -> None:
    for sig in range(1, signal.NSIG):
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(OSError, ValueError):  # signals libc reserves
                signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    pid = str(os.getpid())
    for path in procs:
        try:
            with open(path, "w") as file:
                file.write(pid)
        except OSError as exc:
            child_fail(errfd, "join cgroup", path, exc.errno)
    os.setpgid(0, 0)
    creds: dict[str, int] = {}
    if rlimits != "-":
        for item in rlimits.split(","):
            name, _, value = item.partition("=")
            try:
                if name in ("uid", "gid"):
                    creds[name] = int(value)
                    if not 0 < creds[name] <= 0x7FFFFFFF:
                        raise ValueError(value)
                    continue
                resource.setrlimit(RLIMITS[name], (int(value), int(value)))
            except OSError as exc:
                child_fail(errfd, "set limit", name, exc.errno)
            except (KeyError, ValueError):
                child_fail(errfd, "parse limit", item, errno.EINVAL)
    try:
        fd = os.open(
            os.path.join(record_dir, "pid"), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644
        )
        os.write(fd, pid.encode())
        os.close(fd)
    except OSError as exc:
        child_fail(errfd, "write", "pid", exc.errno)
    if os.path.exists(os.path.join(record_dir, "kill")):
        os.kill(os.getpid(), signal.SIGKILL)
    if "uid" in creds:  # for good: no groups, all three ids (as shim.c; no_new_privs needs ctypes)
        try:
            os.setgroups([])
            gid = creds.get("gid", creds["uid"])
            os.setresgid(gid, gid, gid)
            os.setresuid(creds["uid"], creds["uid"], creds["uid"])
        except OSError as exc:
            child_fail(errfd, "switch to user", str(creds["uid"]), exc.errno)
    if cwd != "-":  # after the switch: the directory must be one the job's user may enter
        try:
            os.chdir(cwd)
        except OSError as exc:
            child_fail(errfd, "enter directory", cwd, exc.errno)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        child_fail(errfd, "run", command[0], exc.errno)


def lock_record_dir(record_dir: str) -> int:
    """Descriptor 3 when the runtime handed over the record directory's lock there, else a new one."""
    with contextlib.suppress(OSError):
        inherited, directory = os.fstat(3), os.stat(record_dir)
        if (inherited.st_dev, inherited.st_ino) == (directory.st_dev, directory.st_ino):
            os.set_inheritable(3, False)
            return 3
    with contextlib.suppress(OSError):
        os.close(3)  # started by hand: whatever 3 is, the job must not inherit it
    return os.open(record_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_counters(specs: list[str]) -> list[tuple[str, str, str | None, int | None]]:
    counters: list[tuple[str, str, str | None, int | None]] = []
    for spec in specs:
        name, field, path = spec.split(":", 2)
        fd = None
        if field == "+reset":
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
                os.write(fd, b"0")
            except OSError:
                if fd is not None:
                    os.close(fd)
                counters.append((name, field, None, None))
                continue
        counters.append((name, field, path, fd))
    return counters


def read_counter(field: str, path: str | None, fd: int | None) -> int | None:
    if path is None:
        return None
    try:
        if fd is None:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        text = os.pread(fd, 4096, 0).decode()
    except OSError:
        return None
    finally:
        if fd is not None:
            os.close(fd)
    if field in ("-", "+reset"):
        return int(text.split()[0])
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == field:
            return int(value)
    return None


def main(argv: list[str]) -> int:
    if len(argv) < 7:
        print(
            "usage: pyshim RECORD_DIR CWD RLIMITS NPROCS PROCS... NSTATS STATS... COMMAND...", file=sys.stderr
        )
        return SHIM_FAILED
    os.closerange(5, 65536)
    record_dir, cwd, rlimits = argv[1], argv[2], argv[3]
    nprocs = int(argv[4])
    procs = argv[5 : 5 + nprocs]
    nstats = int(argv[5 + nprocs])
    specs = argv[6 + nprocs : 6 + nprocs + nstats]
    command = argv[6 + nprocs + nstats :]
    if not command:
        print("freight-shim: no command", file=sys.stderr)
        return SHIM_FAILED
    for name in IGNORED:
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    with contextlib.suppress(OSError):  # already a group leader when started by hand from a shell
        os.setsid()
    signal.pthread_sigmask(signal.SIG_SETMASK, [])

    fcntl.flock(lock_record_dir(record_dir), fcntl.LOCK_EX)
    with contextlib.suppress(OSError):
        if procs:
            os.set_inheritable(4, False)  # the slot's claim: ours to keep, not the job's
        else:
            os.close(4)
    counters = open_counters(specs)
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    started = time.time()
    error = ""
    try:
        child = os.fork()
    except OSError as exc:
        child, error = -1, f"cannot start a process: {os.strerror(exc.errno or 0)}"
    if child == 0:
        os.close(read_end)
        run_child(write_end, record_dir, cwd, rlimits, procs, command)
    os.close(write_end)
    if child > 0:
        chunks = []
        while chunk := os.read(read_end, 1024):  # EOF when exec succeeds (close-on-exec)
            chunks.append(chunk)
        error = b"".join(chunks).decode(errors="replace").replace("\n", " ").replace("\r", " ")
    os.close(read_end)

    lines = []
    if child > 0:
        _, status, usage = os.wait4(child, 0)
        if os.WIFEXITED(status):
            lines.append(f"exit={os.WEXITSTATUS(status)}")
        elif os.WIFSIGNALED(status):
            lines.append(f"signal={os.WTERMSIG(status)}")
            lines.append(f"core={int(os.WCOREDUMP(status))}")
        utime, stime, maxrss = usage.ru_utime, usage.ru_stime, usage.ru_maxrss
    else:
        utime = stime = 0.0
        maxrss = 0
    ended = time.time()
    if error:
        lines.append(f"error={error}")
    if child > 0:
        lines.append(f"pid={child}")
    lines += [f"started={started:.9f}", f"ended={ended:.9f}", f"utime={utime:.6f}", f"stime={stime:.6f}"]
    lines.append(f"maxrss={maxrss}")
    for name, field, path, fd in counters:
        value = read_counter(field, path, fd)
        if value is not None:
            lines.append(f"cg.{name}={value}")
    write_record(record_dir, "status", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
