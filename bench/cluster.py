"""Jobs/s on a 2-node Ray cluster against embedded mode, same machine, same run.

Both run N jobs of /bin/true with 0.1 cpu and 32M each through JobService (submit_many, then wait),
with the same total capacity: embedded offers this machine's 2 cpus; the cluster is two raylets on
127.0.0.1 with 1 cpu each (Ray's `num_cpus`), so placement, not capacity, is what differs. Each job on
the cluster goes scheduler -> Ray -> the node's freight agent -> its cgroup-isolated runtime, and its
exit comes back by one poll per node and tick. The overhead per job is the cluster's extra wall time
per job: (t_cluster - t_embedded) / N. Target: < 5 ms.

    python bench/cluster.py [--jobs 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from freight.config import load_settings
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.runtime.ray_auth import use_token
from freight.runtime.ray_cluster import loopback_only

RESULTS = Path(__file__).parent / "results"
SPEC = JobSpec(command=["/bin/true"], resources={"cpus": 0.1, "memory": "32M"})


def rate(svc: JobService, n: int) -> tuple[float, dict[str, int]]:
    """Seconds from the first submit to the last end of n jobs, and their final states."""
    start = time.perf_counter()
    views = svc.submit_many([SPEC] * n)
    done = svc.wait([v.id for v in views], timeout=1800)
    seconds = time.perf_counter() - start
    states: dict[str, int] = {}
    for view in done:
        states[view.state.value] = states.get(view.state.value, 0) + 1
    return seconds, states


def measure(env: dict[str, str], n: int, rounds: int) -> tuple[list[float], dict[str, int], str]:
    svc = JobService.open(load_settings(env))
    try:
        scheduler = svc.start_scheduler()
        svc.wait([v.id for v in svc.submit_many([SPEC] * 20)], timeout=300)  # warm up: agents, slots
        times, states = [], {}
        for _ in range(rounds):
            seconds, states = rate(svc, n)
            times.append(seconds)
        return times, states, scheduler.runtime.description
    finally:
        svc.close()


def remove_slots(parent: str) -> None:
    """This run's cgroup slots (the embedded scheduler's and every agent's, below `parent`)."""
    from freight.runtime.cgroups import CgroupUnavailable, open_cgroups
    from freight.runtime.slots import SlotPool

    with contextlib.suppress(CgroupUnavailable):
        SlotPool(open_cgroups(parent)).destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    n = args.jobs
    loopback_only()
    import ray
    from ray.cluster_utils import Cluster

    tag = f"freight-bench-cluster-{os.getpid()}"
    root = Path(tempfile.mkdtemp(prefix="freight-bench-cluster-"))
    result: dict[str, Any] = {
        "benchmark": "cluster",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__},
        "jobs": n,
        "rounds": args.rounds,
        "spec": "/bin/true, 0.1 cpu, 32M",
    }
    cluster = None
    try:
        embedded_env = {
            "FREIGHT_HOME": str(root / "embedded"),
            "FREIGHT_CGROUP_PARENT": tag,
            "FREIGHT_CPUS": "2",
        }
        embedded, e_states, e_isolation = measure(embedded_env, n, args.rounds)
        use_token(root / "cluster")  # freight joins only clusters that require its token: start this one so
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        cluster_env = {
            "FREIGHT_HOME": str(root / "cluster"),
            "FREIGHT_CGROUP_PARENT": tag,
            "FREIGHT_RAY_ADDRESS": cluster.address,
        }
        on_cluster, c_states, c_isolation = measure(cluster_env, n, args.rounds)
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        shutil.rmtree(root, ignore_errors=True)
        remove_slots(tag)
    best_e, best_c = min(embedded), min(on_cluster)
    overhead_ms = (best_c - best_e) / n * 1000
    result["embedded"] = {
        "seconds": [round(s, 3) for s in embedded],
        "per_s": round(n / best_e, 1),
        "states": e_states,
        "isolation": e_isolation,
    }
    result["cluster_2_nodes"] = {
        "seconds": [round(s, 3) for s in on_cluster],
        "per_s": round(n / best_c, 1),
        "states": c_states,
        "isolation": c_isolation,
    }
    result["cluster_vs_embedded"] = round(best_e / best_c, 3)
    result["overhead_ms_per_job"] = round(overhead_ms, 3)
    result["overhead_ms_per_job_median_rounds"] = round(
        (statistics.median(on_cluster) - statistics.median(embedded)) / n * 1000, 3
    )
    print(f"embedded        : {n / best_e:8.1f} jobs/s  (best of {embedded}; states {e_states})")
    print(f"2-node cluster  : {n / best_c:8.1f} jobs/s  (best of {on_cluster}; states {c_states})")
    print(f"cluster/embedded: {best_e / best_c:.3f}x; overhead per job {overhead_ms:.2f} ms (target < 5 ms)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'cluster.json'}")


if __name__ == "__main__":
    main()
