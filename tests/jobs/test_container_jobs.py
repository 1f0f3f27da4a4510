"""Image jobs through the job platform: pinned on submit, timeouts, kill -9 of the scheduler, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from freight.config import Settings
from freight.errors import UserError
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec, parse_spec
from freight.jobs.states import JobState
from tests.containers import BuiltImage
from tests.jobs.test_crash import start_scheduler, wait_for


@pytest.fixture
def image_settings(settings: Settings, test_image: BuiltImage) -> Settings:
    return replace(settings, registry=test_image.registry.address, cpus=2.0, memory=4 << 30)


def test_a_name_is_pinned_to_the_registry_digest_on_submit(
    image_settings: Settings, test_image: BuiltImage
) -> None:
    with JobService.open(image_settings) as svc:
        view = svc.submit(JobSpec(image=test_image.name, command=["true"]))
        assert svc.get(view.id).spec.image == test_image.pinned


def test_a_missing_image_is_one_error_before_anything_is_queued(image_settings: Settings) -> None:
    with JobService.open(image_settings) as svc:
        with pytest.raises(UserError, match="image no-such-image not found in registry"):
            svc.submit(JobSpec(image="no-such-image", command=["true"]))
        assert svc.list_jobs(limit=10) == []


def test_mounts_and_network_need_an_image() -> None:
    with pytest.raises(UserError, match="apply to jobs with an `image` only"):
        parse_spec({"command": ["true"], "network": "host"})
    with pytest.raises(UserError, match=r"mounts\.0\.source"):
        parse_spec({"command": ["true"], "image": "x", "mounts": [{"source": "rel", "target": "/x"}]})


def test_a_timeout_kills_the_container(image_settings: Settings, test_image: BuiltImage) -> None:
    with JobService.open(image_settings) as svc:
        svc.start_scheduler(poll_interval=0.1)
        # sleep as the container's pid 1 ignores SIGTERM: the kill after the grace must reach it
        view = svc.submit(JobSpec(image=test_image.name, command=["sleep", "300"], timeout=1, grace=0.5))
        done = svc.wait([view.id], timeout=120)[0]
    assert done.state is JobState.TIMED_OUT


def test_kill_9_of_the_scheduler_while_a_container_runs(
    image_settings: Settings, test_image: BuiltImage, tmp_path: Path
) -> None:
    gate, log = tmp_path / "gate", tmp_path / "scheduler.log"
    gate.mkdir()
    svc = JobService.open(image_settings)
    first = start_scheduler(image_settings, log)
    try:
        wait_for(lambda: svc.scheduler_holder() is not None)
        spec = {
            "image": test_image.name,
            "shell": "echo started >> /gate/ledger; until [ -e /gate/go ]; do sleep 0.05; done; exit 5",
            "mounts": [{"source": str(gate), "target": "/gate", "read_only": False}],
        }
        view = svc.submit(spec)
        wait_for(lambda: (gate / "ledger").exists(), timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait()
        (gate / "go").touch()  # it ends while no scheduler runs: the exit must not be lost
        second = start_scheduler(image_settings, log)
        try:
            done = svc.wait([view.id], timeout=120)[0]
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        assert (done.state, done.exit_code, done.attempts) == (JobState.FAILED, 5, 1), log.read_text()[-2000:]
        assert (gate / "ledger").read_text() == "started\n"
    finally:
        if first.poll() is None:
            first.kill()
        svc.close()


def freight(settings: Settings, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        FREIGHT_HOME=str(settings.home),
        FREIGHT_CGROUP_PARENT=settings.cgroup_parent,
        FREIGHT_REGISTRY=settings.registry or "",
        FREIGHT_CPUS="2",
        FREIGHT_MEMORY="4G",
    )
    env.pop("FREIGHT_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "freight.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_freight_run_image_exits_with_the_containers_code(
    image_settings: Settings, test_image: BuiltImage, tmp_path: Path
) -> None:
    out = freight(image_settings, "run", "--image", test_image.name, "--", "sh", "-c", "exit 3")
    assert out.returncode == 3, out.stderr
    submitted_from = tmp_path / "here"
    submitted_from.mkdir()
    oom = freight(
        image_settings,
        "run",
        "--image",
        test_image.name,
        "--memory",
        "64M",
        "--",
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=512M count=1",
        cwd=submitted_from,
    )
    assert oom.returncode == 137 and "out of memory" in oom.stderr, oom.stderr
    # conmon wrote an empty `oom` file into the folder the user ran freight from (it was committed
    # to the repository three times before this was found)
    assert list(submitted_from.iterdir()) == []
    missing = freight(image_settings, "run", "--image", "nope", "--", "true")
    assert missing.returncode == 2 and "image nope not found" in missing.stderr
    assert "Traceback" not in missing.stderr
