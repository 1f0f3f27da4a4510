"""Issue 10's done-when, as a user types it: `freight image build examples/images/hello`, then
`freight run --image` of it out of memory (137, "out of memory") and exiting 3, and `freight service
deploy` of the example under `freight up` answering every request through a rolling update, on its
own port and through the gateway (`--prefix /hello`)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from freight.runtime.registry import free_port
from tests.containers import BuiltImage
from tests.server.conftest import _remove_cgroups

EXAMPLE = Path(__file__).parents[2] / "examples" / "images" / "hello"


@pytest.fixture
def env(tmp_path: Path, test_image: BuiltImage) -> Iterator[dict[str, str]]:
    parent = f"freight-test-{os.getpid()}-example"
    values = {
        **os.environ,
        "FREIGHT_HOME": str(tmp_path / "home"),
        "FREIGHT_CGROUP_PARENT": parent,
        "FREIGHT_REGISTRY": test_image.registry.address,
        "FREIGHT_CPUS": "2",
        "FREIGHT_MEMORY": "4G",
    }
    values.pop("FREIGHT_URL", None)
    yield values
    _remove_cgroups(parent)


def freight(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "freight.cli.main", *args], env=env, capture_output=True, text=True
    )


def answer(port: int, path: str = "/healthz") -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status == 200 and response.read() == b"ok\n"
    except OSError:
        return False
    finally:
        conn.close()


def show(env: dict[str, str], name: str) -> dict[str, object]:
    out = freight(env, "service", "show", name)
    assert out.returncode == 0, out.stderr
    data: dict[str, object] = json.loads(out.stdout)
    return data


def until(what: str, done: object, proc: subprocess.Popen[bytes]) -> None:
    """Poll `done()` (a hang guard of three minutes, not a timing assertion)."""
    deadline = time.monotonic() + 180
    while not done():  # type: ignore[operator]
        assert proc.poll() is None, "freight up exited"
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.5)


def test_the_done_when_commands(env: dict[str, str], tmp_path: Path) -> None:
    tag = f"hello-{os.getpid()}"
    built = freight(env, "image", "build", str(EXAMPLE), "-t", tag)
    assert built.returncode == 0, built.stderr
    assert "sha256:" in built.stdout

    dd = "dd if=/dev/zero of=/dev/null bs=512M count=1"
    oom = freight(env, "run", "--image", tag, "--memory", "64M", "--", "sh", "-c", dd)
    assert oom.returncode == 137 and "out of memory" in oom.stderr, oom.stderr
    three = freight(env, "run", "--image", tag, "--", "sh", "-c", "exit 3")
    assert three.returncode == 3, three.stderr

    gateway = free_port()
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "freight.cli.main",
            "up",
            "--port",
            str(free_port()),
            "--gateway-port",
            str(gateway),
        ],
        env=env,
        stdout=log,
        stderr=log,
    )
    name, port = f"hello-{os.getpid()}", free_port()
    stop = threading.Event()
    failed, served = [0], [0]

    def hammer() -> None:
        while not stop.is_set():
            served[0] += 2  # straight to the service's port, and through the gateway
            failed[0] += (not answer(port)) + (not answer(gateway, "/hello/healthz"))
            time.sleep(0.02)

    try:
        common = ("--image", tag, "--replicas", "2", "--port", str(port), "--prefix", "/hello")
        deployed = freight(env, "service", "deploy", name, *common)
        assert deployed.returncode == 0, deployed.stderr
        until("the first revision getting ready", lambda: show(env, name)["status"] == "ready", up)
        assert answer(port)
        until("the gateway routing /hello/", lambda: answer(gateway, "/hello/healthz"), up)

        watcher = threading.Thread(target=hammer)
        watcher.start()
        rolled = freight(env, "service", "deploy", name, *common, "--env", "REVISION=2")
        assert rolled.returncode == 0, rolled.stderr

        def replaced() -> bool:
            data = show(env, name)
            replicas = data["replicas"]
            assert isinstance(replicas, list)
            current = [r for r in replicas if r["current"] and r["state"] == "running"]
            return data["revision"] == 2 and data["status"] == "ready" and len(replicas) == len(current) == 2

        until("the rolling update", replaced, up)
        stop.set()
        watcher.join()
        assert served[0] > 10 and failed[0] == 0, f"{failed[0]} of {served[0]} requests failed"
        assert freight(env, "service", "rm", name).returncode == 0
        until("the removal", lambda: freight(env, "service", "show", name).returncode == 2, up)
    finally:
        stop.set()
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        log.close()
