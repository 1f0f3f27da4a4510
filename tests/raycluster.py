"""A real two-node Ray cluster on this machine for tests, and freight's JobService on it.

`two_node_cluster()` starts `ray.cluster_utils.Cluster` with raylets on 127.0.0.1: a 1-cpu/1G head
labelled `zone=eu` and a 2-cpu/2G worker labelled `zone=us` (Ray resources `label:zone=...`). Every
process Ray starts inherits this process's environment as it is when the cluster starts (the agents'
object store credentials, say). `cluster_service()` opens the JobService `freight up --ray` runs on it,
with its scheduler started. Start one per test module: a cluster takes ~10 s to come up.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from freight.config import load_settings
from freight.jobs.service import JobService
from freight.runtime.ray_cluster import loopback_only
from tests.conftest import CGROUP_PARENT, JOB_TMP

G = 1 << 30


def until(done: Callable[[], bool], what: str, seconds: float = 120) -> None:
    """Poll `done` until it holds; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached: {what}")
        time.sleep(0.2)


def job_folder(prefix: str) -> Path:
    """A fresh folder under JOB_TMP that jobs (the job user) may write into; the caller removes it."""
    JOB_TMP.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=JOB_TMP))
    root.chmod(0o1777 if os.geteuid() == 0 else 0o700)
    return root


@contextlib.contextmanager
def two_node_cluster() -> Iterator[Any]:
    """Yield a running `ray.cluster_utils.Cluster` (eu head: 1 cpu, 1G; us worker: 2 cpus, 2G); shut
    it down, and this process's Ray connection, afterwards."""
    loopback_only()  # before Ray starts any process
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "memory": G,
            "resources": {"label:zone=eu": 1},
            "include_dashboard": False,
        },
    )
    try:
        cluster.add_node(num_cpus=2, memory=2 * G, resources={"label:zone=us": 1})
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@contextlib.contextmanager
def cluster_service(address: str, home: Path, **env: str) -> Iterator[JobService]:
    """The JobService of `freight up --ray ADDRESS` (FREIGHT_HOME `home`, the tests' cgroup parent,
    more FREIGHT_* settings in `env`), its scheduler running; closed afterwards."""
    settings = load_settings(
        {
            "FREIGHT_HOME": str(home),
            "FREIGHT_CGROUP_PARENT": CGROUP_PARENT,
            "FREIGHT_RAY_ADDRESS": address,
            **env,
        }
    )
    svc = JobService.open(settings)
    try:
        svc.start_scheduler(poll_interval=0.2)
        yield svc
    finally:
        svc.close()


def node_of(svc: JobService, zone: str) -> dict[str, Any]:
    """The node labelled `zone=<zone>`, as `freight nodes` lists it."""
    return next(n for n in svc.nodes() if n["labels"].get("zone") == zone)
