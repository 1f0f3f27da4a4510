"""freight joins only Ray clusters that authenticate their callers (Ray's token authentication).

Jobs run on the cluster's nodes, with the host's network: on a cluster without authentication any job
could join it as a driver and call freight's agents (root on every node) directly. So freight speaks
to Ray with a token (RAY_AUTH_MODE=token) and refuses a cluster that lets a caller without one in.

The token: RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH when the operator set one, else the file
FREIGHT_HOME/ray_auth_token (made on first use, mode 0600). A token file others may read is refused.
Every node's `ray start` needs the same token (see docs/operations.md, "Ray cluster").
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from freight.errors import UserError

TOKEN_FILE = "ray_auth_token"
#: seconds the probe (a caller without the token) has to be turned away or let in
PROBE_WAIT = 60.0

_PROBE = """
import sys, ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
except Exception as exc:
    seen = exc
    for _ in range(10):  # the chain: Ray wraps the authentication error
        print(type(seen).__name__, str(seen).replace("\\n", " "))
        seen = seen.__cause__ or seen.__context__
        if seen is None:
            break
    sys.exit(3)
print("joined")
"""


def token_file(home: Path) -> Path:
    """The token file freight uses: the operator's RAY_AUTH_TOKEN_PATH, else FREIGHT_HOME's."""
    given = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(given) if given else home / TOKEN_FILE


def private_token_file(home: Path) -> Path:
    """The token file, made (mode 0600) if it is FREIGHT_HOME's and missing; refused (UserError) if
    anyone but this user may read or write it."""
    path = token_file(home)
    if not path.exists() and "RAY_AUTH_TOKEN_PATH" not in os.environ:
        _make(path)
    _check_private(path)
    return path


def use_token(home: Path) -> None:
    """Make this process (and the Ray processes it starts) speak to Ray with the token. Before
    `ray.init`; if Ray is imported already, its configuration is read again."""
    if not os.environ.get("RAY_AUTH_TOKEN"):
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(private_token_file(home))
    os.environ["RAY_AUTH_MODE"] = "token"
    if "ray" in sys.modules:
        from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


def _make(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))


def _check_private(path: Path) -> None:
    try:
        info = path.stat()
    except OSError as exc:
        raise UserError(f"cannot read the Ray token: {exc.strerror}", where=str(path)) from None
    if info.st_mode & 0o077 or info.st_uid != os.geteuid():
        raise UserError(
            f"the Ray token file is mode {stat.S_IMODE(info.st_mode):04o}, owner uid {info.st_uid}: "
            "jobs could read it",
            where=str(path),
            hint=f"chown {os.geteuid()} {path} && chmod 600 {path}",
        )


#: what Ray prints (its GCS client's log, then the exception chain) once it has been turned away
REFUSED = ("AuthenticationError", "InvalidAuthToken")


def refuse_open_cluster(address: str) -> None:
    """Raise unless the cluster at `address` turns away a caller without the token (asked from a
    separate process with no token, as a job would: ~1 s, once per process that joins).

    Ray's driver keeps asking a GCS that refused its token once a second for ~20 s before it gives
    up; the first refusal is the answer, so the probe is stopped as soon as it prints one."""
    with tempfile.TemporaryDirectory(prefix="freight-ray-probe-") as empty_home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": empty_home,  # not this user's ~/.ray/auth_token either
            "RAY_AUTH_MODE": "disabled",
        }
        for name in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "PYTHONPATH"):
            if name in os.environ:
                env[name] = os.environ[name]
        probe = subprocess.Popen(
            [sys.executable, "-c", _PROBE, address],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            probe.kill()

        output_pipe = probe.stdout
        assert output_pipe is not None  # stdout=PIPE
        timer = threading.Timer(PROBE_WAIT, expire)
        timer.start()
        lines: list[str] = []
        try:
            for line in output_pipe:
                lines.append(line)
                if any(mark in line for mark in REFUSED):
                    break  # the answer: Ray would only ask again
        finally:
            timer.cancel()
            probe.kill()
            probe.wait()
            output_pipe.close()
    output = "".join(lines)
    if "joined" in output.split():
        raise UserError(
            f"the Ray cluster at {address!r} lets callers in without a token: any job could drive "
            "freight's agents (root on every node)",
            where="FREIGHT_RAY_ADDRESS",
            hint="start every node with RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH=<freight's token "
            "file>; see docs/operations.md",
        )
    if not any(mark in output for mark in REFUSED):
        last = output.strip().splitlines()[-1:]
        said = last[0] if last and not expired.is_set() else f"no answer within {PROBE_WAIT:g} s"
        raise UserError(
            f"could not check that the Ray cluster at {address!r} requires a token: {said}",
            where="FREIGHT_RAY_ADDRESS",
        )
