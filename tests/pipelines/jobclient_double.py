"""An in-process JobClient for the runner's own unit tests: real subprocesses, no isolation.

It honours what the runner relies on — depends_on after_ok/after_any, the cascade (a failed
dependency cancels its after_ok dependents), retries on listed exit codes, wait with a timeout — and
runs ready jobs in parallel. The real platform (JobService) is exercised in test_service_e2e.py.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from freight.errors import ConflictError
from freight.jobs.client import JobView
from freight.jobs.spec import JobSpec
from freight.jobs.states import JobState


class LocalJobClient:
    def __init__(self) -> None:
        self.jobs: dict[str, JobView] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs_: dict[str, bytes] = {}
        self.outputs: dict[str, Path] = {}
        self.scratch = Path(tempfile.mkdtemp(prefix="freight-jobs-"))
        self._ids = itertools.count(1)

    def submit(self, spec: JobSpec | dict[str, Any], *, definition: str | None = None) -> JobView:
        spec = spec if isinstance(spec, JobSpec) else JobSpec.model_validate(spec)
        for dep in spec.depends_on:
            assert dep.job in self.jobs, f"unknown dependency {dep.job}"
        job_id = f"j{next(self._ids)}"
        view = JobView(
            job_id,
            spec.name,
            spec.queue,
            JobState.QUEUED,
            0,
            spec,
            time.time(),
            None,
            None,
            0,
            None,
            None,
            labels=dict(spec.labels),
        )
        self.jobs[job_id] = view
        return view

    def submit_many(self, specs: Sequence[JobSpec]) -> list[JobView]:
        return [self.submit(s) for s in specs]

    def get(self, job_id: str) -> JobView:
        self._step()
        return self.jobs[job_id]

    def list(self, **_: Any) -> list[JobView]:
        return list(self.jobs.values())

    def wait(self, job_ids: Sequence[str], timeout: float | None = None) -> list[JobView]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._step()
            if all(self.jobs[j].state.terminal for j in job_ids):
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.005)
        return [self.jobs[j] for j in job_ids]

    def cancel(self, job_id: str) -> JobView:
        """Cancel a job that has not ended, then step at once: its after_ok dependents are cascaded
        before the caller's next request, as a fast scheduler may do."""
        view = self.jobs[job_id]
        if view.state.terminal:
            raise ConflictError(f"job {job_id} is {view.state.value}")
        proc = self.procs.pop(job_id, None)
        if proc is not None:
            proc.kill()
            proc.wait()
            self.outputs.pop(job_id, None)
        self.jobs[job_id] = replace(
            view, state=JobState.CANCELLED, ended_at=time.time(), reason="cancelled by user"
        )
        self._step()
        return self.jobs[job_id]

    def retry(self, job_id: str) -> JobView:
        raise NotImplementedError

    def logs(self, job_id: str, *, attempt: int | None = None, follow: bool = False) -> Iterator[bytes]:
        yield self.logs_.get(job_id, b"")

    def _step(self) -> None:
        for job_id, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.procs[job_id]
            self.logs_[job_id] = self.logs_.get(job_id, b"") + self.outputs.pop(job_id).read_bytes()
            view = self.jobs[job_id]
            retry = view.spec.retry
            if code != 0 and view.attempts < retry.max_attempts and code in retry.retry_on:
                self.jobs[job_id] = replace(view, state=JobState.QUEUED)
                continue
            state = JobState.SUCCEEDED if code == 0 else JobState.FAILED
            self.jobs[job_id] = replace(
                view,
                state=state,
                ended_at=time.time(),
                exit_code=code,
                reason=None if code == 0 else f"exit code {code}",
            )
        for job_id, view in list(self.jobs.items()):
            if view.state is not JobState.QUEUED:
                continue
            deps = [(self.jobs[d.job], d.condition) for d in view.spec.depends_on]
            if any(
                d.state.terminal and d.state is not JobState.SUCCEEDED and c == "after_ok" for d, c in deps
            ):
                bad = next(d for d, c in deps if d.state.terminal and d.state is not JobState.SUCCEEDED)
                self.jobs[job_id] = replace(
                    view,
                    state=JobState.CANCELLED,
                    ended_at=time.time(),
                    reason=f"dependency {bad.id} did not succeed",
                )
                continue
            if all(d.state.terminal for d, _ in deps):
                log = self.scratch / f"{job_id}.{view.attempts + 1}.log"
                self.outputs[job_id] = log
                with log.open("wb") as out:
                    self.procs[job_id] = subprocess.Popen(
                        view.spec.argv(),
                        cwd=view.spec.cwd,
                        env={**os.environ, **view.spec.env},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                self.jobs[job_id] = replace(
                    view,
                    state=JobState.RUNNING,
                    attempts=view.attempts + 1,
                    started_at=view.started_at or time.time(),
                )
