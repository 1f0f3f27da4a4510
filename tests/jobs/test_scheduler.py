"""The scheduler end to end on real cgroups, real processes and the real stores."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from freight.config import Settings
from freight.errors import UserError
from freight.jobs.client import JobView
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.jobs.states import JobState

SMALL = {"cpus": 0.2, "memory": "32M"}


@pytest.fixture
def svc(settings: Settings) -> Iterator[JobService]:
    service = JobService.open(replace(settings, cpus=2.0, memory=4 << 30))
    service.start_scheduler(poll_interval=0.2)
    yield service
    service.close()


def run(svc: JobService, **spec: object) -> JobView:
    spec.setdefault("resources", SMALL)
    view = svc.submit(JobSpec(**spec))  # type: ignore[arg-type]
    return svc.wait([view.id], timeout=60)[0]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_success_and_failure_exit_codes_and_logs(svc: JobService) -> None:
    ok = run(svc, shell="echo out; echo err >&2")
    assert ok.state is JobState.SUCCEEDED and ok.exit_code == 0
    assert b"".join(svc.logs(ok.id)) == b"out\nerr\n"
    bad = run(svc, shell="exit 3")
    assert bad.state is JobState.FAILED and bad.exit_code == 3
    assert bad.reason == "exited with code 3"


def test_a_short_job_never_ends_before_it_started(svc: JobService) -> None:
    """The end comes from the shim's record, the start from the scheduler once the spawn returned:
    a job as short as `true` can be over by then, and its duration must not come out negative."""
    views = [svc.submit(JobSpec(command=["true"], resources=SMALL)) for _ in range(20)]  # type: ignore[arg-type]
    for view in svc.wait([v.id for v in views], timeout=60):
        assert view.state is JobState.SUCCEEDED
        assert view.started_at is not None and view.ended_at is not None
        assert view.ended_at >= view.started_at
        attempt = view.attempt_list[-1]
        assert attempt.started_at is not None and attempt.ended_at is not None
        assert attempt.ended_at >= attempt.started_at
        assert attempt.node == os.uname().nodename  # where it ran (a Ray node's id on a cluster)


def test_command_that_cannot_start_fails_with_clear_error(svc: JobService) -> None:
    view = run(svc, command=["/no/such/program"])
    assert view.state is JobState.FAILED
    assert "/no/such/program" in (view.reason or "") + b"".join(svc.logs(view.id)).decode()


def test_oom_is_reported_while_neighbours_succeed(svc: JobService) -> None:
    hog = svc.submit(
        JobSpec(
            # python3 on PATH, not sys.executable: the job user may not reach this venv's interpreter
            command=["python3", "-c", "x = [bytearray(8 << 20) for _ in range(64)]"],
            resources={"cpus": 0.2, "memory": "64M"},
        )
    )
    neighbours = svc.submit_many([JobSpec(shell=f"sleep 0.5; echo {i}", resources=SMALL) for i in range(5)])
    views = svc.wait([hog.id, *[n.id for n in neighbours]], timeout=60)
    oom, rest = views[0], views[1:]
    assert oom.state is JobState.OOM_KILLED
    attempt = oom.attempt_list[-1]
    assert attempt.oom_killed
    assert attempt.peak_memory is not None and attempt.peak_memory > 48 << 20
    assert "out of memory" in (oom.reason or "")
    assert [v.state for v in rest] == [JobState.SUCCEEDED] * 5


def test_timeout_kills_the_whole_process_tree(svc: JobService, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (
        f"sleep 300 & echo $! >> {pids}; "
        f"sh -c 'sleep 300 & echo $! >> {pids}; wait' & "
        f"setsid sleep 300 & echo $! >> {pids}; "
        "wait"
    )
    view = run(svc, shell=script, timeout="1s", grace="0.5s")
    assert view.state is JobState.TIMED_OUT
    assert "timed out after 1.0s" in (view.reason or "")
    recorded = [int(p) for p in pids.read_text().split()]
    assert len(recorded) == 3
    deadline = time.time() + 5
    while any(alive(p) for p in recorded) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in recorded)


def test_retry_policy_is_obeyed(svc: JobService, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    script = f"echo x >> {counter}; n=$(wc -l < {counter}); [ $n -ge 3 ] && exit 0; exit 75"
    view = run(svc, shell=script, retry={"max_attempts": 5, "retry_on": [75], "backoff": "50ms", "jitter": 0})
    assert view.state is JobState.SUCCEEDED
    assert view.attempts == 3
    assert [a.exit_code for a in view.attempt_list] == [75, 75, 0]
    no_retry = run(svc, shell="exit 1", retry={"max_attempts": 5, "retry_on": [75], "backoff": "50ms"})
    assert no_retry.state is JobState.FAILED and no_retry.attempts == 1
    exhausted = run(svc, shell="exit 75", retry={"max_attempts": 2, "retry_on": [75], "backoff": "50ms"})
    assert exhausted.state is JobState.FAILED and exhausted.attempts == 2


def test_cancel_running_and_queued(svc: JobService) -> None:
    running = svc.submit(JobSpec(command=["sleep", "300"], grace="0.5s", resources=SMALL))
    deadline = time.time() + 10
    while svc.get(running.id).state is not JobState.RUNNING and time.time() < deadline:
        time.sleep(0.02)
    svc.cancel(running.id)
    view = svc.wait([running.id], timeout=20)[0]
    assert view.state is JobState.CANCELLED
    assert view.attempt_list[-1].signal in (15, 9)
    svc.set_queue("held", paused=True)
    queued = svc.submit(JobSpec(command=["true"], queue="held", resources=SMALL))
    assert svc.cancel(queued.id).state is JobState.CANCELLED


def test_a_cancel_while_the_attempt_is_being_spawned_stops_it_at_once(svc: JobService) -> None:
    """The stop is asked for while the spawn is in flight (here: held up by a stopped launcher). It
    must not be dropped: the job stops once the spawn returns, not after its 300 s grace."""
    import signal

    from sqlalchemy import select

    from freight.db.schema import attempts

    scheduler = svc.scheduler
    assert scheduler is not None
    warm = run(svc, command=["true"])
    assert warm.state is JobState.SUCCEEDED
    launcher = scheduler.runtime.launcher  # type: ignore[attr-defined]
    assert launcher is not None and launcher.pid is not None
    launcher.reply_timeout = 120.0
    os.kill(launcher.pid, signal.SIGSTOP)
    try:
        job = svc.submit(JobSpec(command=["sleep", "300"], grace="300s", resources=SMALL))
        wait_until(lambda: svc.get(job.id).state is JobState.STARTING)
        svc.cancel(job.id)

        def stop_asked() -> bool:  # a connection per look: one held open keeps its first snapshot
            with svc.engine.connect() as conn:
                query = select(attempts.c.stop_reason).where(attempts.c.job_id == job.id)
                return conn.execute(query).scalars().first() is not None

        wait_until(stop_asked)  # the scheduler has asked for the stop; the spawn is still held
    finally:
        os.kill(launcher.pid, signal.SIGCONT)
    view = svc.wait([job.id], timeout=60)[0]
    assert view.state is JobState.CANCELLED


def wait_until(check: object, timeout: float = 30.0) -> None:
    """Poll `check` until true; a hang guard, not a timing assertion."""
    deadline = time.time() + timeout
    while not check():  # type: ignore[operator]
        assert time.time() < deadline, "gave up waiting"
        time.sleep(0.01)


def test_dependencies_order_and_cascade(svc: JobService) -> None:
    first = svc.submit(JobSpec(shell="sleep 0.3", resources=SMALL))
    second = svc.submit(JobSpec(shell="true", depends_on=[{"job": first.id}], resources=SMALL))
    broken = svc.submit(JobSpec(shell="exit 1", resources=SMALL))
    skipped = svc.submit(JobSpec(shell="true", depends_on=[{"job": broken.id}], resources=SMALL))
    skipped_too = svc.submit(JobSpec(shell="true", depends_on=[{"job": skipped.id}], resources=SMALL))
    cleanup = svc.submit(
        JobSpec(shell="true", depends_on=[{"job": broken.id, "condition": "after_any"}], resources=SMALL)
    )
    views = {
        v.id: v for v in svc.wait([first.id, second.id, broken.id, skipped.id, skipped_too.id, cleanup.id])
    }
    assert views[second.id].state is JobState.SUCCEEDED
    assert views[second.id].started_at >= views[first.id].ended_at  # type: ignore[operator]
    assert views[skipped.id].state is JobState.CANCELLED
    assert views[skipped.id].reason == f"dependency {broken.id} did not succeed"
    assert views[skipped_too.id].state is JobState.CANCELLED
    assert views[skipped_too.id].attempts == 0
    assert views[cleanup.id].state is JobState.SUCCEEDED


def test_admission_respects_capacity_and_says_why_jobs_wait(svc: JobService, tmp_path: Path) -> None:
    spans = tmp_path / "spans"
    specs = [
        JobSpec(
            shell=f"echo start $(date +%s.%N) >> {spans}; sleep 0.4; echo end $(date +%s.%N) >> {spans}",
            resources={"cpus": 1, "memory": "16M"},
        )
        for _ in range(4)
    ]
    views = svc.submit_many(specs)
    reasons: list[str] = []
    deadline = time.time() + 10
    while not reasons and time.time() < deadline:
        current = svc.get_many([v.id for v in views])
        reasons = [v.reason or "" for v in current if v.state is JobState.QUEUED and v.reason]
        time.sleep(0.02)
    assert reasons and "waiting for capacity" in reasons[0]
    assert "needs 1 cpu, 0 of 2 free" in reasons[0]
    done = svc.wait([v.id for v in views], timeout=30)
    assert all(v.state is JobState.SUCCEEDED for v in done)
    events = sorted(
        (float(t), +1 if kind == "start" else -1)
        for kind, t in (line.split() for line in spans.read_text().splitlines())
    )
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    assert peak <= 2


def test_a_job_that_can_never_fit_is_refused_at_submit(svc: JobService) -> None:
    with pytest.raises(UserError, match="asks for 64 cpus; a node here has 2") as caught:
        svc.submit(JobSpec(command=["true"], resources={"cpus": 64, "memory": "16M"}))
    assert caught.value.where == "spec: resources.cpus"
    assert svc.list_jobs() == []


def test_lifecycle_on_both_stores(store_settings: Settings) -> None:
    with JobService.open(replace(store_settings, cpus=2.0, memory=4 << 30)) as service:
        service.start_scheduler(poll_interval=0.2)
        views = service.submit_many([JobSpec(shell=f"exit {i % 2}", resources=SMALL) for i in range(6)])
        done = service.wait([v.id for v in views], timeout=60)
        assert [v.state for v in done] == [JobState.SUCCEEDED, JobState.FAILED] * 3
        events = service.events(done[0].id)
        assert [e["to_state"] for e in reversed(events)] == ["queued", "starting", "running", "succeeded"]
        # sizes past 2 GiB fit the store's columns (BIGINT on PostgreSQL)
        big = service.submit(JobSpec(command=["true"], resources={"cpus": 0.2, "memory": "3G"}))
        assert service.wait([big.id], timeout=60)[0].state is JobState.SUCCEEDED
        assert service.get(big.id).spec.resources.memory == 3 << 30


def test_rlimits_fallback_still_runs_jobs(settings: Settings) -> None:
    with JobService.open(replace(settings, isolation="rlimits", cpus=2.0, memory=4 << 30)) as service:
        service.start_scheduler(poll_interval=0.2)
        assert service.scheduler is not None
        assert "rlimit" in service.scheduler.runtime.description
        view = service.submit(JobSpec(shell="echo fallback", resources=SMALL))
        done = service.wait([view.id], timeout=30)[0]
        assert done.state is JobState.SUCCEEDED
        assert b"".join(service.logs(done.id)) == b"fallback\n"


def test_env_and_cwd(svc: JobService, tmp_path: Path) -> None:
    view = run(svc, shell="echo $GREETING $FREIGHT_JOB_ID; pwd", env={"GREETING": "hi"}, cwd=str(tmp_path))
    out = b"".join(svc.logs(view.id)).decode().split("\n")
    assert out[0] == f"hi {view.id}"
    assert out[1] == str(tmp_path)
    assert os.path.isdir(tmp_path)


def test_inherit_env_false_gives_the_allowlist_and_the_declared_environment(svc: JobService) -> None:
    view = run(svc, command=["/usr/bin/env"], env={"ONLY": "this"}, inherit_env=False)
    names = {line.split("=", 1)[0] for line in b"".join(svc.logs(view.id)).decode().split("\n") if line}
    assert "ONLY" in names
    allowed = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TERM", "USER", "LOGNAME"}
    assert names - allowed == {
        "ONLY",
        "FREIGHT_JOB_ID",
        "FREIGHT_JOB_ATTEMPT",
        "FREIGHT_ATTEMPT",
        "FREIGHT_NODE",
    }


def _insert_bypassing_the_spec(svc: JobService, spec: dict[str, object]) -> str:
    """A job row whose spec never went through JobSpec's checks (written by hand or an old version)."""
    import json

    from sqlalchemy import insert

    from freight.db.schema import jobs
    from freight.jobs.store import record_from_spec

    record = record_from_spec(JobSpec(command=["true"], resources=SMALL), now=time.time())  # type: ignore[arg-type]
    params = record.insert_params()
    params["spec"] = json.dumps({**json.loads(params["spec"]), **spec})
    with svc.engine.begin() as conn:
        conn.execute(insert(jobs).values(**params))
    svc.poke()
    return record.id


