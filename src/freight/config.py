"""Settings, read once from the environment.

Everything has an embedded default, so a fresh install works with no servers: state in SQLite and
objects on the local disk, both under FREIGHT_HOME (default ./.freight).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from freight.errors import UserError
from freight.units import parse_bytes, parse_cpus


def log_key(job_id: str, attempt: int) -> str:
    """An attempt's log, relative to FREIGHT_HOME: its local path and its key in the object store
    alike. Job ids start with their submission time in hex, so the first 8 digits bucket logs by
    ~minute: one directory per minute, not a mkdir per job."""
    return f"logs/{job_id[:8]}/{job_id}.{attempt}.log"


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    object_store_url: str
    #: Capacity this node offers to jobs; None means "detect".
    cpus: float | None = None
    memory: int | None = None
    #: "auto" (cgroups when writable, else rlimits), "cgroups" (required) or "rlimits".
    isolation: str = "auto"
    #: Name of the cgroup (under each controller's root) freight keeps its slots in.
    cgroup_parent: str = "freight"
    #: Keep an attempt's log file on this node after it is archived to the object store.
    keep_local_logs: bool = True
    #: Remote mode: talk to a freight server instead of the local store.
    url: str | None = None
    token: str | None = None
    #: The unprivileged user jobs run as when the server runs as root (made on first start if missing).
    job_user: str = "freight-job"
    #: host:port of the image registry (FREIGHT_REGISTRY); None: the local one `freight up` runs, if any
    registry: str | None = None
    #: When set, /metrics answers only `Authorization: Bearer <this>` (or an admin API token).
    metrics_token: str | None = None
    #: Folders whose pipeline files an API request may name (FREIGHT_PIPELINE_ROOTS, ':'-separated).
    #: Without any, only an admin token may name files on the server.
    pipeline_roots: tuple[Path, ...] = ()
    #: the Ray cluster whose nodes run the jobs (FREIGHT_RAY_ADDRESS; `auto`: RAY_ADDRESS); None:
    #: embedded, this machine is the one node
    ray_address: str | None = None
    #: queues whose jobs spread over the nodes instead of bin-packing them (FREIGHT_SPREAD_QUEUES)
    spread_queues: frozenset[str] = frozenset()
    #: seconds a cluster node Ray calls alive may leave its agent silent before it is declared lost
    #: and its attempts retried elsewhere (FREIGHT_NODE_LOST_AFTER); until then it only takes no jobs
    node_lost_after: float = 300.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    def log_path(self, job_id: str, attempt: int) -> Path:
        """Where an attempt's output goes (see log_key)."""
        return self.home / log_key(job_id, attempt)

    #: Per-attempt shim records (pid, exit status); None picks a tmpfs directory (see run_dir).
    run_dir_override: Path | None = None

    @property
    def run_dir(self) -> Path:
        """Per-attempt shim records. They must survive a scheduler restart but not a reboot (after a
        reboot every attempt is gone anyway), so they live on tmpfs when there is one, as runc and
        conmon keep theirs under /run: a few files per attempt cost microseconds there instead of
        tens to hundreds of microseconds each on a disk."""
        if self.run_dir_override is not None:
            return self.run_dir_override
        tmpfs = _tmpfs_dir()
        if tmpfs is None:
            return self.home / "attempts"
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
        return tmpfs / f"freight-{digest}"

    def with_home(self, home: Path) -> Settings:
        return replace(
            self,
            home=home,
            database_url=_default_db(home),
            object_store_url=(home / "objects").resolve().as_uri(),
        )


@functools.cache
def _tmpfs_dir() -> Path | None:
    try:
        with open("/proc/mounts") as mounts:
            tmpfs = {line.split()[1] for line in mounts if line.split()[2] == "tmpfs"}
    except OSError:
        return None
    for candidate in ("/run", "/dev/shm"):
        if candidate in tmpfs and os.access(candidate, os.W_OK | os.X_OK):
            return Path(candidate)
    return None


def _default_db(home: Path) -> str:
    return f"sqlite:///{(home / 'freight.db').resolve()}"


def _flag(env: dict[str, str], name: str, *, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise UserError(f"{name} must be true or false, not {env[name]!r}", where=name, hint="use true or false")


def _roots(text: str) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser().resolve() for p in text.split(os.pathsep) if p.strip())


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build settings from FREIGHT_* environment variables."""
    env = dict(os.environ if env is None else env)
    home = Path(env.get("FREIGHT_HOME", ".freight")).expanduser().resolve()
    try:
        cpus = parse_cpus(env["FREIGHT_CPUS"]) if env.get("FREIGHT_CPUS") else None
    except ValueError as exc:
        raise UserError(str(exc), where="FREIGHT_CPUS") from None
    try:
        memory = parse_bytes(env["FREIGHT_MEMORY"]) if env.get("FREIGHT_MEMORY") else None
    except ValueError as exc:
        raise UserError(str(exc), where="FREIGHT_MEMORY") from None
    isolation = env.get("FREIGHT_ISOLATION", "auto")
    if isolation not in {"auto", "cgroups", "rlimits"}:
        raise UserError(
            f"unknown isolation {isolation!r}", where="FREIGHT_ISOLATION", hint="use auto, cgroups or rlimits"
        )
    url = env.get("FREIGHT_URL") or None
    if url is not None and not url.startswith(("http://", "https://")):
        raise UserError(
            f"{url!r} is not a server address", where="FREIGHT_URL", hint="write it like http://host:8321"
        )
    return Settings(
        home=home,
        database_url=env.get("FREIGHT_DATABASE_URL") or _default_db(home),
        object_store_url=env.get("FREIGHT_OBJECT_STORE") or (home / "objects").as_uri(),
        cpus=cpus,
        memory=memory,
        isolation=isolation,
        cgroup_parent=env.get("FREIGHT_CGROUP_PARENT", "freight"),
        run_dir_override=Path(env["FREIGHT_RUN_DIR"]) if env.get("FREIGHT_RUN_DIR") else None,
        keep_local_logs=_flag(env, "FREIGHT_LOG_KEEP_LOCAL", default=True),
        url=url,
        token=env.get("FREIGHT_TOKEN") or None,
        job_user=env.get("FREIGHT_JOB_USER") or "freight-job",
        registry=env.get("FREIGHT_REGISTRY") or None,
        metrics_token=env.get("FREIGHT_METRICS_TOKEN") or None,
        pipeline_roots=tuple(
            Path(p).expanduser().resolve()
            for p in env.get("FREIGHT_PIPELINE_ROOTS", "").split(os.pathsep)
            if p
        ),
        ray_address=_ray_address(env),
        spread_queues=frozenset(
            q.strip() for q in env.get("FREIGHT_SPREAD_QUEUES", "").split(",") if q.strip()
        ),
        node_lost_after=_seconds(env, "FREIGHT_NODE_LOST_AFTER", 300.0),
    )


def _seconds(env: dict[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise UserError(f"{name} must be a number of seconds, not {text!r}", where=name, hint="e.g. 300")
    return value


def _ray_address(env: dict[str, str]) -> str | None:
    address = env.get("FREIGHT_RAY_ADDRESS", "").strip()
    if address != "auto":
        return address or None
    found = env.get("RAY_ADDRESS", "").strip()
    if not found:
        raise UserError(
            "FREIGHT_RAY_ADDRESS is auto but RAY_ADDRESS is not set",
            where="FREIGHT_RAY_ADDRESS",
            hint="set RAY_ADDRESS (host:6379), or give the address itself",
        )
    return found
