"""Finished attempts' logs in the object store: archived after the attempt ends, read back when the
local file is gone, archived on restart after a crash, removed by gc. Real runtime, real stores."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from freight.cli import main as cli_main
from freight.config import Settings, load_settings, log_key
from freight.db.schema import attempts, jobs, leases
from freight.errors import UserError
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.jobs.states import JobState
from freight.storage.objectstore import ObjectStore
from tests.jobs.test_crash import start_scheduler

SMALL = {"cpus": 0.2, "memory": "64M"}
#: more than one read (1 MiB), bytes of every value, CR/LF and no final newline
OUTPUT = "printf 'first\\r\\n\\000\\377 tab\\there\\n'; head -c 2500000 /dev/zero | tr '\\0' 'x'; printf end"


def wait_for(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def archived_at(svc: JobService, job_id: str, number: int = 1) -> float | None:
    with svc.engine.connect() as conn:
        value = conn.execute(
            select(attempts.c.log_archived_at).where(attempts.c.id == f"{job_id}-{number}")
        ).scalar()
    return float(value) if value is not None else None


def store_of(svc: JobService) -> ObjectStore:
    return ObjectStore(svc.settings.object_store_url)


@pytest.fixture
def svc(store_settings: Settings) -> Iterator[JobService]:
    service = JobService.open(replace(store_settings, cpus=2.0, memory=4 << 30))
    yield service
    service.close()


def run_to_end(svc: JobService, shell: str = OUTPUT) -> str:
    view = svc.submit(JobSpec(shell=shell, resources=SMALL))  # type: ignore[arg-type]
    done = svc.wait([view.id], timeout=60)[0]
    assert done.state is JobState.SUCCEEDED, done.reason
    return view.id


def cli_logs(settings: Settings, job_id: str) -> bytes:
    env = {
        "FREIGHT_HOME": str(settings.home),
        "FREIGHT_DATABASE_URL": settings.database_url,
        "FREIGHT_OBJECT_STORE": settings.object_store_url,
        "FREIGHT_CGROUP_PARENT": settings.cgroup_parent,
        "FREIGHT_URL": "",
    }
    result = CliRunner().invoke(cli_main.app, ["jobs", "logs", job_id], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


def test_log_is_archived_when_the_job_ends_and_read_back_without_the_local_file(svc: JobService) -> None:
    svc.start_scheduler(poll_interval=0.2)
    job_id = run_to_end(svc)
    wait_for(lambda: archived_at(svc, job_id) is not None)
    local = svc.settings.log_path(job_id, 1)
    written = local.read_bytes()
    assert written.startswith(b"first\r\n\x00\xff tab\there\n") and written.endswith(b"xxend")
    assert store_of(svc).get_bytes(log_key(job_id, 1)) == written

    local.unlink()
    assert b"".join(svc.logs(job_id)) == written
    assert b"".join(svc.logs(job_id, follow=True)) == written
    assert svc.read_log(job_id, 1, 7, 3) == b"\x00\xff "
    assert cli_logs(svc.settings, job_id) == written


def test_default_store_links_the_log_instead_of_copying_it(settings: Settings) -> None:
    with JobService.open(settings) as svc:
        svc.start_scheduler(poll_interval=0.2)
        job_id = run_to_end(svc, "echo hello")
        wait_for(lambda: archived_at(svc, job_id) is not None)
        archived = store_of(svc).local_path(log_key(job_id, 1))
        assert archived is not None
        # one file on disk under two names: FREIGHT_HOME/logs/... and the store's logs/...
        assert archived.stat().st_ino == svc.settings.log_path(job_id, 1).stat().st_ino
        assert archived.read_bytes() == b"hello\n"


@pytest.mark.parametrize("where", ["file", "memory"])
def test_a_store_elsewhere_gets_a_copy(settings: Settings, tmp_path: Path, where: str) -> None:
    """Another directory, or a remote store (fsspec's in-memory one takes S3's path: put, ranged
    reads, bulk delete)."""
    url = (tmp_path / "bucket").as_uri() if where == "file" else f"memory://logs-{uuid.uuid4().hex}"
    with JobService.open(replace(settings, object_store_url=url)) as svc:
        svc.start_scheduler(poll_interval=0.2)
        job_id = run_to_end(svc)
        wait_for(lambda: archived_at(svc, job_id) is not None)
        local = svc.settings.log_path(job_id, 1)
        written = local.read_bytes()
        assert store_of(svc).get_bytes(log_key(job_id, 1)) == written
        local.unlink()
        assert b"".join(svc.logs(job_id, follow=True)) == written
        with svc.engine.begin() as conn:
            conn.execute(update(jobs).values(ended_at=time.time() - 90 * 86400))
        assert svc.purge(older_than=86400) == [job_id]
        assert not store_of(svc).exists(log_key(job_id, 1))


def test_a_log_that_exists_nowhere_reads_as_empty_as_before(svc: JobService) -> None:
    svc.start_scheduler(poll_interval=0.2)
    job_id = run_to_end(svc, "echo gone")
    wait_for(lambda: archived_at(svc, job_id) is not None)
    svc.settings.log_path(job_id, 1).unlink()
    store_of(svc).delete(log_key(job_id, 1))
    assert b"".join(svc.logs(job_id)) == b""
    assert b"".join(svc.logs(job_id, follow=True)) == b""
    assert cli_logs(svc.settings, job_id) == b""


def ended_but_not_archived(svc: JobService, shell: str) -> str:
    """Run a job, then stop the scheduler and take its archive back: the state of a crash after the
    attempt's end was committed, before its upload."""
    svc.start_scheduler(poll_interval=0.2)
    job_id = run_to_end(svc, shell)
    wait_for(lambda: archived_at(svc, job_id) is not None)
    svc.stop_scheduler()
    store_of(svc).delete(log_key(job_id, 1))
    with svc.engine.begin() as conn:
        conn.execute(update(attempts).values(log_archived_at=None))
    return job_id