def test_a_job_the_launcher_cannot_encode_fails_alone(svc: JobService) -> None:
    """Its env key has '=' (refused by JobSpec, so it is put in the store directly): the launcher
    raises for it. That attempt fails with the reason; the tick goes on and a job after it runs."""
    bad = _insert_bypassing_the_spec(svc, {"env": {"A=B": "x"}})
    good = svc.submit(JobSpec(command=["true"], resources=SMALL))  # type: ignore[arg-type]
    bad_view, good_view = svc.wait([bad, good.id], timeout=60)
    assert bad_view.state is JobState.FAILED
    assert "could not start" in (bad_view.reason or "") and "environment" in (bad_view.reason or "")
    assert good_view.state is JobState.SUCCEEDED


def test_a_job_whose_stored_spec_cannot_be_read_fails_alone(svc: JobService) -> None:
    bad = _insert_bypassing_the_spec(svc, {"colour": "red"})
    good = svc.submit(JobSpec(command=["true"], resources=SMALL))  # type: ignore[arg-type]
    bad_view, good_view = svc.wait([bad, good.id], timeout=60)
    assert bad_view.state is JobState.FAILED
    assert "its spec cannot be read" in (bad_view.reason or "") and "colour" in (bad_view.reason or "")
    assert good_view.state is JobState.SUCCEEDED


