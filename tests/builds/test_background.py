"""Builds run in the server's background (builds/background.py): one at a time per workspace."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from freight.builds.background import BackgroundRuns, WorkspaceBuild, start_cached_build
from freight.builds.runner import RunOptions


def test_a_cached_build_cancelled_while_it_waits_for_its_folder_is_recorded_cancelled() -> None:
    """It was answered by the fast path anyway: outputs restored into the workspace and the build
    `succeeded`, where a build that plans skips every task and ends `cancelled`."""
    answered: list[str] = []
    ran: list[RunOptions] = []

    class Fast:
        def answer(self, *args: Any, **kwargs: Any) -> Any:
            answered.append(kwargs["run_id"])  # the real one restores outputs here
            return None

    class Runner:
        def run(self, plan: Any, options: RunOptions) -> Any:
            ran.append(options)
            assert options.cancel is not None and options.cancel.is_set()
            return SimpleNamespace(id="r1", ok=False, cancelled=True, to_dict=lambda: {"status": "cancelled"})

    runs = BackgroundRuns()
    gate = threading.Event()

    def first(_: WorkspaceBuild) -> None:  # another build of the same folder, still running
        gate.wait(60)

    runs.start(WorkspaceBuild(id="first", workspace="/ws"), "/ws", first)
    builds = SimpleNamespace(store=None, builder=lambda client, reporter: Runner())
    found = SimpleNamespace(root="/ws")
    record = start_cached_build(runs, builds, None, Fast(), found, RunOptions(), replan=lambda: None)  # type: ignore[arg-type, return-value]
    assert record.state == "queued"  # behind the first build of the same folder
    record.cancelled.set()  # what POST /builds/{id}/cancel does first
    gate.set()
    runs.join(record.id, 60)
    assert answered == [] and len(ran) == 1
    assert record.state == "cancelled"
