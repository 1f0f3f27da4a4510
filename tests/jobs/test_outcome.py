from freight.jobs.outcome import classify, should_retry
from freight.jobs.spec import JobSpec
from freight.jobs.states import TRANSITIONS, JobState, can_transition
from freight.runtime.base import Outcome

SPEC = JobSpec(command=["x"], resources={"memory": "64M"}, timeout=5)


def outcome(**kw: object) -> Outcome:
    base = dict(
        exit_code=None,
        signal=None,
        oom_killed=False,
        peak_memory=None,
        cpu_seconds=None,
        started_at=0.0,
        ended_at=1.0,
    )
    base.update(kw)
    return Outcome(**base)  # type: ignore[arg-type]


def test_oom_is_read_from_the_counter_not_guessed_from_sigkill() -> None:
    state, reason = classify(outcome(signal=9, oom_killed=True, peak_memory=64 << 20), None, SPEC)
    assert state is JobState.OOM_KILLED and "64.0M limit" in (reason or "")
    state, reason = classify(outcome(signal=9), None, SPEC)
    assert state is JobState.FAILED and reason == "killed by SIGKILL"


def test_a_failure_at_the_memory_limit_says_so() -> None:
    """A runtime that aborts when an allocation fails (SIGABRT) is not the OOM killer's doing, but
    the user's fix is the same: the reason names the limit (seen as a flaky SIGABRT of a step)."""
    state, reason = classify(outcome(signal=6, peak_memory=63 << 20), None, SPEC)
    assert state is JobState.FAILED
    assert reason == (
        "killed by SIGABRT; its memory peaked at 63.0M of its 64.0M limit, so an allocation may "
        "have failed: raise resources.memory"
    )
    assert "64.0M limit" in (classify(outcome(signal=11, peak_memory=64 << 20), None, SPEC)[1] or "")
    assert classify(outcome(signal=6, peak_memory=32 << 20), None, SPEC)[1] == "killed by SIGABRT"
    # an exit code or SIGTERM at the limit is not taken for it (the page cache counts on cgroup v1)
    assert classify(outcome(exit_code=1, peak_memory=64 << 20), None, SPEC)[1] == "exited with code 1"
    assert classify(outcome(signal=15, peak_memory=64 << 20), None, SPEC)[1] == "killed by SIGTERM"
    roomy = JobSpec(command=["x"], resources={"memory": "1G"})
    assert classify(outcome(signal=6, peak_memory=512 << 20), None, roomy)[1] == "killed by SIGABRT"


def test_stop_reasons_win() -> None:
    assert classify(outcome(signal=9), "timeout", SPEC)[0] is JobState.TIMED_OUT
    assert classify(outcome(signal=15), "cancel", SPEC)[0] is JobState.CANCELLED
    assert classify(outcome(exit_code=0), "timeout", SPEC)[0] is JobState.SUCCEEDED


def test_retry_policy() -> None:
    spec = JobSpec(command=["x"], retry={"max_attempts": 3, "retry_on": ["oom", 75]})
    assert should_retry(JobState.OOM_KILLED, None, 1, spec)
    assert should_retry(JobState.FAILED, 75, 2, spec)
    assert not should_retry(JobState.FAILED, 75, 3, spec)
    assert not should_retry(JobState.FAILED, 1, 1, spec)
    assert not should_retry(JobState.TIMED_OUT, None, 1, spec)
    assert should_retry(JobState.LOST, None, 1, JobSpec(command=["x"], retry={"max_attempts": 2}))


def test_backoff_grows_and_is_capped() -> None:
    policy = JobSpec(command=["x"], retry={"backoff": "1s", "backoff_max": "5s", "jitter": 0}).retry
    assert [policy.delay(n, 0.5) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    jittered = JobSpec(command=["x"], retry={"backoff": 10, "jitter": 0.5}).retry
    assert jittered.delay(1, 0.0) == 5 and jittered.delay(1, 1.0) == 15


def test_transition_table_is_closed() -> None:
    for state in JobState:
        assert state in TRANSITIONS
    assert not can_transition(JobState.SUCCEEDED, JobState.RUNNING)
    assert can_transition(JobState.RUNNING, JobState.OOM_KILLED)


def test_the_ascii_table_is_the_transition_table() -> None:
    from freight.jobs.states import TABLE

    rows = [line.split() for line in TABLE.strip().splitlines()[1:]]
    assert {JobState(row[0]) for row in rows} == set(JobState)
    assert TRANSITIONS[JobState.QUEUED] == {JobState.STARTING, JobState.FAILED, JobState.CANCELLED}
    assert not can_transition(JobState.QUEUED, JobState.RUNNING)


def test_an_illegal_move_raises_and_changes_nothing() -> None:
    import pytest

    from freight.jobs.spec import JobSpec
    from freight.jobs.states import IllegalTransition
    from freight.jobs.store import Batch, record_from_spec

    job = record_from_spec(JobSpec(command=["true"]), now=1.0)
    batch = Batch()
    with pytest.raises(IllegalTransition, match="queued -> running"):
        batch.move(job, JobState.RUNNING, 2.0)
    assert job.state is JobState.QUEUED and not batch
