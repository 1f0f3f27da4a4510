"""The shims switch to the job's user before it runs: groups, ids, no new privileges, then its cwd."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from freight.config import Settings
from freight.runtime import create_runtime
from freight.runtime.factory import _isolation
from freight.runtime.jobuser import JobUser, job_user
from freight.runtime.notices import forget_warnings
from freight.runtime.process import ShimRuntime
from freight.runtime.shim import python_shim
from tests.runtime.helpers import request

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


@pytest.fixture(params=["c", "python"])
def shim_runtime(request: pytest.FixtureRequest, settings: Settings) -> Iterator[ShimRuntime]:
    forget_warnings()
    if request.param == "c":
        runtime = create_runtime(settings)
    else:
        runtime = ShimRuntime(_isolation(settings), python_shim(), settings.run_dir)
    yield runtime
    runtime.close()


@pytest.fixture
def user() -> JobUser:
    found = job_user()
    assert found is not None and found.uid != 0
    return found


def run(
    runtime: ShimRuntime, tmp_path: Path, argv: list[str], user: JobUser, cwd: Path
) -> tuple[object, str]:
    req = replace(request(tmp_path, argv, cwd=str(cwd)), user=(user.uid, user.gid))
    handle = runtime.start(req)
    outcome = runtime.wait(handle, timeout=60)
    runtime.release(handle)
    return outcome, req.log_path.read_text()


def test_the_job_runs_as_the_job_user_with_no_other_groups(
    shim_runtime: ShimRuntime, tmp_path: Path, user: JobUser
) -> None:
    script = "id -u; id -g; id -G; grep NoNewPrivs /proc/self/status; pwd"
    outcome, out = run(shim_runtime, tmp_path, ["sh", "-c", script], user, tmp_path)
    assert getattr(outcome, "exit_code", None) == 0, out
    uid, gid, groups, no_new_privs, cwd = out.splitlines()
    assert (int(uid), int(gid), groups) == (user.uid, user.gid, str(user.gid))
    assert no_new_privs.split() == ["NoNewPrivs:", "1" if shim_runtime.shim.kind == "c" else "0"]
    assert cwd == str(tmp_path)


def test_a_directory_the_job_user_may_not_enter_is_a_clear_error(
    shim_runtime: ShimRuntime, tmp_path: Path, user: JobUser
) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    outcome, _ = run(shim_runtime, tmp_path, ["true"], user, closed)
    assert getattr(outcome, "error", None) == f"cannot enter directory '{closed}': Permission denied"
