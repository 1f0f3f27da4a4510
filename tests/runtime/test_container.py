"""Container attempts on real podman + runc and real cgroups: the image comes from a registry
started for the session, by digest (tests/containers.py)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from freight.config import Settings
from freight.errors import TerminalError
from freight.runtime import create_runtime, images
from freight.runtime.base import AttemptRequest, Container, Limits, Mount, Outcome, Recovered
from freight.runtime.container import ContainerRuntime, container_name, podman_run_args
from freight.runtime.slots import SlotPool
from freight.units import parse_bytes
from tests.containers import BuiltImage
from tests.runtime.helpers import eventually


@pytest.fixture
def containers(settings: Settings, home: Path) -> Iterator[ContainerRuntime]:
    runtime = ContainerRuntime(create_runtime(settings), home)
    yield runtime
    runtime.remove_leftovers()
    runtime.close()


def request(
    tmp_path: Path,
    image: str,
    argv: list[str],
    *,
    memory: str = "128M",
    env: dict[str, str] | None = None,
    network: str = "none",
    mounts: tuple[Mount, ...] = (),
) -> AttemptRequest:
    attempt_id = f"c-{uuid.uuid4().hex[:12]}"
    return AttemptRequest(
        attempt_id=attempt_id,
        argv=argv,
        env={"PATH": "/bin", **(env or {})},
        cwd=None,
        limits=Limits(cpus=1.0, memory=parse_bytes(memory), pids=64),
        log_path=tmp_path / "logs" / f"{attempt_id}.log",
        container=Container(image, network, mounts),
    )


def run(runtime: ContainerRuntime, req: AttemptRequest) -> tuple[Outcome, str]:
    handle = runtime.start(req)
    outcome = runtime.wait(handle, timeout=120)
    assert outcome is not None
    runtime.release(handle)
    return outcome, req.log_path.read_text()


def container_exists(name: str) -> bool:
    return subprocess.run(["podman", "container", "exists", name], check=False).returncode == 0


def test_an_image_from_the_registry_runs_by_digest(
    containers: ContainerRuntime, test_image: BuiltImage, tmp_path: Path
) -> None:
    assert "@sha256:" in test_image.pinned and test_image.registry.address in test_image.pinned
    req = request(
        tmp_path,
        test_image.pinned,
        ["sh", "-c", "echo hello $GREETING; echo oops >&2; exit 3"],
        env={"GREETING": "from the job"},
    )
    outcome, log = run(containers, req)
    assert (outcome.exit_code, outcome.oom_killed, outcome.error) == (3, False, None)
    assert "hello from the job" in log and "oops" in log
    assert outcome.peak_memory is not None and outcome.peak_memory < parse_bytes("64M")
    assert not container_exists(container_name(req.attempt_id))  # removed once it ended


def test_env_values_never_reach_the_command_line(test_image: BuiltImage, tmp_path: Path) -> None:
    req = request(tmp_path, test_image.pinned, ["true"], env={"SECRET": "hunter2"})
    args = podman_run_args(req, req.container, tmp_path)  # type: ignore[arg-type]
    assert "hunter2" not in " ".join(args) and "SECRET" in args


def test_oom_is_named_with_its_peak_while_a_neighbour_succeeds(
    containers: ContainerRuntime, test_image: BuiltImage, tmp_path: Path
) -> None:
    hog = request(
        tmp_path,
        test_image.pinned,
        ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=512M count=1"],
        memory="64M",
    )
    neighbour = request(tmp_path, test_image.pinned, ["sh", "-c", "echo fine"], memory="64M")
    results: dict[str, tuple[Outcome, str]] = {}
    threads = [
        threading.Thread(target=lambda r=r: results.__setitem__(r.attempt_id, run(containers, r)))
        for r in (hog, neighbour)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    oom, _ = results[hog.attempt_id]
    assert oom.oom_killed and oom.exit_code == 137
    assert oom.peak_memory is not None and oom.peak_memory >= parse_bytes("60M")
    ok, log = results[neighbour.attempt_id]
    assert ok.ok and "fine" in log


def test_kill_reaches_every_process_of_the_container(
    containers: ContainerRuntime, test_image: BuiltImage, tmp_path: Path
) -> None:
    req = request(tmp_path, test_image.pinned, ["sh", "-c", "sleep 300 & sleep 300 & wait"])
    handle = containers.start(req)
    pool = containers.inner.isolation
    assert isinstance(pool, SlotPool) and handle.slot is not None
    slot = pool._open(handle.slot)
    eventually(lambda: len(pool.driver.pids(slot)) >= 3, "the container's processes in the slot")
    containers.kill(handle)
    outcome = containers.wait(handle, timeout=60)
    assert outcome is not None and not outcome.ok and not outcome.oom_killed
    assert outcome.signal == 9 or outcome.exit_code == 137
    assert pool.driver.pids(slot) == []
    containers.release(handle)
    assert not container_exists(container_name(req.attempt_id))


def test_network_none_has_no_route_out(
    containers: ContainerRuntime, test_image: BuiltImage, tmp_path: Path
) -> None:
    # Only what the container sees is read: no packet is ever sent anywhere (this machine's network
    # policy forbids traffic to other addresses, even as a test that it cannot get out).
    script = "cat /proc/net/route; ls /sys/class/net"
    outcome, log = run(containers, request(tmp_path, test_image.pinned, ["sh", "-c", script]))
    assert outcome.exit_code == 0
    lines = log.splitlines()
    assert lines[0].startswith("Iface") and "lo" in lines  # the route table's header, no route; only lo
    assert [line for line in lines if line.startswith(("eth", "lo\t"))] == []
    assert not any(line.startswith("eth") for line in lines)


def test_a_read_only_mount_cannot_be_written(
    containers: ContainerRuntime, test_image: BuiltImage, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("input\n")
    ro = (Mount(str(data), "/data", read_only=True),)
    outcome, log = run(
        containers,
        request(tmp_path, test_image.pinned, ["sh", "-c", "cat /data/in.txt; echo x > /data/out"], mounts=ro),
    )
    assert outcome.exit_code != 0 and "input" in log and "Read-only file system" in log
    assert not (data / "out").exists()
    rw = (Mount(str(data), "/data", read_only=False),)
    outcome, _ = run(
        containers, request(tmp_path, test_image.pinned, ["sh", "-c", "echo x > /data/out"], mounts=rw)
    )
    assert outcome.ok and (data / "out").read_text() == "x\n"


def test_a_missing_mount_source_is_refused_before_start(
    containers: ContainerRuntime, test_image: BuiltImage, tmp_path: Path
) -> None:
    missing = (Mount(str(tmp_path / "nope"), "/data"),)
    with pytest.raises(TerminalError, match="does not exist"):
        containers.start(request(tmp_path, test_image.pinned, ["true"], mounts=missing))


def test_a_new_runtime_reattaches_and_records_the_exit_once(
    settings: Settings, home: Path, test_image: BuiltImage, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    first = ContainerRuntime(create_runtime(settings), home)
    req = request(
        tmp_path,
        test_image.pinned,
        ["sh", "-c", "until [ -e /gate/go ]; do sleep 0.05; done; echo done; exit 4"],
        mounts=(Mount(str(gate), "/gate", read_only=True),),
    )
    handle = first.start(req)
    first.close()  # the scheduler goes away; the shim, podman and the container go on
    second = ContainerRuntime(create_runtime(settings), home)
    try:
        assert second.recover(handle) is Recovered.RUNNING
        (gate / "go").touch()
        outcome = second.wait(handle, timeout=120)
        assert outcome is not None and outcome.exit_code == 4
        again = second.recover(handle)
        assert isinstance(again, Outcome) and again.exit_code == 4 and again.ended_at == outcome.ended_at
        second.release(handle)
        assert "done" in req.log_path.read_text()
    finally:
        second.remove_leftovers()
        second.close()


def test_an_image_pulled_as_the_attempt_starts_leaves_no_pull_progress_in_the_log(
    containers: ContainerRuntime, test_image: BuiltImage, tmp_path: Path
) -> None:
    """An image built here and pushed is pulled again by digest (the pushed manifest is not the local
    one): podman's "Trying to pull ... Copying blob" went into the job's log ahead of its output."""
    context = tmp_path / "image"
    context.mkdir()
    (context / "Containerfile").write_text(
        f"FROM scratch\nCOPY busybox /bin/busybox\nCOPY marker /{uuid.uuid4().hex}\n"
    )
    shutil.copy2("/bin/busybox", context / "busybox")
    (context / "marker").write_text(uuid.uuid4().hex)
    name = f"freight-pull-{uuid.uuid4().hex[:8]}"
    pinned, _ = images.build(context, name, test_image.settings)
    try:
        outcome, log = run(containers, request(tmp_path, pinned, ["/bin/busybox", "echo", "only this"]))
        assert (outcome.exit_code, log) == (0, "only this\n")
    finally:
        subprocess.run(
            ["podman", "rmi", "--force", "--ignore", pinned, f"{pinned.split('@')[0]}:latest"], check=False
        )
