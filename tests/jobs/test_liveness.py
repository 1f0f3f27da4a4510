"""The lease liveness rule (jobs/liveness.py) the lease and the quick listing share."""

from __future__ import annotations

import os
import subprocess

from freight.jobs.liveness import holder_alive, holder_dead

HOST = os.uname().nodename


def test_a_live_holder_before_expiry_holds() -> None:
    assert holder_alive(f"{HOST}:{os.getpid()}:ab12", expires_at=100.0, now=99.0)


def test_an_expired_lease_is_held_by_nobody() -> None:
    assert not holder_alive(f"{HOST}:{os.getpid()}:ab12", expires_at=100.0, now=100.5)


def test_a_gone_process_of_this_host_holds_nothing_one_of_another_host_is_not_judged() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process
    assert holder_dead(f"{HOST}:{gone.pid}:ab12")
    assert not holder_alive(f"{HOST}:{gone.pid}:ab12", expires_at=100.0, now=1.0)
    assert holder_alive(f"elsewhere:{gone.pid}:ab12", expires_at=100.0, now=1.0)
