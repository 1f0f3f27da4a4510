"""Run a build plan: every task whose hash is not cached becomes one platform job.

The runner only talks to the platform through `JobClient` (submit / wait / cancel / logs). A task is
submitted as soon as its dependencies have succeeded; the platform's scheduler decides how many run at
once (each asks for its cpus and memory), so parallelism follows the machine's capacity. The script runs
directly with `node_modules/.bin` on PATH, as npm would, without paying for `npm run`.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freight.builds.cache import CacheStore, Lookup, TaskCache, local_cache_dir
from freight.builds.config import AppConfig
from freight.builds.depcache import DependencyCache, DepReport
from freight.builds.globs import static_root
from freight.builds.graph import Task
from freight.builds.outputs import Manifest, OutputsState, clear_outputs, scan_outputs
from freight.builds.plan import Plan
from freight.builds.progress import NullReporter, Reporter
from freight.builds.releases import FileEntry, publish, release_id_for
from freight.builds.results import RunSummary, TaskResult, critical_path
from freight.builds.signing import cache_key
from freight.builds.store import BuildStore, Route
from freight.builds.workspace import Package, Workspace
from freight.config import Settings
from freight.errors import ConflictError, FreightError, UserError
from freight.jobs.client import JobClient, JobView
from freight.jobs.spec import JobSpec, Resources
from freight.jobs.states import JobState
from freight.storage.objectstore import ObjectStore

#: Passed to every task unhashed: the basics a shell and node need.
BASE_ENV = ("HOME", "LANG", "LC_ALL", "TMPDIR", "TERM", "USER")
RELEASE_TASK = "build"
#: The label every job of a build run carries (its value is the run id).
RUN_LABEL = "build.run"
#: Cache lookups (restores) at once: enough to overlap decompression with the disk on a small machine.
RESTORE_THREADS = 4


@dataclass
class RunOptions:
    continue_on_error: bool = False
    #: Ignore cache hits (entries are still written).
    force: bool = False
    #: Publish built apps as releases (None: as freight.toml says).
    publish: bool | None = None
    trigger: str = "cli"
    install: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    #: The run's id (default: a fresh one); a server hands out the id before the run starts.
    run_id: str | None = None
    #: Set it to cancel the run: nothing new starts and its jobs are cancelled (see `cancel_jobs`).
    cancel: threading.Event = field(default_factory=threading.Event)


def bin_path(ws: Workspace, pkg: Package, base_path: str) -> str:
    """node_modules/.bin of the package and of every folder up to the root, then the caller's PATH."""
    dirs: list[str] = []
    current = ws.root / pkg.dir if pkg.dir else ws.root
    while True:
        dirs.append(str(current / "node_modules" / ".bin"))
        if current == ws.root:
            break
        current = current.parent
    return os.pathsep.join([*dirs, base_path])


def cancel_jobs(client: JobClient, run_id: str) -> list[str]:
    """Cancel every unfinished job of a build run (the tasks and the install carry `build.run`);
    the ids of the jobs this stopped. One listing of all the run's jobs: a listing per state could
    miss a job that changed state between two of them. A job that ends cancelled while this runs
    counts: the run's own runner cancels the rest of its jobs once one ends cancelled, so it may
    reach a job first."""
    asked = time.time()
    cancelled: list[str] = []
    for view in client.list_jobs(label={RUN_LABEL: run_id}, limit=10_000):
        if view.state.terminal:
            if view.state is JobState.CANCELLED and (view.ended_at or 0.0) >= asked:
                cancelled.append(view.id)
            continue
        try:
            client.cancel(view.id)
        except ConflictError:  # it ended in between: by a cancel, or by itself
            if client.get(view.id).state is not JobState.CANCELLED:
                continue
        cancelled.append(view.id)
    return cancelled


def task_env(ws: Workspace, task: Task, environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: environ[k] for k in BASE_ENV if k in environ}
    for name in [*ws.config.workspace.global_env, *task.config.env, *task.config.pass_env]:
        if name.endswith("*"):
            env.update({k: v for k, v in environ.items() if k.startswith(name[:-1])})
        elif name in environ:
            env[name] = environ[name]
    pkg = task.package
    env.update(
        {
            "PATH": bin_path(ws, pkg, environ.get("PATH", os.defpath)),
            "INIT_CWD": str(ws.root / pkg.dir),
            "npm_package_name": pkg.name,
            "npm_package_version": pkg.version,
            "npm_lifecycle_event": task.name,
            "npm_lifecycle_script": task.script or "",
            "FREIGHT_TASK": task.id,
        }
    )
    return env


