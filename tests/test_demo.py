"""`make run`'s demo, end to end: server, scheduler, the jobs demo and the workload demos; run twice,
it tells the same story (its home is its own, emptied on each run)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from freight.config import Settings
from freight.demo import DEMO_MARK, fresh_demo_home
from freight.errors import UserError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_demo(settings: Settings, port: int) -> str:
    env = dict(os.environ)
    env.update(
        FREIGHT_DEMO_HOME=str(settings.home),
        FREIGHT_HOME=str(settings.home.parent / "the-users-own-home"),  # not the demo's
        FREIGHT_CGROUP_PARENT=settings.cgroup_parent,
        FREIGHT_DEMO_EXIT="1",
        FREIGHT_PORT=str(port),
    )
    env.pop("FREIGHT_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "freight.demo"], env=env, capture_output=True, text=True, timeout=300
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    return out


def test_demo_tells_the_same_story_twice_and_prints_url_and_token(settings: Settings) -> None:
    port = free_port()
    for _ in range(2):  # the second run used to show a "cold build" of cache hits, and more
        out = run_demo(settings, port)
        for said in ("memory-hog", "oom_killed", "timed_out", "flaky", "cancelled", "succeeded"):
            assert said in out
        assert "pipeline demo-shop" in out and "succeeded" in out
        assert "3 built, 0 cached" in out
        assert "built 1, cached 2" in out
        assert "the first page is back = True" in out
        assert "dependencies None" not in out and "install took -" not in out
        assert f"http://127.0.0.1:{port}" in out
        assert "admin token:     frt_" in out
    assert not (settings.home.parent / "the-users-own-home").exists()


def test_the_demo_empties_only_a_home_of_its_own(tmp_path: Path) -> None:
    mine = tmp_path / "demo"
    fresh_demo_home(mine)
    (mine / "left-over").write_text("x")
    assert sorted(p.name for p in fresh_demo_home(mine).iterdir()) == [DEMO_MARK]
    users = tmp_path / "users"
    users.mkdir()
    (users / "freight.db").write_text("precious")
    with pytest.raises(UserError, match="is not a demo home"):
        fresh_demo_home(users)
    assert (users / "freight.db").read_text() == "precious"
