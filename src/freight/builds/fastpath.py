"""`freight build` when every task is a cache hit, answered without the heavy stack.

A fully cached build (or one whose outputs only need restoring from the local cache) does no job:
it hashes, checks or restores outputs, records the run and prints the summary. The full path pays
~0.5-1 s of imports for that (typer, pydantic for freight.toml, SQLAlchemy and Alembic for the store);
this path uses the standard library and freight's light modules only:

- the plan comes from the plan memo (`builds.memo`) when its fingerprint still matches, and the hashes
  from the same recipes the full planner evaluates (`builds.recipe`);
- cache entries are read from the local object store's files (`storage.localfiles`) and checked or
  restored by the same `TaskCache` (outputs already on disk that match the entry's manifest are left
  alone; restores run on RESTORE_THREADS threads, copying: never hard links into the cache);
- the run is recorded with the standard library's sqlite3 (`builds.sqlitestore`).

Whenever it cannot answer exactly as the full path would (an option it does not handle, a server at
FREIGHT_URL, another store, no memo or a stale one, a cache miss, a rejected entry, publishing), it
returns None before changing anything but restored outputs, and the full path runs.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from freight.builds import memo as plan_memo
from freight.builds.cache import CacheStore, Lookup, TaskCache
from freight.builds.files import hand_over, head_commit, list_files
from freight.builds.outputs import OutputsState
from freight.builds.progress import PlainReporter, Reporter
from freight.builds.recipe import evaluate, seed_node_version
from freight.builds.results import RunSummary, TaskResult, critical_path
from freight.builds.signing import cache_key
from freight.builds.sqlitestore import RunRecorder
from freight.config import Settings, load_settings
from freight.errors import FreightError
from freight.storage.localfiles import LocalBlobs, local_root

#: As runner.RESTORE_THREADS.
RESTORE_THREADS = 4


@dataclass(frozen=True)
class Options:
    cwd: Path = Path(".")
    no_publish: bool = False
    as_json: bool = False


def parse(argv: list[str]) -> Options | None:
    """The options of `freight build ARGS` this path answers; None for any other (the full path
    parses and reports those, mistakes included)."""
    cwd = Path(".")
    no_publish = as_json = False
    args = iter(argv)
    for arg in args:
        if arg == "--no-publish":
            no_publish = True
        elif arg == "--json":
            as_json = True
        elif arg in ("--cwd", "-C"):
            value = next(args, None)
            if value is None or value.startswith("-"):
                return None
            cwd = Path(value)
        elif arg.startswith("--cwd="):
            cwd = Path(arg.removeprefix("--cwd="))
        else:
            return None
    return Options(cwd, no_publish, as_json)


def try_build(argv: list[str], environ: Mapping[str, str] | None = None) -> int | None:
    """Run `freight build ARGV` here and return its exit code, or None: the full path must run."""
    options = parse(argv)
    if options is None:
        return None
    env = dict(os.environ if environ is None else environ)
    try:
        settings = load_settings(env)
    except FreightError:
        return None
    if settings.url:
        return None
    try:
        return FastBuild(settings, options, env).run()
    except (FreightError, OSError, ValueError, KeyError):
        return None  # the full path does it again, and says what is wrong if anything is


@dataclass(frozen=True)
class Checked:
    """What `check` found: the memo held, and every runnable task's entry is in the local cache."""

    memo: plan_memo.PlanMemo
    root: Path
    cache: TaskCache
    hashes: dict[str, str]
    inputs: Mapping[str, Any]
    lookups: list[plan_memo.MemoTask]


class Recorder(Protocol):
    """`RunRecorder` (sqlite3, the CLI) or `BuildStore` (a server's store)."""

    def record_run(self, run: dict[str, Any], tasks: Iterable[dict[str, Any]], /) -> None: ...