def test_a_waiter_in_the_schedulers_process_reads_endings_from_memory(
    svc: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each commit that ended a job woke the waiter into a query of the events table (on a run of
    many short jobs, about as much of the interpreter as the scheduler's own commits); the jobs the
    scheduler ended now come from its EndLog, and the store is read only on the timers."""
    from sqlalchemy import event

    from freight.jobs import service

    monkeypatch.setattr(service, "_WAIT_FOLLOW", 3600.0)
    monkeypatch.setattr(service, "_WAIT_RECHECK", 3600.0)
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        # the waiter's read (the scheduler's change feed reads the events too, other columns)
        if "events.from_state" in statement and "events.id >" in statement:
            statements.append(statement)

    views = svc.submit_many([JobSpec(command=["true"], resources=SMALL)] * 30)  # type: ignore[arg-type]
    event.listen(svc.engine, "before_cursor_execute", record)
    try:
        done = svc.wait([v.id for v in views], timeout=120)
    finally:
        event.remove(svc.engine, "before_cursor_execute", record)
    assert [v.state for v in done] == [JobState.SUCCEEDED] * 30
    assert statements == []


def test_a_waiter_checks_the_store_before_it_returns_a_job_the_log_called_ended(
    svc: JobService, tmp_path: Path
) -> None:
    """The EndLog may be read after the events: a job retried by hand between them would look ended.
    wait() reads the jobs' states before it returns and waits again for any that is not terminal."""
    import threading

    gate = tmp_path / "go"
    # bounded (about a minute): a failing run must not leave the job behind
    script = f"i=0; while [ ! -e {gate} ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done"
    view = svc.submit(JobSpec(shell=script, resources=SMALL))  # type: ignore[arg-type]
    ends = svc.scheduler.ends  # type: ignore[union-attr]
    real = ends.since
    lied = threading.Event()

    def since(seen: int) -> tuple[int, list[str] | None]:
        count, ended = real(seen)
        if ended is not None and not lied.is_set():
            lied.set()
            return count, [*ended, view.id]  # says the running job ended
        return count, ended

    ends.since = since  # type: ignore[method-assign]
    result: list[JobView] = []
    waiter = threading.Thread(target=lambda: result.extend(svc.wait([view.id], timeout=120)))
    waiter.start()
    while not lied.is_set():
        ends.record([])  # a commit that ended nothing: the waiter reads the log
        time.sleep(0.01)
    gate.touch()
    waiter.join()
    assert [v.state for v in result] == [JobState.SUCCEEDED]


def test_nodes_seen_from_another_process_say_what_runs_there(svc: JobService, settings: Settings) -> None:
    """`freight nodes` beside `freight up` (or a standby server) has no scheduler of its own: what is
    in use comes from the store's running attempts (it said 0 while jobs ran)."""
    job = svc.submit({"command": ["sleep", "60"], "resources": {"cpus": 0.5, "memory": "64M"}, "timeout": 60})
    wait_until(lambda: svc.get(job.id).state is JobState.RUNNING)
    with JobService.open(settings) as other:
        assert other.scheduler is None
        (node,) = other.nodes()
        assert (node["used_cpus"], node["used_memory"], node["running"]) == (0.5, 64 << 20, 1)
    svc.cancel(job.id)
    assert svc.wait([job.id], timeout=30)[0].state is JobState.CANCELLED
    with JobService.open(settings) as other:
        assert other.nodes()[0]["running"] == 0
