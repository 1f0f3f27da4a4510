"""Pipelines and builds run unchanged on a real two-node Ray cluster with an S3 object store (issue 9).

One rig for the module: a SeaweedFS S3 server, a Ray cluster of a 1-cpu `zone=eu` head and a 2-cpu
`zone=us` worker (tests/raycluster.py), and the JobService `freight up --ray` runs on it with
FREIGHT_OBJECT_STORE=s3://... Every step and build task is a job on a node's agent (cgroup slot,
shim); the workloads are the same code the CLI runs, given the cluster's JobService.

Where each job lands follows from its size: a 2-cpu job fits only the us node; a 1-cpu job fits both,
and bin-packing takes the node it leaves fullest, eu (us, when free, would keep 1 of its 2 cpus).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from freight.builds.api import Builds
from freight.builds.sample import git_commit
from freight.config import load_settings, log_key
from freight.jobs.service import JobService
from freight.pipelines.loader import load_pipeline
from freight.pipelines.runner import PipelineRunner
from freight.pipelines.store import RunStore
from freight.storage.objectstore import ObjectStore
from tests.builds.conftest import install_esbuild, sample_workspace
from tests.conftest import CGROUP_PARENT, pg_database
from tests.raycluster import cluster_service, job_folder, node_of, two_node_cluster, until
from tests.storage.seaweed import BUCKET, KEY, SECRET, seaweed_s3

pytestmark = pytest.mark.slow
OBJECTS = f"s3://{BUCKET}/freight"


@dataclass
class Rig:
    svc: JobService
    #: a folder of the module's own that jobs may read and write
    root: Path

    def node_id(self, zone: str) -> str:
        return str(node_of(self.svc, zone)["id"])

    def ran_on(self, job_id: str) -> str | None:
        """The node the job's last attempt ran on."""
        return self.svc.get(job_id).attempt_list[-1].node


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    root = job_folder("workloads-")
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        endpoint = stack.enter_context(seaweed_s3())
        env = stack.enter_context(pytest.MonkeyPatch.context())
        # the AWS way, for every process: the server, step jobs (pipelines pass AWS_*) and the nodes'
        # agents (which archive logs), which inherit the environment the cluster starts with
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", KEY)
        env.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        # what every machine sharing a build cache shares (builds/signing.py)
        env.setenv("FREIGHT_BUILD_CACHE_KEY", "cluster-workloads-test-key")
        cluster = stack.enter_context(two_node_cluster())
        # the object store is a setting of the service only: the agents must get it from there
        svc = stack.enter_context(
            cluster_service(cluster.address, root / "home", FREIGHT_OBJECT_STORE=OBJECTS)
        )
        yield Rig(svc, root)


@pytest.fixture(scope="module")
def warehouse() -> Iterator[str]:
    """A PostgreSQL database of the module's own (dropped afterwards): the warehouse every node reaches."""
    yield from pg_database()


