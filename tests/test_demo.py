"""`make run`'s demo, end to end: server, scheduler, the jobs demo and the workload demos."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from freight.config import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_shows_what_happened_and_prints_url_and_token(settings: Settings) -> None:
    env = dict(os.environ)
    env.update(
        FREIGHT_HOME=str(settings.home),
        FREIGHT_CGROUP_PARENT=settings.cgroup_parent,
        FREIGHT_DEMO_EXIT="1",
        FREIGHT_PORT=str(free_port()),
    )
    env.pop("FREIGHT_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "freight.demo"], env=env, capture_output=True, text=True, timeout=300
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    for said in ("memory-hog", "oom_killed", "timed_out", "flaky", "cancelled", "succeeded"):
        assert said in out
    assert "pipeline demo-shop" in out and "succeeded" in out
    assert f"http://127.0.0.1:{env['FREIGHT_PORT']}" in out
    assert "admin token:     frt_" in out