def test_a_log_missed_by_a_crash_is_archived_when_the_scheduler_starts(svc: JobService) -> None:
    job_id = ended_but_not_archived(svc, "echo before the crash")
    svc.start_scheduler(poll_interval=0.2)
    wait_for(lambda: archived_at(svc, job_id) is not None)
    assert store_of(svc).get_bytes(log_key(job_id, 1)) == b"before the crash\n"


def test_a_job_that_ends_while_its_scheduler_is_killed_is_archived_on_restart(
    settings: Settings, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    scheduler_log = tmp_path / "scheduler.log"
    with JobService.open(settings) as svc:
        first = start_scheduler(settings, scheduler_log)
        try:
            wait_for(lambda: svc.scheduler_holder() is not None)
            shell = f"echo waiting; while [ ! -e {go} ]; do sleep 0.05; done; echo done"
            job_id = svc.submit(JobSpec(shell=shell, resources=SMALL)).id  # type: ignore[arg-type]
            wait_for(lambda: svc.get(job_id).state is JobState.RUNNING)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        go.touch()
        local = settings.log_path(job_id, 1)
        wait_for(lambda: local.read_bytes() == b"waiting\ndone\n")
        assert archived_at(svc, job_id) is None
        second = start_scheduler(settings, scheduler_log)
        try:
            wait_for(lambda: archived_at(svc, job_id) is not None)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        assert svc.get(job_id).state is JobState.SUCCEEDED, scheduler_log.read_text()[-2000:]
        local.unlink()
        assert b"".join(svc.logs(job_id)) == b"waiting\ndone\n"


def test_gc_removes_the_archived_copy(svc: JobService) -> None:
    svc.start_scheduler(poll_interval=0.2)
    job_id = run_to_end(svc, "echo old")
    kept = run_to_end(svc, "echo kept")
    wait_for(lambda: archived_at(svc, job_id) is not None and archived_at(svc, kept) is not None)
    with svc.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(ended_at=time.time() - 90 * 86400))
    assert svc.purge(older_than=30 * 86400) == [job_id]
    assert not store_of(svc).exists(log_key(job_id, 1))
    assert not svc.settings.log_path(job_id, 1).exists()
    assert store_of(svc).exists(log_key(kept, 1))


def test_keep_local_false_removes_the_local_file_once_archived(store_settings: Settings) -> None:
    settings = replace(store_settings, keep_local_logs=False)
    with JobService.open(settings) as svc:
        svc.start_scheduler(poll_interval=0.2)
        job_id = run_to_end(svc, "echo only archived")
        wait_for(lambda: archived_at(svc, job_id) is not None)
        wait_for(lambda: not settings.log_path(job_id, 1).exists())
        assert b"".join(svc.logs(job_id)) == b"only archived\n"
        assert cli_logs(settings, job_id) == b"only archived\n"


def test_keep_local_setting(tmp_path: Path) -> None:
    home = str(tmp_path)
    assert load_settings({"FREIGHT_HOME": home}).keep_local_logs is True
    assert load_settings({"FREIGHT_HOME": home, "FREIGHT_LOG_KEEP_LOCAL": "false"}).keep_local_logs is False
    with pytest.raises(UserError, match="FREIGHT_LOG_KEEP_LOCAL must be true or false"):
        load_settings({"FREIGHT_HOME": home, "FREIGHT_LOG_KEEP_LOCAL": "maybe"})


def test_a_follower_waits_for_the_archive_of_a_log_that_ended_on_another_node(svc: JobService) -> None:
    job_id = ended_but_not_archived(svc, "echo from afar")
    # as a server that did not run it sees it: no local file, the other node's upload still to come
    svc.settings.log_path(job_id, 1).unlink()
    with svc.engine.begin() as conn:
        conn.execute(update(attempts).values(node="elsewhere"))
    assert svc.log_in_flight(job_id, 1)
    got: list[bytes] = []
    follower = threading.Thread(target=lambda: got.append(b"".join(svc.logs(job_id, follow=True))))
    follower.start()
    store_of(svc).put_bytes(log_key(job_id, 1), b"from afar\n")
    with svc.engine.begin() as conn:
        conn.execute(update(attempts).values(log_archived_at=time.time()))
    follower.join(timeout=60)
    assert got == [b"from afar\n"]


def test_a_standby_archives_what_ended_on_its_node(svc: JobService) -> None:
    job_id = ended_but_not_archived(svc, "echo standby")
    with svc.engine.begin() as conn:
        # another live server holds the scheduler lease
        conn.execute(
            update(leases).values(holder=f"other-host:{os.getpid()}:x", expires_at=time.time() + 3600)
        )
    assert svc.start_or_stand_by(retry_every=3600) is None
    wait_for(lambda: archived_at(svc, job_id) is not None)
    assert store_of(svc).get_bytes(log_key(job_id, 1)) == b"standby\n"
