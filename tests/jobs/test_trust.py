"""What a job can reach: the job user, the environment allowlist, queue grants and limits, secrets.

Real cgroups, real processes, the real user switch (the tests run as root; a job runs as freight-job).
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import replace

import pytest

from freight.config import Settings
from freight.errors import NotFoundError, UserError
from freight.jobs.client import JobView
from freight.jobs.secrets import SecretStore
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.jobs.states import JobState

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching to the job user needs root")

SMALL = {"cpus": 0.2, "memory": "32M"}
SERVER_SECRET = "FREIGHT_TEST_SERVER_SECRET"


@pytest.fixture
def svc(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobService]:
    # in the server's environment before its scheduler starts: what a leaky job would print
    monkeypatch.setenv(SERVER_SECRET, "hunter2-server-only")
    service = JobService.open(replace(settings, cpus=2.0, memory=4 << 30))
    service.start_scheduler(poll_interval=0.2)
    yield service
    service.close()


def run(svc: JobService, **spec: object) -> tuple[JobView, str]:
    spec.setdefault("resources", SMALL)
    view = svc.submit(JobSpec(**spec))  # type: ignore[arg-type]
    done = svc.wait([view.id], timeout=60)[0]
    return done, b"".join(svc.logs(done.id)).decode(errors="replace")


def test_a_job_runs_as_the_job_user_and_sees_none_of_the_servers_environment(svc: JobService) -> None:
    view, out = run(svc, shell="id -u; id -G; env")
    assert view.state is JobState.SUCCEEDED, out
    uid, groups, *env = out.splitlines()
    assert uid != "0" and "0" not in groups.split()
    names = {line.split("=", 1)[0] for line in env if "=" in line}
    assert SERVER_SECRET not in names
    assert not any(
        n.startswith("FREIGHT_") and not n.startswith(("FREIGHT_JOB_", "FREIGHT_ATTEMPT", "FREIGHT_NODE"))
        for n in names
    )


def test_a_job_cannot_read_or_change_the_store(svc: JobService) -> None:
    db = svc.settings.home / "freight.db"
    assert (svc.settings.home.stat().st_mode & 0o777) == 0o700
    view, out = run(svc, shell=f"cat {db}")
    assert view.state is JobState.FAILED and "Permission denied" in out
    update = (
        f"import sqlite3; sqlite3.connect('file:{db}?mode=rw', uri=True).execute('UPDATE tokens SET admin=1')"
    )
    view, out = run(svc, command=["python3", "-c", update])
    assert view.state is JobState.FAILED and "unable to open database file" in out
    view, out = run(svc, shell=f"ls {svc.settings.home}/logs")
    assert view.state is JobState.FAILED and "Permission denied" in out
    with sqlite3.connect(db) as conn:  # nothing changed (the store is still ours to read)
        assert conn.execute("SELECT count(*) FROM tokens WHERE admin = 1").fetchone() == (0,)


def test_root_and_the_servers_environment_only_where_an_admin_allowed_them(svc: JobService) -> None:
    with pytest.raises(UserError, match="queue default does not run jobs as root") as caught:
        svc.submit(JobSpec(command=["id", "-u"], user="root", resources=SMALL))
    assert caught.value.where == "spec: user"
    with pytest.raises(UserError, match="does not give jobs the server's environment"):
        svc.submit(JobSpec(command=["env"], inherit_env=True, resources=SMALL))
    assert svc.list_jobs() == []

    svc.set_queue("trusted", policy={"allow_root": True, "allow_inherit_env": True})
    _, out = run(svc, command=["id", "-u"], user="root", queue="trusted")
    assert out.strip() == "0"
    _, out = run(svc, command=["env"], inherit_env=True, queue="trusted")
    assert f"{SERVER_SECRET}=hunter2-server-only" in out.splitlines()


def test_memory_zero_and_limits_beyond_the_queue_or_node_are_refused(svc: JobService) -> None:
    with pytest.raises(UserError, match="memory must be at least 1M"):
        svc.submit({"command": ["true"], "resources": {"memory": 0}})
    svc.set_queue("small", policy={"max_memory": 64 << 20, "max_cpus": 0.5, "default_memory": 32 << 20})
    with pytest.raises(UserError, match=re.escape("queue small allows at most 64.0M")) as caught:
        svc.submit({"command": ["true"], "queue": "small", "resources": {"memory": "128M", "cpus": 0.5}})
    assert caught.value.where == "spec: resources.memory"
    with pytest.raises(UserError, match=re.escape("queue small allows at most 0.5")):
        svc.submit({"command": ["true"], "queue": "small", "resources": {"cpus": 1}})
    with pytest.raises(UserError, match=re.escape("a node here has 4.0G")):
        svc.submit({"command": ["true"], "resources": {"memory": "5G"}})
    assert svc.list_jobs() == []
    # the queue's default fills what the spec leaves out; what it says stays
    defaulted = svc.submit({"command": ["true"], "queue": "small", "resources": {"cpus": 0.1}})
    assert defaulted.spec.resources.memory == 32 << 20 and defaulted.spec.resources.cpus == 0.1
    with pytest.raises(UserError, match="the default memory must fit"):
        svc.set_queue("small", policy={"default_memory": 128 << 20})
    row = next(q for q in svc.queues() if q["name"] == "small")
    assert (row["max_memory"], row["default_memory"]) == (64 << 20, 32 << 20)


def test_secrets_reach_the_job_as_env_encrypted_at_rest_and_masked_in_logs(svc: JobService) -> None:
    store = SecretStore(svc.engine, svc.settings)
    assert store.set("db-pw", "s3cr3t-value-42") is False
    assert (svc.settings.home / "secret.key").stat().st_mode & 0o777 == 0o600
    with svc.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT value FROM secrets").scalar()
    assert "s3cr3t" not in stored
    assert store.names()[0]["name"] == "db-pw" and "value" not in store.names()[0]

    view, out = run(
        svc,
        shell='[ "$DB_PASSWORD" = s3cr3t-value-42 ] && echo "pw is $DB_PASSWORD"',
        secrets={"DB_PASSWORD": "db-pw"},
    )
    assert view.state is JobState.SUCCEEDED, out
    assert out == "pw is " + "*" * len("s3cr3t-value-42") + "\n"
    assert svc.read_log(view.id, 1, offset=9, size=4) == b"****"  # a read that cuts it in two

    with pytest.raises(NotFoundError, match="no secret 'nope'") as caught:
        svc.submit(JobSpec(command=["true"], secrets={"X": "nope"}, resources=SMALL))
    assert caught.value.where == "spec: secrets.X"
    # removed between the submit and the start: the job fails saying so, the scheduler goes on
    svc.set_queue("held", paused=True)
    held = svc.submit(JobSpec(command=["true"], queue="held", secrets={"X": "db-pw"}, resources=SMALL))
    store.remove("db-pw")
    svc.set_queue("held", paused=False)
    ended = svc.wait([held.id], timeout=60)[0]
    assert ended.state is JobState.FAILED and "secret 'db-pw' was removed" in (ended.reason or "")
    assert run(svc, command=["true"])[0].state is JobState.SUCCEEDED
