"""The unprivileged user jobs run as: made on first use when missing, dropped to by the shim.

A server running as root runs each job as `freight-job` (FREIGHT_JOB_USER): a system user with no
login, no supplementary groups and a home of its own, and no access to FREIGHT_HOME (mode 0700),
the store or the server's environment. The shim switches to it after the job has joined its
cgroups and before it enters its directory and execs (setgroups, setresgid, setresuid), so the
command never holds root for an instruction. A server that is not root cannot switch users: its
jobs run as itself (docs/reliability.md says what that leaves open).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import threading
from dataclasses import dataclass

from freight.runtime.notices import warn_once

#: where the job user's home is made (it owns it, mode 0700)
HOME_ROOT = "/var/lib"


@dataclass(frozen=True)
class JobUser:
    name: str
    uid: int
    gid: int
    home: str


_lock = threading.Lock()
_found: dict[str, JobUser | None] = {}


def job_user(name: str = "freight-job") -> JobUser | None:
    """The user jobs run as, made if missing; None when this process cannot switch users (not root)."""
    if os.geteuid() != 0:
        return None
    with _lock:
        if name not in _found:
            _found[name] = _ensure(name)
        return _found[name]


def _ensure(name: str) -> JobUser:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = _create(name)
    if entry.pw_uid == 0:
        raise RuntimeError(f"the job user {name} is root (uid 0); jobs would run with every privilege")
    home = entry.pw_dir if entry.pw_dir and entry.pw_dir != "/nonexistent" else "/"
    if home != "/":
        try:  # its own, and no one else's to read (jobs of other users must not share it)
            os.makedirs(home, mode=0o700, exist_ok=True)
            if os.stat(home).st_uid in (0, entry.pw_uid):
                os.chown(home, entry.pw_uid, entry.pw_gid)
                os.chmod(home, 0o700)
        except OSError:
            home = "/"
    return JobUser(name, entry.pw_uid, entry.pw_gid, home)


def _create(name: str) -> pwd.struct_passwd:
    """useradd --system; with no useradd (or it fails), `nobody`, said once."""
    useradd = shutil.which("useradd") or next(
        (p for p in ("/usr/sbin/useradd", "/sbin/useradd") if os.path.exists(p)), None
    )
    problem = "no useradd on this machine"
    if useradd is not None:
        result = subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--home-dir",
                f"{HOME_ROOT}/{name}",
                "--create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "freight jobs",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            return pwd.getpwnam(name)  # made now, or by a concurrent start (useradd then fails)
        except KeyError:
            problem = result.stderr.strip() or f"useradd exited with {result.returncode}"
    warn_once("jobuser", f"freight: cannot create the job user {name} ({problem}); jobs run as nobody")
    return pwd.getpwnam("nobody")
