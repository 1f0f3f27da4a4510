"""RemotePipelines: pipeline runs on a `freight up` server (FREIGHT_URL), for the CLI.

The server owns the run (it submits the step jobs and records them as they end); this client starts
it, then polls it and reports each step as it starts and ends, as the embedded runner's `on_event`
does, so `freight pipeline run` prints the same either way. Calls go through RemoteJobClient.request,
so the server's errors come back as the same UserError subclasses, with their field path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from freight.errors import TransientError, UserError
from freight.jobs.remote import RemoteJobClient, ServerUnreachable
from freight.pipelines.loader import Pipeline
from freight.pipelines.store import Run, StepRun

#: how often a waiting client asks the server about its run (seconds)
POLL = 0.3
#: how long a waiting client rides out a server that does not answer (a restart) before it gives up
OUTAGE = 60.0
_WAITING = frozenset({"pending", "queued", "running"})

OnEvent = Callable[[str, StepRun], None]


def _q(part: str) -> str:
    return quote(part, safe="")


class RemotePipelines:
    def __init__(self, client: RemoteJobClient, *, poll: float = POLL, outage: float = OUTAGE) -> None:
        self.client = client
        self.poll = poll
        self.outage = outage

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RemotePipelines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, pipeline: Pipeline, *, spec_path: Path | None, config_path: Path | None) -> Run:
        """Start a run of a pipeline checked here; the server reads its files by absolute path."""
        body: dict[str, Any] = {
            "spec": pipeline.spec.model_dump(mode="json", exclude_none=True),
            "base_dir": str(pipeline.base_dir.resolve()),
        }
        if spec_path is not None:
            body["spec_path"] = str(spec_path.resolve())
        if config_path is not None:
            body["config_path"] = str(config_path.resolve())
        return self._run("POST", "/pipelines/runs", json=body)

    def rerun(self, run_id: str, *, from_failed: bool, config_path: Path | None) -> Run:
        body: dict[str, Any] = {"from_failed": from_failed}
        if config_path is not None:
            body["config_path"] = str(config_path.resolve())
        return self._run("POST", f"/pipelines/runs/{_q(run_id)}/rerun", json=body)

    def cancel(self, run_id: str) -> Run:
        return self._run("POST", f"/pipelines/runs/{_q(run_id)}/cancel")

    def get(self, run_id: str) -> Run:
        return self._run("GET", f"/pipelines/runs/{_q(run_id)}")

    def list(self, pipeline: str | None = None, limit: int = 50) -> list[Run]:
        params: dict[str, Any] = {"limit": limit}
        if pipeline:
            params["pipeline"] = pipeline
        found = self.client.request("GET", "/pipelines/runs", params=params)
        return [Run.from_dict(r) for r in found["runs"]]

    # --- schedules (freight pipeline schedule|schedules|pause|resume|unschedule) ---------------------

    def schedule(self, pipeline: Pipeline, *, spec_path: Path, config_path: Path | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "spec": pipeline.spec.model_dump(mode="json", exclude_none=True),
            "spec_path": str(spec_path.resolve()),
            "base_dir": str(pipeline.base_dir.resolve()),
        }
        if config_path is not None:
            body["config_path"] = str(config_path.resolve())
        found: dict[str, Any] = self.client.request(
            "PUT", f"/pipelines/schedules/{_q(pipeline.name)}", json=body
        )
        return found

    def schedules(self) -> Any:
        """The server's scheduled pipelines (dicts, as `freight pipeline schedules --json` prints)."""
        return self.client.request("GET", "/pipelines/schedules")["schedules"]

    def set_paused(self, name: str, paused: bool) -> None:
        self.client.request("POST", f"/pipelines/schedules/{_q(name)}/{'pause' if paused else 'resume'}")

    def unschedule(self, name: str) -> None:
        self.client.request("DELETE", f"/pipelines/schedules/{_q(name)}")

    def wait(self, run: Run, on_event: OnEvent | None = None) -> Run:
        """Poll the run until it ends; `on_event` hears of each step that starts or ends meanwhile."""
        seen = {s.step: s.state for s in run.steps}
        while run.state in ("running", "waiting"):  # waiting: for wait_for or preconditions
            time.sleep(self.poll)
            run = self._reread(run.id)
            for step in run.steps:
                before, seen[step.step] = seen.get(step.step), step.state
                if on_event is None or before == step.state:
                    continue
                if step.state == "running":
                    on_event("running", step)
                elif step.state not in _WAITING and before in _WAITING:
                    on_event(step.state, step)
        return run

    def _reread(self, run_id: str) -> Run:
        """The run again; a server that does not answer for a while (it restarts) is waited for: the
        run goes on there, and the restarted server follows it again."""
        deadline = time.monotonic() + self.outage
        while True:
            try:
                return self.get(run_id)
            except (ServerUnreachable, TransientError) as exc:
                if time.monotonic() >= deadline:
                    message = exc.message if isinstance(exc, UserError) else str(exc)
                    hint = (
                        f"the run goes on on the server: `freight pipeline follow {run_id}` watches it again"
                    )
                    raise UserError(message, where="FREIGHT_URL", hint=hint) from None
                time.sleep(min(1.0, self.outage / 10))

    def _run(self, method: str, path: str, json: Any = None) -> Run:
        return Run.from_dict(self.client.request(method, path, json=json))
