"""Two `freight up` on one PostgreSQL store: one schedules, the other stands by. SIGKILL the leader
in the middle of a batch: the other takes the lease over within seconds (the dead holder's lease is
free at once on this host), re-attaches to what runs, and every job of the batch runs exactly once."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from freight.config import load_settings
from freight.db.schema import leases
from freight.jobs.service import JobService
from freight.jobs.states import JobState
from tests.server.conftest import _remove_cgroups
from tests.server.test_up import free_port, wait_up

pytestmark = pytest.mark.slow
JOBS = 48


def wait_for(what: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def env(tmp_path: Path, pg_url: str) -> Iterator[dict[str, str]]:
    parent = f"freight-test-{os.getpid()}-failover"
    yield {
        "FREIGHT_HOME": str(tmp_path / "home"),
        "FREIGHT_DATABASE_URL": pg_url,
        "FREIGHT_CGROUP_PARENT": parent,
    }
    _remove_cgroups(parent)


def serve(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    full = {**os.environ, **env}
    full.pop("FREIGHT_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "freight.cli.main", "up", "--port", str(port), "--log-format", "json"],
        env=full,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def holder_pid(svc: JobService) -> int | None:
    with svc.engine.connect() as conn:
        holder = conn.execute(select(leases.c.holder).where(leases.c.name == "scheduler")).scalar()
    return int(holder.split(":")[1]) if holder else None


def test_killing_the_leader_mid_batch_hands_over_in_seconds_and_runs_every_job_once(
    env: dict[str, str], tmp_path: Path
) -> None:
    ports = free_port(), free_port()
    leader = serve(env, ports[0])
    standby: subprocess.Popen[str] | None = None
    svc: JobService | None = None
    try:
        wait_up(f"http://127.0.0.1:{ports[0]}", leader)
        svc = JobService.open(load_settings(env))
        wait_for(lambda: holder_pid(svc) == leader.pid)  # type: ignore[arg-type]
        standby = serve(env, ports[1])
        wait_up(f"http://127.0.0.1:{ports[1]}", standby)
        marker = tmp_path / "ran.txt"
        script = f'echo "$FREIGHT_JOB_ID" >> {marker}; sleep 1'
        ids = [
            svc.submit({"command": ["sh", "-c", script], "resources": {"cpus": 0.25, "memory": "16M"}}).id
            for _ in range(JOBS)
        ]

        def succeeded() -> int:
            return sum(svc.get(i).state is JobState.SUCCEEDED for i in ids)  # type: ignore[union-attr]

        wait_for(lambda: succeeded() >= 8)
        assert succeeded() < JOBS  # mid-batch: some ran, some run, some wait
        leader.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        leader.wait()
        wait_for(lambda: holder_pid(svc) == standby.pid, timeout=60)  # type: ignore[union-attr, arg-type]
        handover = time.monotonic() - killed
        print(f"handover {handover:.2f}s")
        wait_for(lambda: all(svc.get(i).state.terminal for i in ids), timeout=180)  # type: ignore[union-attr]
        states = collections.Counter(svc.get(i).state for i in ids)
        assert states == {JobState.SUCCEEDED: JOBS}, states
        runs = collections.Counter(marker.read_text().split())
        assert runs == dict.fromkeys(ids, 1)  # every job ran, none twice
        assert handover < 10
    finally:
        for proc in (leader, standby):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
        if svc is not None:
            svc.close()
