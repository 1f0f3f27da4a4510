"""Compile a pipeline run into platform jobs, submit them, follow them, record what happened.

Every step becomes one job running `python -m freight.pipelines.step` with the step's own cpus and
memory. Jobs are submitted in topological order, each with `depends_on: after_ok` on the jobs of the
steps it waits for, so the platform's scheduler releases a step the moment its inputs are done (no
polling round-trip through this process) and cancels the dependents of a failed step (the cascade).
This process only follows: it waits on the jobs, reads each step's `_result.json` and writes runs,
step runs and QA results to the run store. Talks to the platform only through `JobClient`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import graphlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from freight.config import Settings
from freight.connectors.connections import default_config_path, load_connections, redact, referenced_vars
from freight.errors import ConflictError, UserError
from freight.jobs.client import JobClient, JobView
from freight.jobs.spec import Dependency, JobSpec, Resources, RetryPolicy
from freight.jobs.states import JobState
from freight.pipelines.datasets import read_result
from freight.pipelines.fusion import fused_pairs
from freight.pipelines.loader import Pipeline, load_pipeline, validate
from freight.pipelines.preflight import check_connections, step_connections
from freight.pipelines.schedule import Interval, from_key, manual_interval
from freight.pipelines.spec import Step
from freight.pipelines.step import MANIFEST
from freight.pipelines.store import OK_STEP_STATES, Run, RunStore, StepRun, new_run_id
from freight.pipelines.templating import job_env, render_text, render_value
from freight.storage.objectstore import ObjectStore

DEFAULT_CPUS = 1.0
DEFAULT_MEMORY = 512 * 1024**2
#: A step exits 2 on bad input (not worth retrying) and 3 on a failed QA check.
RETRYABLE: list[Any] = ["lost", "oom", "timeout", 1]
#: What every step job's environment starts with.
STEP_ENV = {
    # connectorx's Rust pool logs connection errors (with the URL's parts) straight to stderr, past
    # our redaction; silence it: the step reports the same error, redacted.
    "RUST_LOG": "off",
    # Arrow's default pool (jemalloc/mimalloc) keeps freed pages and its own background threads: under
    # a cgroup memory limit that ended some steps in SIGABRT (an allocator that cannot get memory
    # aborts), and it held RSS ~60-100 MB above what the step uses. glibc's malloc returns memory to
    # the system and with two arenas stays compact while connectorx, Arrow and the warehouse client
    # allocate from their own threads.
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    "MALLOC_ARENA_MAX": "2",
}


@dataclass
class Compiled:
    run_id: str
    run_url: str
    manifest: dict[str, Any]
    #: jobs to submit, in topological order: the steps each runs (two for a fused extract → load,
    #: pipelines/fusion.py) and its spec (depends_on filled later)
    jobs: list[tuple[tuple[str, ...], JobSpec]]
    step_runs: list[StepRun]


@dataclass
class Rerun:
    """A planned rerun: the run it repeats, the pipeline as it is now and the steps it keeps."""

    old: Run
    pipeline: Pipeline
    reuse: dict[str, StepRun]


class PipelineRunner:
    def __init__(
        self,
        client: JobClient,
        store: RunStore,
        settings: Settings,
        *,
        config_path: Path | None = None,
        python: str = sys.executable,
        on_event: Callable[[str, StepRun], None] | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self.config_path = config_path or default_config_path()
        self.python = python
        self.on_event = on_event

    # --- compile ------------------------------------------------------------------------------------

    def compile(
        self,
        pipeline: Pipeline,
        *,
        reuse: dict[str, StepRun] | None = None,
        run_id: str | None = None,
        interval: Interval | None = None,
    ) -> Compiled:
        reuse = reuse or {}
        spec = pipeline.spec
        run_id = run_id or new_run_id()
        interval = interval or manual_interval(spec.schedule, _now())
        context = template_context(pipeline, interval, run_id)
        run_url = f"{self.settings.object_store_url.rstrip('/')}/runs/{spec.name}/{run_id}"
        outputs = {
            s.name: (reuse[s.name].output_url if s.name in reuse else f"{run_url}/{s.name}")
            for s in spec.steps
        }
        manifest: dict[str, Any] = {
            "pipeline": spec.name,
            "run_id": run_id,
            "defaults": {"warehouse": spec.defaults.warehouse},
            "config_path": str(self.config_path),
            "home": str(self.settings.home),
            "steps": {},
        }
        jobs: list[tuple[tuple[str, ...], JobSpec]] = []
        step_runs: list[StepRun] = []
        fused = fused_pairs(spec, reuse)
        fused_into = {load: extract for extract, load in fused.items()}
        for name in pipeline.dag.order():
            step = spec.step(name)
            cpus, memory = self._resources(pipeline, step)
            index = pipeline.spec.step_names().index(name)
            config = step.model_dump(mode="json", exclude_none=True)
            manifest["steps"][name] = {
                "type": step.type,
                "config": {
                    k: render_value(
                        v,
                        context,
                        where=pipeline.locator.where(("steps", index, k)),
                        field=f"steps.{name}.{k}",
                    )
                    for k, v in config.items()
                },
                "texts": {
                    f: render_text(
                        t,
                        context,
                        where=str(pipeline.file(str(getattr(step, f)))),
                        field=f"steps.{name}.{f}",
                    )
                    for f, t in _texts(pipeline, step).items()
                },
                "paths": _paths(pipeline, step),
                "inputs": {i: outputs[i] for i in step.inputs},
                "output_url": outputs[name],
                "cpus": cpus,
                "memory": memory,
            }
            if name in reuse:
                old = reuse[name]
                step_runs.append(
                    StepRun(
                        name,
                        step.type,
                        "reused",
                        rows=old.rows,
                        output_url=old.output_url,
                        reused_from=old.reused_from or _run_of(old),
                    )
                )
                continue
            step_runs.append(StepRun(name, step.type, "pending", output_url=outputs[name]))
            if name in fused:
                continue  # its load's job runs it
            job = self._job_spec(pipeline, step, run_id, run_url, cpus, memory)
            names: tuple[str, ...] = (name,)
            if name in fused_into:
                names = (fused_into[name], name)
                job = self._fused_spec(pipeline, job, spec.step(fused_into[name]), manifest["steps"])
            job = job.model_copy(update={"env": {**job.env, **job_env(context)}})
            jobs.append((names, job))
        return Compiled(run_id, run_url, manifest, jobs, step_runs)

    def _resources(self, pipeline: Pipeline, step: Step) -> tuple[float, int]:
        defaults = pipeline.spec.defaults.resources
        own = step.resources
        cpus = (own.cpus if own and own.cpus else None) or defaults.cpus or DEFAULT_CPUS
        memory = (own.memory if own and own.memory else None) or defaults.memory or DEFAULT_MEMORY
        return cpus, memory

    def _step_env(self, pipeline: Pipeline, step: Step) -> list[str]:
        connections = load_connections(self.config_path, home=self.settings.home)  # as of this run
        names: set[str] = set()
        for name in step_connections(pipeline).get(step.name, set()):
            conn = connections.items.get(name)
            if conn is not None:
                names.update(referenced_vars(conn))
        if self.settings.object_store_url.startswith("s3://"):
            names.add("AWS_*")  # s3fs reads its credentials from the environment
        return sorted(names)

    def _fused_spec(
        self, pipeline: Pipeline, load_job: JobSpec, extract: Step, entries: dict[str, Any]
    ) -> JobSpec:
        """One job for an extract and its load: both in one process, so the larger of their cpus and
        memory, the more generous retries, and the two timeouts added up."""
        load = load_job.labels["pipeline_step"]
        own = self._job_spec(
            pipeline, extract, "", "", entries[extract.name]["cpus"], entries[extract.name]["memory"]
        )
        timeouts = (own.timeout, load_job.timeout)
        return load_job.model_copy(
            update={
                "name": f"{pipeline.name}/{extract.name}+{load}",
                "command": [*load_job.argv()[:-2], "--step", extract.name, "--step", load],
                "pass_env": sorted({*own.pass_env, *load_job.pass_env}),
                "resources": Resources(
                    cpus=max(own.resources.cpus, load_job.resources.cpus),
                    memory=max(own.resources.memory or 0, load_job.resources.memory or 0) or None,
                ),
                "timeout": None if None in timeouts else sum(t or 0 for t in timeouts),
                "retry": max(own.retry, load_job.retry, key=lambda r: r.max_attempts),
                "labels": {**load_job.labels, "pipeline_step": f"{extract.name}+{load}"},
            }
        )

    def _job_spec(
        self, pipeline: Pipeline, step: Step, run_id: str, run_url: str, cpus: float, memory: int
    ) -> JobSpec:
        defaults = pipeline.spec.defaults
        retries = step.retries if step.retries is not None else defaults.retries
        timeout = step.timeout if step.timeout is not None else defaults.timeout
        return JobSpec(
            name=f"{pipeline.name}/{step.name}",
            command=[self.python, "-m", "freight.pipelines.step", "--run-dir", run_url, "--step", step.name],
            cwd=str(pipeline.base_dir),
            env=dict(STEP_ENV),
            # A step reads its run's manifest and the warehouse under FREIGHT_HOME: it runs as the
            # server's user (a platform job). Of the server's environment it gets the ${VAR}s its own
            # connections name (and the object store's credentials), not the other connections'.
            # See docs/reliability.md.
            user="root",
            pass_env=self._step_env(pipeline, step),
            resources=Resources(cpus=cpus, memory=memory),
            timeout=timeout,
            retry=RetryPolicy(max_attempts=retries + 1, retry_on=RETRYABLE if retries else ["lost"]),
            labels={"pipeline": pipeline.name, "pipeline_run": run_id, "pipeline_step": step.name},
        )

    # --- run ----------------------------------------------------------------------------------------

    def start(
        self,
        pipeline: Pipeline,
        *,
        reuse: dict[str, StepRun] | None = None,
        rerun_of: str | None = None,
        spec_path: str | None = None,
        interval: Interval | None = None,
        trigger: str = "manual",
        now: float | None = None,
    ) -> str:
        """Record the run and submit its jobs (write the manifest first). Returns the run id.

        A pipeline with `wait_for` or `preconditions` is recorded `waiting` and submits nothing:
        `release` submits it once they hold (the server's pipeline scheduler, or `run`, asks)."""
        check_connections(pipeline, load_connections(self.config_path, home=self.settings.home))
        spec = pipeline.spec
        interval = interval or manual_interval(spec.schedule, _now(now))
        key = (interval.key(), interval.end.timestamp()) if spec.schedule or trigger != "manual" else None
        compiled = self.compile(pipeline, reuse=reuse, run_id=new_run_id(now), interval=interval)
        hold = bool(spec.wait_for or spec.preconditions)
        if not hold:
            ObjectStore(compiled.run_url).put_bytes(MANIFEST, json.dumps(compiled.manifest).encode())
        self.store.create_run(
            compiled.run_id,
            pipeline.name,
            spec=spec.model_dump(mode="json", exclude_none=True),
            spec_path=spec_path,
            run_url=compiled.run_url,
            steps=compiled.step_runs,
            rerun_of=rerun_of,
            now=now,
            state="waiting" if hold else "running",
            interval=key,
            trigger=trigger,
        )
        if not hold:
            self._submit(pipeline, compiled)
        return compiled.run_id

    def release(self, run_id: str) -> bool:
        """Submit a waiting run's steps (its conditions hold). False when it was not waiting (another
        scheduler tick released or ended it first)."""
        run = self.store.get(run_id)
        if run.state != "waiting":
            return False
        pipeline = self._reload(run)
        reuse = {s.step: s for s in run.steps if s.state == "reused"}
        compiled = self.compile(pipeline, reuse=reuse, run_id=run_id, interval=run_interval(run))
        ObjectStore(compiled.run_url).put_bytes(MANIFEST, json.dumps(compiled.manifest).encode())
        if not self.store.set_state(run_id, "waiting", "running"):
            return False
        self._submit(pipeline, compiled)
        return True

    def check_conditions(self, run_id: str, now: float | None = None) -> str:
        """Ask a waiting run's wait_for and preconditions once: go (released), wait, or fail (ended
        failed, with why). Returns the run's state afterwards."""
        from freight.pipelines.conditions import evaluate

        run = self.store.get(run_id)
        if run.state != "waiting":
            return run.state
        pipeline = self._reload(run)
        verdict = evaluate(
            run,
            pipeline.spec.wait_for,
            pipeline.spec.preconditions,
            store=self.store,
            connections=load_connections(self.config_path, home=self.settings.home),
            base_dir=pipeline.base_dir,
            render=template_context(
                pipeline, run_interval(run) or manual_interval(pipeline.spec.schedule, _now(now)), run.id
            ),
            now=time.time() if now is None else now,
        )
        if verdict.state == "go":
            self.release(run_id)
        elif verdict.state == "fail":
            for step in run.steps:
                if step.state == "pending":
                    step.state = "cancelled"
                    self.store.update_step(run_id, step)
            self.store.finish_run(run_id, "failed", verdict.reason, state_was="waiting")
            self.notify_end(run_id)
        return self.store.get(run_id).state

    def _submit(self, pipeline: Pipeline, compiled: Compiled) -> None:
        by_name = {s.step: s for s in compiled.step_runs}
        job_ids: dict[str, str] = {}
        for names, job in compiled.jobs:
            upstream = {u: None for n in names for u in pipeline.dag.upstream[n] if u not in names}
            deps = [Dependency(job=job_ids[u], condition="after_ok") for u in upstream if u in job_ids]
            deps = list({d.job: d for d in deps}.values())
            view = self.client.submit(job.model_copy(update={"depends_on": deps}), platform=True)
            for name in names:
                job_ids[name] = view.id
                step_run = by_name[name]
                step_run.job_id, step_run.state = view.id, "queued"
                self.store.update_step(compiled.run_id, step_run)

    def notify_end(self, run_id: str) -> None:
        """Send on_success / on_failure for an ended run, once (whoever claims it sends)."""
        run = self.store.get(run_id)
        notify = _notify_of(run)
        if notify is None or run.state not in ("succeeded", "failed"):
            return
        event: Literal["success", "failure"] = "success" if run.state == "succeeded" else "failure"
        if notify.targets(event) and self.store.claim_notice(run_id, event):
            from freight.pipelines.notify import send

            send(notify, run, event)

    def follow(self, run_id: str, *, poll: float = 1.0, timeout: float | None = None) -> Run:
        """Wait for the run's jobs, recording each step as it ends; returns the finished run (a run
        that has already ended, as it is)."""
        run = self.store.get(run_id)
        if run.state != "running":
            return run
        steps = {s.step: s for s in run.steps}
        pending: dict[str, list[StepRun]] = {}
        for s in run.steps:
            if s.job_id and s.state in ("pending", "queued", "running"):
                pending.setdefault(s.job_id, []).append(s)  # a fused job runs two steps
        deadline = None if timeout is None else time.monotonic() + timeout
        while pending:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            views = self.client.wait(list(pending), timeout=poll if left is None else min(poll, left))
            for view in views:
                if view.state.terminal:
                    for step_run in pending.pop(view.id):
                        self._finish_step(run, step_run, view)
                    continue
                for step_run in pending[view.id]:
                    if view.state is JobState.RUNNING and step_run.state != "running":
                        step_run.state, step_run.started_at = "running", view.started_at
                        self.store.update_step(run_id, step_run)
                        self._emit("running", step_run)
        if not pending:
            failed = [s for s in steps.values() if s.state not in OK_STEP_STATES]
            self.store.finish_run(run_id, "failed" if failed else "succeeded", _run_error(failed))
            self.notify_end(run_id)
        return self.store.get(run_id)

    def cancel(self, run_id: str) -> list[str]:
        """Cancel the run's step jobs that have not finished; `follow` then records how it ended.
        Returns the ids of the jobs it cancelled. Dependents go first: cancelling an upstream job
        first lets the scheduler cascade its dependents as `upstream_failed` before we reach them."""
        cancelled = []
        run = self.store.get(run_id)
        if run.state == "waiting":  # nothing submitted yet: it ends here
            for step in run.steps:
                if step.state == "pending":
                    step.state = "cancelled"
                    self.store.update_step(run_id, step)
            self.store.finish_run(run_id, "cancelled", "cancelled while waiting", state_was="waiting")
        for step in _downstream_first(run):
            if step.job_id in cancelled:  # a fused job runs two steps
                continue
            if step.job_id and step.state in ("pending", "queued", "running"):
                with contextlib.suppress(ConflictError):  # it ended meanwhile
                    self.client.cancel(step.job_id)
                    cancelled.append(step.job_id)
        return cancelled

    def run(
        self,
        pipeline: Pipeline,
        *,
        spec_path: str | None = None,
        poll: float = 1.0,
        interval: Interval | None = None,
        trigger: str = "manual",
    ) -> Run:
        run_id = self.start(pipeline, spec_path=spec_path, interval=interval, trigger=trigger)
        return self.follow(self.wait_conditions(run_id, poll=poll), poll=poll)

    def wait_conditions(self, run_id: str, *, poll: float = 1.0) -> str:
        """In embedded mode nobody else releases a waiting run: ask its conditions until they hold
        or it fails (each condition's timeout bounds this)."""
        while self.check_conditions(run_id) == "waiting":
            time.sleep(poll)
        return run_id

    def rerun(self, run_id: str, *, from_failed: bool = True, poll: float = 1.0) -> Run:
        """A new run of the same pipeline. With from_failed, steps that succeeded before are reused
        (their datasets are read where they are) and only failed steps and their dependents run."""
        return self.follow(self.start_rerun(self.plan_rerun(run_id, from_failed=from_failed)), poll=poll)

    def plan_rerun(self, run_id: str, *, from_failed: bool = True) -> Rerun:
        """What a rerun would run, without starting it (raises if there is nothing to rerun)."""
        old = self.store.get(run_id)
        if old.state in ("running", "waiting"):
            raise ConflictError(f"run {run_id} is still running", hint="wait for it, or follow it first")
        pipeline = self._reload(old)
        reuse: dict[str, StepRun] = {}
        if from_failed:
            bad = {s.step for s in old.steps if s.state not in OK_STEP_STATES}
            redo = pipeline.dag.closure_down(n for n in bad if n in pipeline.dag.upstream)
            redo |= {n for n in pipeline.dag.names if n not in {s.step for s in old.steps}}
            if not redo:
                raise ConflictError(f"run {run_id} has no failed steps", hint="rerun without --from-failed")
            reuse = {s.step: s for s in old.steps if s.step not in redo and s.step in pipeline.dag.upstream}
        return Rerun(old, pipeline, reuse)

    def start_rerun(self, plan: Rerun) -> str:
        old = plan.old
        return self.start(
            plan.pipeline,
            reuse=plan.reuse,
            rerun_of=old.id,
            spec_path=old.spec_path,
            interval=run_interval(old) if old.interval_start is not None else None,
            trigger=old.trigger or "manual",
        )

    def queues(self, pipeline: Pipeline, *, reuse: dict[str, StepRun] | None = None) -> set[str]:
        """The queues a run of `pipeline` would submit its step jobs to (for a token's scope)."""
        return {job.queue for _, job in self.compile(pipeline, reuse=reuse).jobs}

    def _reload(self, run: Run) -> Pipeline:
        """The pipeline file as it is now (a rerun picks up fixes), or the run's stored spec without it."""
        if run.spec_path and Path(run.spec_path).is_file():
            pipeline = load_pipeline(run.spec_path)
            if pipeline.name != run.pipeline:
                raise UserError(
                    f"{run.spec_path} now defines pipeline {pipeline.name!r}, not {run.pipeline!r}",
                    hint="rerun from the original file",
                )
            return pipeline
        from freight.pipelines.loader import Locator

        base = Path(run.spec_path).parent if run.spec_path else Path.cwd()
        return validate(run.spec, Locator(f"run {run.id}"), base)

    def _finish_step(self, run: Run, step_run: StepRun, view: JobView) -> None:
        result = read_result(ObjectStore(step_run.output_url or "")) if step_run.output_url else None
        step_run.started_at = view.started_at
        step_run.ended_at = view.ended_at
        step_run.attempts = view.attempts
        fused = bool(result and result.get("fused_with"))
        if fused and result and view.state.terminal:
            # A fused job's steps end on their own: the extract when its source has been read.
            step_run.ended_at = (result.get("metrics") or {}).get("ended_at") or view.ended_at
        if view.state is JobState.SUCCEEDED or (fused and result and "error" not in result):
            step_run.state = "succeeded"
        elif (fused and result and result.get("upstream_failed")) or (
            view.state is JobState.CANCELLED
            and view.started_at is None
            and "dependency" in (view.reason or "")
        ):
            step_run.state = "upstream_failed"
        elif view.state is JobState.CANCELLED:
            step_run.state = "cancelled"
        else:
            step_run.state = "failed"
        if result:
            step_run.rows = result.get("rows")
            step_run.metrics = dict(result.get("metrics") or {})
            if fused:
                step_run.metrics["fused_with"] = result["fused_with"]
            failed_checks = [c for c in result.get("checks", []) if c["status"] == "fail"]
            step_run.error = result.get("error") or (failed_checks[0]["message"] if failed_checks else None)
            self.store.add_checks(run.id, step_run.step, result.get("checks", []), time.time())
        if step_run.state == "failed" and not step_run.error:
            step_run.error = redact(view.reason or view.state.value)
        if step_run.state == "upstream_failed" and not (fused and step_run.error):
            step_run.error = _upstream_error(run, view.reason)
        attempt = view.attempt_list[-1] if view.attempt_list else None
        if attempt is not None and attempt.peak_memory:
            step_run.metrics["job_peak_memory"] = attempt.peak_memory
        self.store.update_step(run.id, step_run)
        self._emit(step_run.state, step_run)

    def _emit(self, event: str, step_run: StepRun) -> None:
        if self.on_event is not None:
            self.on_event(event, step_run)


def _now(now: float | None = None) -> dt.datetime:
    return dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC)