class FastBuild:
    """The fast path over one workspace folder: `check` (reads only), then `answer` (checks or
    restores outputs, reports, records). The CLI runs both through `run`; a server (builds.api's
    builds) calls them with its own reporter and store."""

    def __init__(
        self,
        settings: Settings,
        options: Options,
        environ: Mapping[str, str],
        *,
        publish: bool | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.environ = dict(environ)
        #: the run's publish setting (None: as freight.toml says); only a run that publishes nothing
        #: is answered here
        self.publish = False if options.no_publish else publish
        #: the workspace root and its git listing, once `check` found the memo holds (a full plan
        #: may start from that listing)
        self.listed: tuple[Path, dict[str, str]] | None = None

    def _cache(self) -> TaskCache | None:
        """The local cache, when the object store is the local one under FREIGHT_HOME (as make_cache
        then uses it); None otherwise (a shared store: the full path looks there too)."""
        root = local_root(self.settings.object_store_url)
        home = self.settings.home.resolve()
        if root is None or not root.resolve().is_relative_to(home):
            return None
        store = CacheStore(LocalBlobs(root.resolve()), cache_key(self.settings, self.environ), "local")
        return TaskCache(store, None, state=OutputsState(home / "cache" / "outputs.json"))

    def check(self) -> Checked | None:
        """Whether this path can answer: the memo holds and every runnable task is in the local
        cache. Changes nothing."""
        start_dir = self.options.cwd.resolve()
        memo = plan_memo.load(self.settings.home, start_dir)
        if memo is None or (self.publish is None and memo.publish) or self.publish:
            return None
        cache = self._cache()
        if cache is None or cache.local is None:
            return None
        root = Path(memo.root)
        files = list_files(root)
        key = plan_memo.fingerprint(start_dir, root, files, memo.dirs, self.environ)
        if key != memo.key:
            return None
        self.listed = (root, files)
        seed_node_version(memo.node)
        inputs = evaluate(
            [t.recipe for t in memo.tasks], files, memo.dirs, memo.global_inputs, self.environ, memo.node
        )
        hashes = {tid: i.digest() for tid, i in inputs.items()}
        lookups = [t for t in memo.tasks if t.runnable]
        # every task must be a hit before any output is touched
        if any(not t.cache or not cache.local.has(hashes[t.recipe.task]) for t in lookups):
            return None
        return Checked(memo, root, cache, hashes, inputs, lookups)

    def run(self) -> int | None:
        """The CLI: answer and print as `freight build` does; None: the full path must run."""
        found = self.check()
        if self.listed is not None:
            # the plan still holds: should the full path take over, it starts from this listing
            hand_over(*self.listed)
        if found is None:
            return None
        recorder = RunRecorder.open(self.settings.database_url)
        if recorder is None:
            return None
        try:
            reporter = PlainReporter(sys.stderr, logs=not self.options.as_json)
            summary = self.answer(found, reporter, recorder)
        finally:
            recorder.close()
        if summary is None:
            return None
        data = summary.to_dict()
        if self.options.as_json:
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        else:
            sys.stdout.write(RunSummary.from_dict(data).table() + "\n")
        sys.stdout.flush()
        return 0 if data["status"] == "ok" else 1

    def answer(
        self,
        found: Checked,
        reporter: Reporter,
        recorder: Recorder,
        *,
        run_id: str | None = None,
        trigger: str = "cli",
    ) -> RunSummary | None:
        """Check or restore every task's outputs, report and record the run; None (before reporting
        anything) when an entry turns out a miss or warns: the full path goes on from there."""
        memo, root, cache, hashes = found.memo, found.root, found.cache, found.hashes
        run_id = run_id or os.urandom(8).hex()  # as the runner's uuid4().hex[:16], without uuid
        started_at = time.time()
        t0 = time.monotonic()
        order = [t.recipe.task for t in memo.tasks]

        def look_up(task: plan_memo.MemoTask) -> tuple[Lookup, float, float]:
            begin = time.monotonic() - t0
            tid = task.recipe.task
            hit = cache.lookup(hashes[tid], tid, root / task.recipe.dir, task.outputs)
            return hit, begin, time.monotonic() - t0

        done = _parallel(look_up, found.lookups, RESTORE_THREADS)
        if cache.state is not None:
            cache.state.flush()
        if any(not hit.hit or hit.warnings for hit, _b, _e in done.values()):
            return None  # restored outputs stay (they are the entries'); the full path goes on from there
        reporter.started(len(order))
        reporter.info(
            f"build {run_id}: {len(order)} tasks (cancel: Ctrl-C, or `freight build --cancel {run_id}`)"
        )
        results: dict[str, TaskResult] = {}
        for task in memo.tasks:
            tid = task.recipe.task
            if tid not in done:
                now = time.monotonic() - t0
                results[tid] = TaskResult(tid, task.recipe.package, hashes[tid], "noop", start=now, end=now)
            else:
                hit, begin, end = done[tid]
                results[tid] = hit.result(tid, task.recipe.package, hashes[tid], begin, end)
            reporter.task_finished(results[tid])
        reporter.finished()
        deps = {t.recipe.task: t.recipe.deps for t in memo.tasks}
        chain, seconds = critical_path(order, deps, results)
        summary = RunSummary(
            id=run_id,
            workspace=str(root),
            commit=head_commit(root),
            started_at=started_at,
            ended_at=time.time(),
            results=results,
            critical_path=chain,
            critical_seconds=seconds,
            trigger=trigger,
            graph={tid: sorted(deps[tid]) for tid in order},
        )
        tasks = [
            {
                "task": r.task,
                "hash": r.hash,
                "status": r.status,
                "duration": r.duration,
                "inputs": found.inputs[r.task].to_dict(),
            }
            for r in results.values()
        ]
        record = {
            "id": run_id,
            "workspace": summary.workspace,
            "started_at": summary.started_at,
            "ended_at": summary.ended_at,
            "status": summary.status,
            "trigger": trigger,
            "commit": summary.commit,
        }
        try:
            recorder.record_run({**record, "summary": summary.to_dict()}, tasks)
        except Exception as exc:
            summary.warnings.append(f"could not record the run in the state store: {exc}")
            reporter.warning(summary.warnings[-1])
        return summary


def _parallel(
    work: Callable[[plan_memo.MemoTask], tuple[Lookup, float, float]],
    tasks: list[plan_memo.MemoTask],
    threads: int,
) -> dict[str, tuple[Lookup, float, float]]:
    """`work` over `tasks` on up to `threads` threads, by task id (plain threads: concurrent.futures
    imports logging, which this path does not otherwise need)."""
    pending = list(reversed(tasks))
    done: dict[str, tuple[Lookup, float, float]] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not pending or errors:
                    return
                task = pending.pop()
            try:
                result = work(task)
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                return
            with lock:
                done[task.recipe.task] = result

    workers = [
        threading.Thread(target=worker, name="restore") for _ in range(max(1, min(threads, len(tasks))))
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    if errors:
        raise errors[0]
    return done