def task_script(task: Task) -> str:
    """pre<task>, <task> and post<task>, as npm chains them."""
    scripts = task.package.scripts
    parts = [scripts[k] for k in (f"pre{task.name}", task.name, f"post{task.name}") if k in scripts]
    return " && ".join(f"( {p} )" for p in parts) if len(parts) > 1 else parts[0]


def make_cache(settings: Settings, objects: ObjectStore) -> TaskCache:
    """The shared store doubles as the local cache when it sits under FREIGHT_HOME (the default)."""
    key = cache_key(settings)
    state = OutputsState(settings.home / "cache" / "outputs.json")
    if objects.local and Path(objects.root).resolve().is_relative_to(settings.home.resolve()):
        return TaskCache(CacheStore(objects, key, "local"), None, state=state)
    local = ObjectStore(local_cache_dir(settings.home).resolve().as_uri())
    return TaskCache(CacheStore(local, key, "local"), CacheStore(objects, key, "shared"), state=state)


def cache_status(cache: TaskCache, plan: Plan) -> dict[str, str]:
    """Per task: "local", "shared", "miss", "noop", or "unavailable: ..." when a store fails."""
    status: dict[str, str] = {}
    for tid, task in plan.graph.tasks.items():
        if not task.runnable:
            status[tid] = "noop"
            continue
        status[tid] = "miss"
        for store in (cache.local, cache.shared):
            if store is None:
                continue
            try:
                if store.has(plan.hashes[tid]):
                    status[tid] = store.name
                    break
            except Exception as exc:
                status[tid] = f"unavailable: {store.name} cache ({type(exc).__name__}: {exc})"
    return status


