"""A Ray cluster whose autoscaler adds and removes nodes on this machine: Ray's fake multi-node
provider (`RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=...`), on private ports and a
temp dir of its own.

Ray's `AutoscalingCluster` helper is not used: it runs `ray stop --force`, which kills every Ray
process on the machine (other tests' clusters too), and reads an example config the wheel does not
ship. This one stops only the processes of its own cluster (those whose command line names its temp
dir: the head, the monitor and the nodes the autoscaler started)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HEAD_TYPE = "ray.head.default"
WORKER_TYPE = "freight.worker"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def autoscaling_config(
    port: int, worker_cpus: float, max_workers: int, idle_minutes: float
) -> dict[str, Any]:
    # The fake provider starts nodes with RayParams, which take no `memory` resource: worker types
    # declare CPUs only here (freight's bundles then carry CPUs only: FREIGHT_AUTOSCALE_BUNDLE_MEMORY=off).
    worker = {"CPU": worker_cpus, "object_store_memory": 80 << 20}
    return {
        "cluster_name": "freight-test",
        "max_workers": max_workers,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": f"127.0.0.1:{port}",
        },
        "available_node_types": {
            HEAD_TYPE: {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
            WORKER_TYPE: {
                "resources": worker,
                "node_config": {},
                "min_workers": 0,
                "max_workers": max_workers,
            },
        },
        "head_node_type": HEAD_TYPE,
        "auth": {},
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_minutes,
        "docker": {},
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
    }


def _own_pids(folder: Path) -> list[int]:
    mark = str(folder).encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if mark in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
    return found


@contextlib.contextmanager
def fake_autoscaling_cluster(
    *, worker_cpus: float = 1, max_workers: int = 2, idle_minutes: float = 0.05
) -> Iterator[str]:
    """Yield the GCS address of a one-node (1 CPU head) cluster that may grow by `max_workers`
    nodes of `worker_cpus` CPUs; idle nodes go after `idle_minutes`."""
    from freight.runtime.ray_cluster import loopback_only

    loopback_only()  # the head, the monitor and the nodes it starts stay on 127.0.0.1
    folder = Path(tempfile.mkdtemp(prefix="frt-ray-", dir="/tmp"))  # short: Ray's socket paths
    port = _free_port()
    config = folder / "autoscaling.json"
    config.write_text(json.dumps(autoscaling_config(port, worker_cpus, max_workers, idle_minutes)))
    argv = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--port={port}"]
    argv += ["--node-ip-address=127.0.0.1", f"--autoscaling-config={config}", "--num-cpus=1"]
    argv += ["--include-dashboard=false", f"--temp-dir={folder}", "--object-store-memory=80000000"]
    argv += ["--min-worker-port=0", "--max-worker-port=0", "--dashboard-agent-listen-port=0"]
    env = {**os.environ, "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_FAKE_CLUSTER": "1"}
    log = (folder / "head.log").open("wb")
    head = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while b"Ray runtime started" not in (folder / "head.log").read_bytes():
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start: {(folder / 'head.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield address
    finally:
        for pid in [head.pid, *_own_pids(folder)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        head.wait()
        log.close()
        with contextlib.suppress(OSError):
            subprocess.run(["rm", "-rf", str(folder)], check=False)