def template_context(pipeline: Pipeline, interval: Interval, run_id: str) -> dict[str, Any]:
    return {**interval.context(), "run_id": run_id, "params": dict(pipeline.spec.params)}


def run_interval(run: Run) -> Interval | None:
    """The interval a run was recorded with (None: a manual run of a pipeline with no schedule)."""
    if run.interval_start is None or run.interval_end is None:
        return None
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(run.timezone())
    return Interval(from_key(run.interval_start, zone), from_key(run.interval_end, zone))


def _notify_of(run: Run) -> Any:
    raw = run.spec.get("notify")
    if not raw:
        return None
    from freight.pipelines.notify import Notify

    return Notify.model_validate(raw)


def _downstream_first(run: Run) -> list[StepRun]:
    """The run's steps, every step before the steps it waits for (inputs and depends_on)."""
    graph = {
        str(s.get("name")): [str(u) for u in [*(s.get("inputs") or []), *(s.get("depends_on") or [])]]
        for s in run.spec.get("steps", [])
    }
    order = {name: i for i, name in enumerate(graphlib.TopologicalSorter(graph).static_order())}
    return sorted(run.steps, key=lambda s: -order.get(s.step, -1))


def _run_error(failed: list[StepRun]) -> str | None:
    """Why a run failed: its first failed step, else the first that did not run to the end (a
    cancelled run said nothing)."""
    first = next((s for s in failed if s.state == "failed"), None)
    if first is not None:
        return f"step {first.step} failed: {first.error}"
    return f"step {failed[0].step} {failed[0].state}" if failed else None


def _upstream_error(run: Run, reason: str | None) -> str | None:
    """The scheduler names the dependency that failed by its job id; users know it by its step."""
    for s in run.steps:
        if reason and s.job_id:
            reason = reason.replace(f"dependency {s.job_id}", f"upstream step {s.step}")
    return reason


def _texts(pipeline: Pipeline, step: Step) -> dict[str, str]:
    return {f: pipeline.file(rel).read_text() for f, rel in step.files().items() if f != "script"}


def _paths(pipeline: Pipeline, step: Step) -> dict[str, str]:
    paths = {"base_dir": str(pipeline.base_dir)}
    for f, rel in step.files().items():
        if f == "script":
            paths[f] = str(pipeline.file(rel))
    path = getattr(step, "path", None)
    if step.type == "extract-files" and isinstance(path, str) and "://" not in path:
        paths["path"] = str(pipeline.base_dir / path) if not Path(path).is_absolute() else path
    return paths


def _run_of(step_run: StepRun) -> str | None:
    """The run id inside a dataset URL .../runs/<pipeline>/<run>/<step>."""
    parts = (step_run.output_url or "").rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 else None