class Builder:
    def __init__(
        self,
        settings: Settings,
        client: JobClient,
        *,
        objects: ObjectStore | None = None,
        store: BuildStore | None = None,
        reporter: Reporter | None = None,
        cache: TaskCache | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.objects = objects or ObjectStore(settings.object_store_url)
        self.store = store or BuildStore.open(settings)
        self.reporter: Reporter = reporter or NullReporter()
        self.cache = cache or make_cache(settings, self.objects)
        self.deps = DependencyCache(self.objects, cache_key(settings))

    # dry run ---------------------------------------------------------------------------------------

    def dry(self, plan: Plan) -> dict[str, Any]:
        return plan.to_dict(cache_status(self.cache, plan))

    # running ---------------------------------------------------------------------------------------

    def run(self, plan: Plan, options: RunOptions | None = None) -> RunSummary:
        return _Run(self, plan, options or RunOptions()).execute()

    def install(self, command: str, cwd: Path, labels: Mapping[str, str]) -> tuple[bool, float, bytes]:
        """Run the package manager as a platform job."""
        env = {k: os.environ[k] for k in (*BASE_ENV, "PATH") if k in os.environ}
        spec = JobSpec(
            name="build deps install",
            shell=command,
            cwd=str(cwd),
            env=env,
            # exactly BASE_ENV and PATH: lifecycle scripts never see FREIGHT_BUILD_CACHE_KEY (which
            # signs cache entries) or anything else of the server's environment
            inherit_env=False,
            # the workspace belongs to whoever runs freight: the install writes node_modules there
            user="root",
            resources=Resources(cpus=1.0, memory="2G"),
            timeout=1800.0,
            labels={**labels, "freight.workload": "build", "build.task": "install"},
        )
        started = time.monotonic()
        job = self.client.submit(spec, platform=True)
        view = self.client.wait([job.id])[0]
        log = b"".join(self.client.logs(job.id))
        seconds = _job_seconds(view) or (time.monotonic() - started)
        return view.state == JobState.SUCCEEDED, seconds, log


def app_route(pkg: Package, app: AppConfig) -> Route:
    """Where the gateway serves an app's releases."""
    return Route(pkg.slug, tuple(app.hosts), app.prefix or f"/{pkg.slug}/", app.spa)


def check_routes(store: BuildStore, plan: Plan) -> None:
    """ConflictError, naming the app's section of freight.toml, when a service holds a host or the
    prefix an app of `plan` would publish on (the claim rule of db/claims.py)."""
    config = plan.ws.config
    for task in plan.graph.tasks.values():
        pkg = task.package
        if not (pkg.is_app and task.name == RELEASE_TASK):
            continue
        try:
            store.check_route(app_route(pkg, config.app(*pkg.names)))
        except ConflictError as exc:
            section = next((name for name in pkg.names if name in config.apps), pkg.slug)
            where = f"{config.source}: apps.{section}.{exc.where}"
            raise ConflictError(exc.message, where=where, hint=exc.hint) from None


def _job_seconds(view: JobView) -> float | None:
    if view.started_at is not None and view.ended_at is not None:
        return max(0.0, view.ended_at - view.started_at)
    return None


class _Run:
    """The state of one execution of a plan."""

    def __init__(self, builder: Builder, plan: Plan, options: RunOptions) -> None:
        self.b = builder
        self.plan = plan
        self.options = options
        self.id = options.run_id or uuid.uuid4().hex[:16]
        self.reporter = builder.reporter
        self.results: dict[str, TaskResult] = {}
        self.warnings: list[str] = []
        self.releases: list[dict[str, Any]] = []
        self.events: queue.Queue[tuple[str, JobView | None, BaseException | None]] = queue.Queue()
        self.running: dict[str, tuple[str, float]] = {}
        self.deps_report: DepReport | None = None
        self.deps_error: str | None = None
        #: The gateway routes as stored (read on the first publish)
        self.routes: dict[str, Route] | None = None
        #: (app, release id) -> files, of the releases recorded (read when first needed)
        self.known_releases: dict[tuple[str, str], int] | None = None
        self.stopping = False
        self.publish = plan.ws.config.workspace.publish if options.publish is None else options.publish
        self.cancelled = options.cancel
        self.labels = {"freight.workload": "build", RUN_LABEL: self.id, **options.labels}

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.reporter.warning(message)

    def offset(self) -> float:
        return time.monotonic() - self.t0

    def execute(self) -> RunSummary:
        self.started_at = time.time()
        self.t0 = time.monotonic()
        order = self.plan.graph.order()
        self.pending = list(order)
        if self.publish:
            check_routes(self.b.store, self.plan)  # before anything is built or published
        self.reporter.started(len(order))
        self.reporter.info(
            f"build {self.id}: {len(order)} tasks (cancel: Ctrl-C, or `freight build --cancel {self.id}`)"
        )
        try:
            try:
                self._loop()
            except KeyboardInterrupt:
                self._interrupted()
        except BaseException:
            self._cancel_running()
            raise
        finally:
            self.reporter.finished()
        return self._summarize()

    def _loop(self) -> None:
        while self.pending or self.running:
            self.pending = self._start_ready(self.pending)
            if not self.running:
                if self.pending:  # only blocked tasks left: their dependencies did not succeed
                    for tid in self.pending:
                        self._skip(tid)
                    self.pending = []
                continue
            tid, view, error = self.events.get()
            self._finish(tid, view, error)

    def _interrupted(self) -> None:
        """Ctrl-C: cancel every job of the run, tracked or not (the install, a job submitted as the
        signal came), and wait for them to end, so none outlives this process. A second Ctrl-C stops
        waiting (the cancels are recorded; the scheduler still carries them out)."""
        self.cancelled.set()
        self.stopping = True
        jobs = set(cancel_jobs(self.b.client, self.id))
        self.reporter.info(
            f"cancelling the build: {len(jobs)} job(s) stopping (Ctrl-C again to stop waiting)"
        )
        self._loop()
        untracked = sorted(jobs - {r.job_id for r in self.results.values() if r.job_id})
        if untracked:
            self.b.client.wait(untracked)

    # scheduling ------------------------------------------------------------------------------------

    def _start_ready(self, pending: list[str]) -> list[str]:
        """Start every task whose dependencies are done; cache lookups (restores) run side by side,
        and the tasks they unblock get their turn at once."""
        while True:
            pending, lookups = self._scan(pending)
            if not lookups:
                return pending
            self._look_up(lookups)

    def _scan(self, pending: list[str]) -> tuple[list[str], list[Task]]:
        """(tasks still waiting, ready tasks to look up in the cache); starts the others."""
        graph = self.plan.graph
        left: list[str] = []
        lookups: list[Task] = []
        for tid in pending:
            task = graph.tasks[tid]
            if self.cancelled.is_set():
                self._skip(tid, "not started: the build was cancelled")
                continue
            if self.stopping:
                self._skip(tid, "not started: an earlier task failed (use --continue to go on)")
                continue
            bad = [d for d in task.deps if d in self.results and not self.results[d].ok]
            if bad:
                self._skip(tid, f"dependency {bad[0]} {self.results[bad[0]].status}")
                continue
            if not all(d in self.results for d in task.deps):
                left.append(tid)
                continue
            if task.runnable and task.config.cache and not self.options.force:
                lookups.append(task)
                continue
            self._start(task)
        return left, lookups

    def _look_up(self, tasks: list[Task]) -> None:
        """Look up (and restore) several tasks at once: unpacking and writing files wait on zlib and
        the disk, which threads overlap; then each hit is recorded, and each miss submitted, in order."""

        def one(task: Task) -> tuple[Lookup, float, float]:
            start = self.offset()
            pkg_dir = self.plan.ws.root / task.package.dir
            found = self.b.cache.lookup(self.plan.hashes[task.id], task.id, pkg_dir, task.config.outputs)
            return found, start, self.offset()

        if len(tasks) == 1:
            done = [one(tasks[0])]
        else:
            with ThreadPoolExecutor(min(RESTORE_THREADS, len(tasks)), "restore") as pool:
                done = list(pool.map(one, tasks))
        for task, (lookup, start, end) in zip(tasks, done, strict=True):
            self._looked_up(task, lookup, start, end)

    def _skip(self, tid: str, reason: str = "dependency did not succeed") -> None:
        task = self.plan.graph.tasks[tid]
        now = self.offset()
        result = TaskResult(tid, task.package.name, self.plan.hashes[tid], "skipped", start=now, end=now)
        result.reason = reason
        self.results[tid] = result
        self.reporter.task_finished(result)

    def _start(self, task: Task) -> None:
        tid = task.id
        task_hash = self.plan.hashes[tid]
        start = self.offset()
        if not task.runnable:
            self.results[tid] = TaskResult(tid, task.package.name, task_hash, "noop", start=start, end=start)
            self.reporter.task_finished(self.results[tid])
            return
        self._submit(task, self.plan.ws.root / task.package.dir, start)

    def _looked_up(self, task: Task, lookup: Lookup, start: float, end: float) -> None:
        for warning in lookup.warnings:
            self.warn(warning)
        if lookup.entry is None:
            if self.cancelled.is_set():
                self._skip(task.id, "not started: the build was cancelled")
            elif self.stopping:
                self._skip(task.id, "not started: an earlier task failed (use --continue to go on)")
            else:
                self._submit(task, self.plan.ws.root / task.package.dir, start)
            return
        tid = task.id
        result = lookup.result(tid, task.package.name, self.plan.hashes[tid], start, end)
        self.results[tid] = result
        self.reporter.task_finished(result)
        self._publish(task, lookup.entry.manifest if lookup.in_place else None)

    def _ensure_deps(self) -> None:
        if self.deps_report is not None or self.deps_error is not None or not self.options.install:
            return
        try:
            self.deps_report = self.b.deps.ensure(
                self.plan.ws, lambda command, cwd: self.b.install(command, cwd, self.labels)
            )
        except FreightError as exc:
            self.deps_error = str(exc)
            self.warn(f"installing dependencies failed: {exc}")
            return
        for warning in self.deps_report.warnings:
            self.warn(warning)
        report = self.deps_report
        if report.status == "restored":
            self.reporter.info(
                f"dependencies restored from snapshot {report.key[:12]} in {report.seconds:.2f}s "
                f"(install took {report.install_seconds or 0:.2f}s; saved {report.saved_seconds or 0:.2f}s)"
            )
        elif report.status == "installed":
            self.reporter.info(f"dependencies installed in {report.seconds:.2f}s and snapshotted")

    def _submit(self, task: Task, pkg_dir: Path, start: float) -> None:
        self._ensure_deps()
        tid = task.id
        if self.cancelled.is_set():  # while dependencies were being installed
            self._skip(tid, "not started: the build was cancelled")
            return
        if self.deps_error is not None:
            result = TaskResult(tid, task.package.name, self.plan.hashes[tid], "failed", start=start)
            result.reason = "dependencies could not be installed"
            result.end = self.offset()
            self.results[tid] = result
            self.reporter.task_finished(result)
            self._after_failure()
            return
        clear_outputs(pkg_dir, task.config.outputs)
        app = self.plan.ws.config.app(*task.package.names) if task.package.is_app else None
        resources = Resources(
            cpus=(app.cpus if app and app.cpus else task.config.cpus),
            memory=(app.memory if app and app.memory else task.config.memory),
        )
        spec = JobSpec(
            name=f"build {tid}"[:200],
            shell=task_script(task),
            cwd=str(pkg_dir),
            env=task_env(self.plan.ws, task, self.plan.environ),
            # exactly the declared environment: an undeclared variable must not change a build
            inherit_env=False,
            # the task writes its outputs into the workspace, which belongs to whoever runs freight
            user="root",
            resources=resources,
            timeout=task.config.timeout,
            labels={**self.labels, "build.task": tid, "build.hash": self.plan.hashes[tid]},
        )
        job = self.b.client.submit(spec, platform=True)
        self.running[tid] = (job.id, start)
        self.reporter.task_started(tid, job.id)
        threading.Thread(target=self._wait, args=(tid, job.id), daemon=True, name=f"wait-{tid}").start()
        if self.cancelled.is_set():
            # cancelled while it was being submitted: a canceller lists the run's jobs after setting
            # the flag, so it either saw this job or this check sees the flag
            self._cancel_running()

    def _wait(self, tid: str, job_id: str) -> None:
        try:
            view = self.b.client.wait([job_id])[0]
        except BaseException as exc:
            self.events.put((tid, None, exc))
        else:
            self.events.put((tid, view, None))

    def _finish(self, tid: str, view: JobView | None, error: BaseException | None) -> None:
        job_id, start = self.running.pop(tid)
        task = self.plan.graph.tasks[tid]
        end = self.offset()
        result = TaskResult(tid, task.package.name, self.plan.hashes[tid], "failed", start=start, end=end)
        result.job_id = job_id
        if view is None:
            result.reason = f"lost track of job {job_id}: {error}"
            result.duration = end - start
        else:
            result.duration = _job_seconds(view) or (end - start)
            if view.started_at is not None and view.ended_at is not None:
                # The job's own clock: when it really ran, not when it was queued.
                result.start = max(0.0, view.started_at - self.started_at)
                result.end = max(result.start, view.ended_at - self.started_at)
            result.exit_code = view.exit_code
            try:
                result.log = b"".join(self.b.client.logs(job_id))
            except Exception as exc:
                self.warn(f"{tid}: could not read the log of job {job_id}: {exc}")
            if view.state == JobState.SUCCEEDED:
                self._succeeded(task, result)
            elif view.state == JobState.CANCELLED:
                result.status = "cancelled"
                result.reason = view.reason or "cancelled"
            else:
                result.reason = view.reason or view.state.value
        self.results[tid] = result
        self.reporter.task_finished(result)
        if result.status == "built":
            self._publish(task)
        elif result.status == "failed":
            self._after_failure()
        elif result.status == "cancelled" and not self.stopping:
            # someone cancelled a job of this build (the API, `freight jobs cancel`): cancel the build
            self.cancelled.set()
            self.stopping = True
            self._cancel_running()

    def _succeeded(self, task: Task, result: TaskResult) -> None:
        pkg_dir = self.plan.ws.root / task.package.dir
        files, irregular = scan_outputs(pkg_dir, task.config.outputs)
        if task.config.outputs and not files:
            self.warn(f"{task.id}: produced no files matching {task.config.outputs}")
        result.status = "built"
        result.outputs = len(files)
        if task.config.cache and irregular:
            # a cache entry holds regular files only; one without the links would restore a different tree
            self.warn(f"{task.id}: not cached: output {irregular[0]} is a symlink, device or linked folder")
        elif task.config.cache:
            for warning in self.b.cache.save(
                result.hash, task.id, pkg_dir, files, result.log, result.duration
            ):
                self.warn(warning)

    def _after_failure(self) -> None:
        if self.options.continue_on_error or self.stopping:
            return
        self.stopping = True
        self._cancel_running()

    def _cancel_running(self) -> None:
        for tid, (job_id, _start) in list(self.running.items()):
            try:
                self.b.client.cancel(job_id)
            except ConflictError:  # it just ended (or was cancelled by someone else): its waiter says how
                continue
            except Exception as exc:
                self.warn(f"{tid}: could not cancel job {job_id}: {exc}")

    # releases and summary --------------------------------------------------------------------------

    def _known_release(self, task: Task, folder: str, manifest: Manifest | None) -> dict[str, Any] | None:
        """The release already recorded for outputs left in place (their manifest says which files
        with which content), so a cached build neither reads nor re-publishes them; None: publish."""
        if manifest is None or task.config.outputs != [f"{folder}/**"]:
            return None  # the publish folder may hold files the outputs do not list
        prefix = f"{folder}/"
        # the release id covers paths and content only (type and flags follow from the path)
        release_id = release_id_for(
            {
                rel.removeprefix(prefix): FileEntry(item[2], item[0], "", False)
                for rel, item in manifest.items()
            }
        )
        if self.known_releases is None:
            self.known_releases = self.b.store.release_files()
        count = self.known_releases.get((task.package.slug, release_id))
        if count is None:
            return None
        return {"app": task.package.slug, "release": release_id, "new": False, "files": count}

    def _publish(self, task: Task, in_place: Manifest | None = None) -> None:
        pkg = task.package
        if not (self.publish and pkg.is_app and task.name == RELEASE_TASK):
            return
        app = self.plan.ws.config.app(*pkg.names)
        folder = app.publish or (static_root(task.config.outputs[0]) if task.config.outputs else "") or "dist"
        try:
            known = self._known_release(task, folder, in_place)
            if known is not None:
                self._route(pkg, app)
                self.releases.append(known)
                self._ship_image(task, app, folder, known)
                return
            release, new = publish(
                self.b.objects,
                self.b.store,
                pkg.slug,
                self.plan.ws.root / pkg.dir / folder,
                task_hash=self.plan.hashes[task.id],
                commit=self.plan.commit,
                immutable=app.immutable,
            )
            self._route(pkg, app)
        except UserError as exc:
            self.warn(f"{task.id}: not published: {exc}")
            return
        except Exception as exc:
            self.warn(f"{task.id}: publishing failed ({type(exc).__name__}: {exc})")
            return
        entry = {"app": pkg.slug, "release": release.id, "new": new, "files": release.files}
        self.releases.append(entry)
        self._ship_image(task, app, folder, entry)

    def _ship_image(self, task: Task, app: AppConfig, folder: str, entry: dict[str, Any]) -> None:
        """The app's image beside its release (freight.toml `image = {...}`), tagged by the build hash."""
        if app.image is None:
            return
        from freight.builds.appimage import ship_image

        pkg = task.package
        try:
            pinned = ship_image(
                self.b.settings,
                pkg.slug,
                self.plan.ws.root / pkg.dir,
                folder,
                app.image,
                self.plan.hashes[task.id],
            )
            self.b.store.set_release_image(pkg.slug, entry["release"], pinned)
        except UserError as exc:
            self.warn(f"{task.id}: no image: {exc}")
            return
        except Exception as exc:
            self.warn(f"{task.id}: building the image failed ({type(exc).__name__}: {exc})")
            return
        entry["image"] = pinned

    def _route(self, pkg: Package, app: AppConfig) -> None:
        route = app_route(pkg, app)
        if self.routes is None:
            self.routes = {r.app: r for r in self.b.store.routes()}
        if self.routes.get(route.app) != route:  # a write only when the route moved
            self.b.store.set_route(route)
            self.routes[route.app] = route

    def _summarize(self) -> RunSummary:
        if self.b.cache.state is not None:
            self.b.cache.state.flush()
        graph = self.plan.graph
        chain, seconds = critical_path(
            graph.order(), {tid: t.deps for tid, t in graph.tasks.items()}, self.results
        )
        ordered = {tid: self.results[tid] for tid in self.plan.graph.order() if tid in self.results}
        summary = RunSummary(
            id=self.id,
            workspace=str(self.plan.ws.root),
            commit=self.plan.commit,
            started_at=self.started_at,
            ended_at=time.time(),
            results=ordered,
            critical_path=chain,
            critical_seconds=seconds,
            deps=self.deps_report.to_dict() if self.deps_report else None,
            releases=self.releases,
            warnings=self.warnings,
            trigger=self.options.trigger,
            cancelled=self.cancelled.is_set(),
            graph={tid: sorted(self.plan.graph.tasks[tid].deps) for tid in ordered},
        )
        tasks = [
            {
                "task": r.task,
                "hash": r.hash,
                "status": r.status,
                "duration": r.duration,
                "inputs": self.plan.inputs[r.task].to_dict(),
            }
            for r in ordered.values()
            if r.status in ("built", "cached", "failed", "noop")
        ]
        try:
            self.b.store.record_run(
                {
                    "id": self.id,
                    "workspace": summary.workspace,
                    "started_at": summary.started_at,
                    "ended_at": summary.ended_at,
                    "status": summary.status,
                    "trigger": self.options.trigger,
                    "commit": summary.commit,
                    "summary": summary.to_dict(),
                },
                tasks,
            )
        except Exception as exc:
            self.warn(f"could not record the run in the state store: {exc}")
        return summary
