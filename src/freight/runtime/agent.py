"""NodeAgent: one per node of a cluster, it runs that node's attempts through the node's own runtime.

The agent is the same ShimRuntime the embedded mode uses (cgroup slots, the exit-recording shim, OOM
read from the cgroup), so limits stay hard on every node; it only speaks plain data (JSON-able dicts
and strings) so any transport can carry it. On a Ray cluster it is a Ray actor pinned to its node
(runtime/ray_cluster.py); in tests it is also used directly.

Each agent keeps its attempts apart from other agents on the same machine (a test cluster runs several
"nodes" on one host): its cgroup slots live under `<cgroup_parent>/<node>` and its shim records under
`<run_dir>/<node>`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections import OrderedDict
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from freight.config import Settings, load_settings, log_key
from freight.runtime.base import AttemptRequest, Container, Handle, Limits, Mount, Outcome, Recovered
from freight.runtime.capacity import detect_capacity
from freight.runtime.jobuser import job_user

log = logging.getLogger("freight.agent")

#: most bytes of log one read_log call returns
LOG_CHUNK = 1 << 20
#: released attempts remembered, so a late call about one (usage racing its release) claims nothing
RELEASED_KEPT = 10_000


def agent_settings(env: dict[str, str], node: str) -> Settings:
    """The node's settings: the server's FREIGHT_* settings, with slots and records kept per node."""
    settings = load_settings(env)
    short = node[:12]
    return replace(
        settings,
        cgroup_parent=f"{settings.cgroup_parent}/{short}",
        run_dir_override=settings.run_dir / short,
    )


class NodeAgent:
    def __init__(self, env: dict[str, str], node: str, labels: dict[str, str] | None = None) -> None:
        from freight.runtime.factory import create_job_runtime

        self.node = node
        self.labels = dict(labels or {})
        self.settings = agent_settings(env, node)
        # image attempts run under this node's podman, as on the embedded scheduler's node
        self.runtime = create_job_runtime(self.settings)
        self.cpus, self.memory = detect_capacity(self.settings)
        #: attempts this agent started or adopted: one it meets first in another call ran under an
        #: agent before it (replaced after it died) and is adopted first, so its cgroup slot is
        #: claimed again and never handed to a new attempt while it runs
        self._known: set[str] = set()
        #: attempts released here (most recent last): never adopted again, or a call that raced the
        #: release (Ray runs up to 16 at once) would claim the slot for an ended attempt for good
        self._released: OrderedDict[str, None] = OrderedDict()
        #: held while an attempt is adopted or released (the two must not interleave)
        self._lock = threading.Lock()

    def _adopted(self, text: str) -> Handle:
        handle = Handle.from_json(text)
        with self._lock:
            if handle.attempt_id not in self._known and handle.attempt_id not in self._released:
                self.runtime.recover(handle)
                self._known.add(handle.attempt_id)
        return handle

    def info(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "cpus": self.cpus,
            "memory": self.memory,
            "labels": self.labels,
            "isolation": self.runtime.description,
            "podman": self.runtime.podman_found(),
        }

    def start(self, request: dict[str, Any]) -> str:
        """Start one attempt (AttemptRequest as a dict); returns its handle as JSON."""
        env = {**request["env"], "FREIGHT_NODE": self.node}
        log_path = self._log_file(request["log_path"])
        log_path.parent.mkdir(parents=True, exist_ok=True)
        attempt = AttemptRequest(
            attempt_id=request["attempt_id"],
            argv=list(request["argv"]),
            env=env,
            cwd=request.get("cwd"),
            limits=Limits(**request["limits"]),
            log_path=log_path,
            user=self._user() if request.get("user") is not None else None,
            container=container_from_dict(request.get("container")),
        )
        handle = self.runtime.start(attempt)
        with self._lock:
            self._known.add(handle.attempt_id)
        return handle.to_json()

    def _user(self) -> tuple[int, int] | None:
        """This node's own job user: uids differ from machine to machine, so the scheduler's say
        only that the job runs unprivileged, never which uid."""
        user = job_user(self.settings.job_user)
        return None if user is None else (user.uid, user.gid)

    def poll(self, handles: list[str]) -> dict[str, dict[str, Any] | None]:
        """attempt id -> its outcome (as a dict) for the attempts that ended, None for the others."""
        out: dict[str, dict[str, Any] | None] = {}
        for text in handles:
            handle = self._adopted(text)
            outcome = self.runtime.poll(handle)
            out[handle.attempt_id] = asdict(outcome) if outcome is not None else None
        return out

    def wait(self, handle: str, timeout: float | None = None) -> dict[str, Any] | None:
        outcome = self.runtime.wait(self._adopted(handle), timeout)
        return asdict(outcome) if outcome is not None else None

    def signal(self, handle: str, signum: int) -> None:
        self.runtime.signal(self._adopted(handle), signum)

    def terminate(self, handle: str) -> None:
        self.runtime.terminate(self._adopted(handle))

    def kill(self, handle: str) -> None:
        self.runtime.kill(self._adopted(handle))

    def release(self, handle: str, log_path: str | None = None) -> bool:
        """Give the attempt's slot back (its outcome is committed). With `log_path`, its log goes to
        the object store from this node first, so every server can read it even when this node's
        disk is not theirs. Returns whether the log was archived."""
        confined = None if log_path is None else self._log_file(log_path)  # before any change
        found = self._adopted(handle)
        with self._lock:  # first: from here on no call adopts it again
            self._known.discard(found.attempt_id)
            self._released[found.attempt_id] = None
            while len(self._released) > RELEASED_KEPT:
                self._released.popitem(last=False)
        self.runtime.release(found)
        return confined is not None and self._archive(found.attempt_id, confined)

    def _archive(self, attempt_id: str, log_path: Path) -> bool:
        from freight.storage.objectstore import ObjectStore

        job_id, _, number = attempt_id.rpartition("-")
        if not (job_id and number.isdigit()):  # not a job's attempt ("<job id>-<n>"): no archive key
            return False
        key = log_key(job_id, int(number))
        try:
            ObjectStore(self.settings.object_store_url).put_file(key, log_path, link=True)
        except FileNotFoundError:
            return False
        except Exception:  # the server's archiver, or a reader of this node's file, is the fallback
            log.exception("could not archive the log of attempt %s from node %s", attempt_id, self.node)
            return False
        return True

    def recover(self, handle: str) -> dict[str, Any] | str:
        """The outcome (a dict) if the attempt ended, else "running" or "vanished"."""
        attempt = Handle.from_json(handle)
        with self._lock:
            if attempt.attempt_id in self._released:
                return Recovered.VANISHED.value  # released here: its slot is not its own any more
            found = self.runtime.recover(attempt)
            self._known.add(attempt.attempt_id)
        return found.value if isinstance(found, Recovered) else asdict(found)

    def usage(self, handle: str) -> tuple[int | None, float | None]:
        return self.runtime.usage(self._adopted(handle))

    def read_log(self, path: str, offset: int = 0, size: int = LOG_CHUNK) -> bytes:
        """Up to `size` bytes of an attempt's log from `offset` (b"" at its end or when absent), so
        logs can be followed live from another machine. Only files under this node's log folder."""
        with contextlib.suppress(FileNotFoundError), open(self._log_file(path), "rb") as log:
            log.seek(offset)
            return log.read(min(size, LOG_CHUNK))
        return b""

    def _log_file(self, path: str) -> Path:
        """`path` if it names a file under this node's log folder (links resolved), else refused:
        the agent runs as root, and its callers say which file to write, read or archive."""
        logs = Path(os.path.realpath(self.settings.logs_dir))
        found = Path(os.path.realpath(path))
        if found == logs or not found.is_relative_to(logs):
            raise PermissionError(f"{path}: not a log file of this node (under {logs})")
        return found


def container_from_dict(data: dict[str, Any] | None) -> Container | None:
    """The request's container (dataclasses.asdict of a Container), or None for a process attempt."""
    if data is None:
        return None
    mounts = tuple(Mount(**mount) for mount in data.get("mounts") or ())
    return Container(image=data["image"], network=data.get("network", "none"), mounts=mounts)


def outcome_from_dict(data: dict[str, Any]) -> Outcome:
    return Outcome(**data)
