"""The shims: the C one compiled once per source, the Python one as the fallback, one protocol."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from freight.runtime import create_runtime, records
from freight.runtime.notices import forget_warnings
from freight.runtime.process import ShimRuntime
from freight.runtime.shim import SOURCES, find_shim, source_digest
from tests.runtime.conftest import MAKE_SETTINGS
from tests.runtime.helpers import eventually, job_pid, request

MiB = 1 << 20


def test_the_c_shim_is_built_once_and_named_by_its_sources(tmp_path: Path) -> None:
    sources = {name: resources.files("freight.runtime").joinpath(name).read_bytes() for name in SOURCES}
    shim = find_shim(tmp_path)
    assert shim.kind == "c"
    assert Path(shim.executable).name == f"freight-shim-{source_digest(sources)}"
    changed = dict(sources, **{"launcher.c": sources["launcher.c"] + b"\n"})
    assert source_digest(changed) != source_digest(sources)  # every source names the binary
    built = os.stat(shim.executable)
    again = find_shim(tmp_path)
    assert again == shim and os.stat(again.executable).st_ino == built.st_ino  # not rebuilt
    assert [p.name for p in (tmp_path / "bin").iterdir()] == [Path(shim.executable).name]  # no temp files


def test_without_a_compiler_the_python_shim_runs_attempts(
    make_settings: MAKE_SETTINGS,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    forget_warnings()
    settings = make_settings().with_home(tmp_path / "home")  # no compiled shim there yet
    with caplog.at_level(logging.WARNING, logger="freight.runtime"):
        runtime = create_runtime(settings)
        create_runtime(settings)
    assert runtime.shim.kind == "python" and "Python shim" in runtime.description
    assert caplog.text.count("using the Python shim") == 1
    try:
        hog = runtime.start(
            request(tmp_path, [sys.executable, "-c", "data = b'x' * (200 << 20)"], memory="64M")
        )
        missing = runtime.start(request(tmp_path, ["no-such-command-xyz"]))
        fine = runtime.start(request(tmp_path, ["sh", "-c", "exit 2"]))
        oom, error, done = (runtime.wait(h, timeout=60) for h in (hog, missing, fine))
        assert (
            oom is not None and oom.oom_killed and oom.peak_memory is not None and oom.peak_memory > 56 * MiB
        )
        assert (
            error is not None and error.error == "cannot run 'no-such-command-xyz': No such file or directory"
        )
        assert done is not None and done.exit_code == 2
        for handle in (hog, missing, fine):
            runtime.release(handle)
    finally:
        runtime.close()


def test_the_python_shim_runs_as_a_module(tmp_path: Path) -> None:
    record_dir = tmp_path / "record"
    record_dir.mkdir()
    command = [
        sys.executable,
        "-m",
        "freight.runtime.pyshim",
        str(record_dir),
        "-",
        "-",
        "0",
        "0",
        "sh",
        "-c",
        "exit 9",
    ]
    subprocess.run(command, check=True)
    status = records.read_status(str(record_dir))
    assert status is not None and status.exit_code == 9 and status.pid is not None


def test_the_shim_outlives_terminal_and_scheduler_signals(runtime: ShimRuntime, tmp_path: Path) -> None:
    handle = runtime.start(request(tmp_path, ["sleep", "300"]))
    job_pid(handle)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        os.kill(handle.shim_pid, signum)
    assert runtime.poll(handle) is None
    assert records.process_alive(handle.shim_pid, handle.shim_start)
    assert records.lock_held(handle.record_dir)
    runtime.kill(handle)
    outcome = runtime.wait(handle, timeout=30)
    assert outcome is not None and outcome.signal == signal.SIGKILL
    # the shim writes its record first and exits after; the lock drops with the exit
    eventually(lambda: not records.lock_held(handle.record_dir), "the shim to exit and drop its lock")
    runtime.release(handle)


def test_the_job_starts_with_default_signal_handling(runtime: ShimRuntime, tmp_path: Path) -> None:
    """The shim ignores SIGTERM and friends; the job must not inherit that."""
    req = request(tmp_path, ["sh", "-c", "grep -E '^Sig(Ign|Blk)' /proc/self/status"])
    handle = runtime.start(req)
    assert runtime.wait(handle, timeout=30) is not None
    blocked, ignored = (int(word, 16) for word in req.log_path.read_text().split()[1::2])
    assert blocked == 0
    # signals 1-31; glibc's posix_spawn leaves its own internal signals (32, 33) ignored everywhere
    assert ignored & 0x7FFFFFFF == 0
    runtime.release(handle)