def test_a_pipelines_steps_run_on_different_nodes_and_pass_data_through_s3(rig: Rig, warehouse: str) -> None:
    base = rig.root / "etl"
    base.mkdir()
    config = base / "freight.toml"
    config.write_text(f'[connections.warehouse]\nkind = "postgres"\nurl = "{warehouse}"\n')
    spec = base / "etl.yaml"
    spec.write_text(
        """
name: cluster-etl
defaults:
  resources: {cpus: 1, memory: 384M}
steps:
  - name: names            # 2 cpus: only the us node has them
    type: transform-sql
    resources: {cpus: 2}
    sql: "SELECT i::INTEGER AS id, 'name-' || i AS name FROM range(1, 4) t(i)"
  - name: scores           # 1 cpu: the eu node
    type: transform-sql
    sql: "SELECT i::INTEGER AS id, i * 10 AS score FROM range(1, 4) t(i)"
  - name: joined
    type: transform-sql
    inputs: [names, scores]
    sql: "SELECT n.id, n.name, s.score FROM names n JOIN scores s USING (id)"
  - name: load
    type: load
    inputs: [joined]
    table: scored
    mode: replace
"""
    )
    settings = rig.svc.settings
    store = RunStore.open(settings.database_url)
    try:
        runner = PipelineRunner(rig.svc, store, settings, config_path=config)
        run = runner.run(load_pipeline(spec), spec_path=str(spec), poll=0.2)
    finally:
        store.close()
    steps = {s.step: s for s in run.steps}
    assert run.state == "succeeded", [(s.step, s.state, s.error) for s in run.steps]
    assert {name: s.state for name, s in steps.items()} == dict.fromkeys(steps, "succeeded")

    # the two independent steps ran on different nodes, each where its size put it
    names_node = rig.ran_on(steps["names"].job_id or "")
    scores_node = rig.ran_on(steps["scores"].job_id or "")
    assert names_node == rig.node_id("us") and scores_node == rig.node_id("eu")

    # their data went through S3: every step's dataset is in the bucket, nothing under FREIGHT_HOME
    assert run.run_url.startswith(f"{OBJECTS}/runs/cluster-etl/")
    for name in ("names", "scores", "joined"):
        url = steps[name].output_url or ""
        assert url == f"{run.run_url}/{name}"
        assert any(key.endswith(".parquet") for key in ObjectStore(url).list()), name
    # each node's agent archives its steps' logs there too (it does so as it releases the attempt)
    objects = ObjectStore(OBJECTS)
    for name in ("names", "scores"):
        key = log_key(steps[name].job_id or "", 1)
        until(lambda key=key: objects.exists(key), f"the {name} step's log is archived in S3")
    assert not (settings.home / "objects").exists()

    with psycopg.connect(warehouse) as conn:
        rows = conn.execute("SELECT id, name, score FROM scored ORDER BY id").fetchall()
    assert rows == [(1, "name-1", 10), (2, "name-2", 20), (3, "name-3", 30)]
    assert steps["load"].rows == 3


def test_a_builds_apps_spread_over_the_nodes_and_a_fresh_checkout_restores_them_from_s3(rig: Rig) -> None:
    ws = sample_workspace(rig.root / "ws", 2, install_esbuild())
    with (ws / "freight.toml").open("a") as toml:  # app-01 only fits the us node; app-02 goes to eu
        toml.write('\n[apps.app-01]\ncpus = 2\nmemory = "512M"\n\n[apps.app-02]\ncpus = 1\nmemory = "512M"\n')
    git_commit(ws, "size the apps for the cluster")
    checkout = rig.root / "checkout"
    shutil.copytree(ws, checkout, symlinks=True)  # another machine's clone, dependencies installed
    apps = {"@sample/app-01#build", "@sample/app-02#build"}

    with Builds.open(rig.svc.settings) as builds:
        cold = builds.build(rig.svc, ws)
    assert cold.ok, cold.table()
    assert {t for t, r in cold.results.items() if r.status == "built"} == apps
    nodes = {t: rig.ran_on(cold.results[t].job_id or "") for t in apps}
    assert nodes == {"@sample/app-01#build": rig.node_id("us"), "@sample/app-02#build": rig.node_id("eu")}
    assert {r["app"] for r in cold.releases if r["new"]} == {"app-01", "app-02"}

    # a fresh FREIGHT_HOME (no local cache, no state) that shares only the S3 object store
    fresh = load_settings(
        {
            "FREIGHT_HOME": str(rig.root / "home2"),
            "FREIGHT_CGROUP_PARENT": CGROUP_PARENT,
            "FREIGHT_OBJECT_STORE": OBJECTS,
        }
    )
    with Builds.open(fresh) as builds:
        warm = builds.build(rig.svc, checkout)
    assert warm.ok, warm.table()
    cached = {t: r for t, r in warm.results.items() if r.status == "cached"}
    assert set(cached) == apps and {r.cache for r in cached.values()} == {"shared"}
    assert all(r.job_id is None for r in warm.results.values())  # nothing ran
    for app in ("app-01", "app-02"):
        built = sorted(p.relative_to(ws) for p in (ws / "apps" / app / "dist").rglob("*") if p.is_file())
        assert built, app
        restored = sorted(
            p.relative_to(checkout) for p in (checkout / "apps" / app / "dist").rglob("*") if p.is_file()
        )
        assert restored == built
        for rel in built:
            assert (checkout / rel).read_bytes() == (ws / rel).read_bytes(), rel
    # the same content is the same release, already in S3 (`new` is per state store: this home's own)
    assert {(r["app"], r["release"]) for r in warm.releases} == {
        (r["app"], r["release"]) for r in cold.releases
    }
