"""Reading the shim's status record."""

from __future__ import annotations

from freight.runtime.records import parse_status


def test_parse_an_exit() -> None:
    status = parse_status(
        "exit=3\npid=42\nstarted=100.5\nended=101.25\nutime=0.5\nstime=0.25\nmaxrss=2048\n"
        "cg.oom_kill=1\ncg.peak=4096\n"
    )
    assert (status.exit_code, status.signal, status.error, status.pid) == (3, None, None, 42)
    assert (status.started, status.ended, status.cpu_seconds, status.max_rss) == (
        100.5,
        101.25,
        0.75,
        2 << 20,
    )
    assert status.counters == {"oom_kill": 1, "peak": 4096}


def test_parse_a_signal_and_an_error_with_equals_signs() -> None:
    status = parse_status("signal=9\ncore=0\nerror=cannot run 'a=b': No such file or directory\n")
    assert (status.exit_code, status.signal) == (None, 9)
    assert status.error == "cannot run 'a=b': No such file or directory"
