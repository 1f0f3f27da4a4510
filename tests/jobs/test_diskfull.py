"""A full disk is named: ENOSPC on the log disk or the object store says so, and the platform goes on.

Each test mounts small tmpfs file systems of its own (root only) and fills them.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from freight.config import Settings
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.jobs.states import JobState

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

SMALL = {"cpus": 0.2, "memory": "32M"}


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    mounted: list[Path] = []
    yield mounted
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def small_disk(path: Path, mounted: list[Path]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(path)], check=True)
    mounted.append(path)
    return path


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_a_full_log_disk_is_named_in_the_reason_and_the_next_job_runs(
    settings: Settings, mounts: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    settings = replace(settings, cpus=2.0, memory=4 << 30)
    with JobService.open(settings) as svc:
        filler = fill(small_disk(settings.home / "logs", mounts))
        svc.start_scheduler(poll_interval=0.2)
        with caplog.at_level(logging.ERROR, logger="freight.scheduler"):
            view = svc.submit(JobSpec(shell="echo hello", resources=SMALL))
            done = svc.wait([view.id], timeout=60)[0]
        assert done.state is JobState.FAILED
        assert "exited with code 1; no space left on the log disk" in (done.reason or "")
        assert "ENOSPC" in (done.reason or "")
        assert any("log disk full" in r.getMessage() and view.id in r.getMessage() for r in caplog.records)

        filler.unlink()  # space again: the platform never stopped
        again = svc.submit(JobSpec(shell="echo hello", resources=SMALL))
        ok = svc.wait([again.id], timeout=60)[0]
        assert ok.state is JobState.SUCCEEDED
        assert b"".join(svc.logs(ok.id)) == b"hello\n"


def test_a_full_object_store_is_named_in_the_servers_log_and_the_log_stays_local(
    settings: Settings, mounts: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    objects = small_disk(tmp_path / "objects", mounts)
    fill(objects)
    settings = replace(settings, cpus=2.0, memory=4 << 30, object_store_url=objects.as_uri())
    with JobService.open(settings) as svc, caplog.at_level(logging.ERROR, logger="freight.logarchive"):
        svc.start_scheduler(poll_interval=0.2)
        view = svc.submit(JobSpec(shell="head -c 300000 /dev/zero | tr '\\0' x; echo", resources=SMALL))
        done = svc.wait([view.id], timeout=60)[0]
        assert done.state is JobState.SUCCEEDED
        deadline = time.monotonic() + 30
        while not any("ENOSPC" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the archiver never said the object store is full"
            time.sleep(0.05)
        message = next(r.getMessage() for r in caplog.records if "ENOSPC" in r.getMessage())
        assert f"attempt {view.id}-1" in message and "no space left in the object store" in message
        assert len(b"".join(svc.logs(view.id))) == 300_001  # still read from the local copy
        later = svc.submit(JobSpec(command=["true"], resources=SMALL))
        assert svc.wait([later.id], timeout=60)[0].state is JobState.SUCCEEDED
