"""`freight up` as a user runs it: one process serving the API and the UI and running the scheduler;
the first start prints an admin token once; SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.server.conftest import _remove_cgroups


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(home: Path, port: int, parent: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FREIGHT_HOME": str(home), "FREIGHT_CGROUP_PARENT": parent}
    env.pop("FREIGHT_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "freight.cli.main", "up", "--port", str(port), "--log-format", "json"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_up(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("freight up did not come up")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


def test_freight_up_serves_everything_and_prints_the_first_admin_token_once(tmp_path: Path) -> None:
    parent = f"freight-test-{os.getpid()}-up"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        proc = start(tmp_path / "home", port, parent)
        wait_up(url, proc)
        headers = {}
        try:
            tokens = httpx.get(f"{url}/api/v1/jobs").status_code
            assert tokens == 401
            ui = httpx.get(f"{url}/jobs", follow_redirects=False)
            assert ui.status_code == 303 and ui.headers["location"].startswith("/login")
        finally:
            first = stop(proc)
        token = re.search(r"\n    (frt_\S+)\n", first)
        assert token, first
        assert f"export FREIGHT_URL={url} FREIGHT_TOKEN={token.group(1)}" in first
        assert '"msg": "scheduler up on' in first  # the JSON log format

        proc = start(tmp_path / "home", port, parent)
        wait_up(url, proc)
        try:
            headers = {"Authorization": f"Bearer {token.group(1)}"}
            job = httpx.post(f"{url}/api/v1/jobs", json={"shell": "echo up"}, headers=headers).json()
            done = httpx.post(
                f"{url}/api/v1/jobs/wait", json={"ids": [job["id"]]}, headers=headers, timeout=60
            )
            assert done.json()["jobs"][0]["state"] == "succeeded"
            assert httpx.get(f"{url}/api/v1/jobs/{job['id']}/logs", headers=headers).text == "up\n"
        finally:
            second = stop(proc)
        assert "frt_" not in second and "first start" not in second
    finally:
        _remove_cgroups(parent)


def test_freight_up_on_a_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = start(tmp_path / "home", port, "freight-test-busy-port")
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert lines == [
        f"error: --port: 127.0.0.1:{port} is already in use (another `freight up`, or `make run`?) "
        "(stop it, or give another --port)"
    ]
