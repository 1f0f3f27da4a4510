"""`freight build | deploy | rollback | releases | serve`: the builds workload on the command line.

Mount with `freight.cli.build.mount(app)` (adds the five commands to the root app), or pick the
command functions (`build`, `deploy`, `rollback`, `releases`, `serve`) one by one. `build_app` is a
Typer holding them all, for tests or for mounting under a group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from freight.config import Settings, load_settings
from freight.errors import FreightError, NotFoundError, UserError
from freight.units import format_bytes, plural

if TYPE_CHECKING:
    from freight.builds.api import Builds
    from freight.builds.plan import PlanOptions
    from freight.builds.progress import PlainReporter
    from freight.builds.remote import RemoteBuilds
    from freight.builds.runner import RunOptions

#: Exit code of a cancelled build (as `freight run` exits for a cancelled job).
CANCELLED_EXIT = 130
Env = Annotated[str, typer.Option("--env", "-e", help="Environment (e.g. prod, staging)")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _settings() -> Settings:
    return load_settings()


def _open_builds() -> Builds | RemoteBuilds:
    """The local store, or the server at FREIGHT_URL (with FREIGHT_TOKEN) when it is set."""
    from freight.builds.api import Builds
    from freight.builds.remote import RemoteBuilds

    settings = _settings()
    if settings.url:
        return RemoteBuilds(settings.url, settings.token)
    return Builds.open(settings)


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def build(
    packages: Annotated[
        list[str] | None, typer.Argument(help="Only these packages (and what they need)")
    ] = None,
    path: Annotated[Path, typer.Option("--cwd", "-C", help="Inside the workspace")] = Path("."),
    dry: Annotated[bool, typer.Option("--dry", help="Show the plan and hashes; run nothing")] = False,
    as_json: AsJson = False,
    why: Annotated[str | None, typer.Option("--why", help="Explain APP's cache miss input by input")] = None,
    keep_going: Annotated[
        bool, typer.Option("--continue", help="Keep building what does not depend on a failure")
    ] = False,
    affected_since: Annotated[
        str | None, typer.Option("--affected-since", help="Only packages changed since REF, and dependents")
    ] = None,
    summarize: Annotated[
        bool, typer.Option("--summarize", help="Write the run summary JSON under FREIGHT_HOME/builds/runs")
    ] = False,
    task: Annotated[
        list[str] | None, typer.Option("--task", "-t", help="Task names (default: build)")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Ignore cache hits (still writes the cache)")
    ] = False,
    no_publish: Annotated[bool, typer.Option("--no-publish", help="Do not publish releases")] = False,
    cancel: Annotated[
        str | None,
        typer.Option("--cancel", metavar="ID", help="Cancel the running build ID (its unfinished jobs)"),
    ] = None,
) -> None:
    """Build the workspace's apps as isolated jobs, with content-hashed caching.

    With FREIGHT_URL set the build runs on that server, which reads the workspace at the same absolute
    path (same machine or a shared volume); --dry and --why then answer for the server's cache and runs."""
    from freight.builds import memo
    from freight.builds.api import Builds, write_summary
    from freight.builds.plan import PlanOptions
    from freight.builds.progress import PlainReporter
    from freight.builds.runner import RunOptions

    settings = _settings()
    if cancel is not None:
        _cancel(settings, cancel, packages)
        return
    options = PlanOptions(
        tasks=tuple(task or ("build",)), only=tuple(packages or ()), affected_since=affected_since
    )
    run = RunOptions(continue_on_error=keep_going, force=force, publish=False if no_publish else None)
    reporter = PlainReporter(sys.stderr, logs=not as_json)
    if why is not None or dry:
        _explain_or_plan(settings, path, options, why, as_json)
        return
    if settings.url:
        data = _build_remote(settings, path, options, run, reporter)
    else:
        from freight.builds.platform import LazyPlatform

        # the platform starts with the first task that must run: a fully cached build never starts it
        with (
            Builds.open(settings) as builds,
            LazyPlatform(settings, builds.store.engine) as client,
            _sigterm_interrupts(),
        ):
            plan = builds.plan(path, options)
            if not packages and not affected_since and options.tasks == memo.TASKS:
                # what freight.toml says: --no-publish is this run's, the fast path checks it itself
                publish = plan.ws.config.workspace.publish
                memo.save(
                    settings.home, path.resolve(), memo.memo_of(plan, path.resolve(), publish, os.environ)
                )
            data = builds.builder(client, reporter).run(plan, run).to_dict()
    if summarize:
        where = write_summary(settings, data)
        typer.echo(f"summary: {where}", err=True)
    _print_summary(data, as_json)
    if data["status"] == "cancelled":
        raise typer.Exit(CANCELLED_EXIT)
    if data["status"] != "ok":
        raise typer.Exit(1)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a CI runner's timeout, `kill`) cancels a local build as Ctrl-C does, so its jobs do not
    outlive it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _explain_or_plan(
    settings: Settings, path: Path, options: PlanOptions, why: str | None, as_json: bool
) -> None:
    """`--why APP` or `--dry`: here, or on FREIGHT_URL's server (whose cache and recorded runs are the
    ones a build there would use)."""
    from freight.builds.api import Builds
    from freight.builds.explain import Explanation
    from freight.builds.remote import RemoteBuilds

    explanations: list[Explanation] | None = None
    if settings.url:
        request = _plan_request(path, options)
        with RemoteBuilds(settings.url, settings.token) as remote:
            if why is not None:
                explanations = remote.why(request, why)
            else:
                plan_data = remote.dry(request)
    else:
        with Builds.open(settings) as builds:
            plan = builds.plan(path, options)
            if why is not None:
                explanations = builds.why(plan, why, task=options.tasks[0])
            else:
                plan_data = builds.dry(plan)
    if explanations is not None:
        if as_json:
            _print_json([e.to_dict() for e in explanations])
        else:
            typer.echo("\n".join(e.text() for e in explanations))
    elif as_json:
        _print_json(plan_data)
    else:
        _print_plan(plan_data)


def _plan_request(path: Path, plan: PlanOptions) -> dict[str, Any]:
    """What the server needs to plan: the workspace's absolute path and the filters."""
    return {
        "workspace": str(path.resolve()),
        "packages": list(plan.only),
        "tasks": list(plan.tasks),
        "affected_since": plan.affected_since,
    }


def _cancel(settings: Settings, build_id: str, packages: list[str] | None) -> None:
    """`--cancel ID`: on FREIGHT_URL's server, else the jobs of that run in the local store (the
    scheduler serving the store stops them; the build's runner then records the run as cancelled)."""
    from freight.builds.remote import RemoteBuilds
    from freight.builds.runner import cancel_jobs
    from freight.jobs.service import JobService

    if packages:
        raise UserError("--cancel takes a build id and no packages", where="--cancel")
    if settings.url:
        with RemoteBuilds(settings.url, settings.token) as remote:
            jobs = list(remote.cancel(build_id)["cancelled_jobs"])
    else:
        with JobService.open(settings) as svc:
            jobs = cancel_jobs(svc, build_id)
        if not jobs:
            raise NotFoundError(
                f"no running build {build_id!r}", where="--cancel", hint="give the id a build printed"
            )
    typer.echo(f"build {build_id}: cancelling {plural(len(jobs), 'job')}")


def _build_remote(
    settings: Settings, path: Path, plan: PlanOptions, run: RunOptions, reporter: PlainReporter
) -> dict[str, Any]:
    """POST the workspace's absolute path to the server, print its progress; the run summary."""
    from freight.builds.remote import RemoteBuilds

    assert settings.url is not None
    request = {
        **_plan_request(path, plan),
        "continue": run.continue_on_error,
        "force": run.force,
        "publish": run.publish,
    }
    with RemoteBuilds(settings.url, settings.token) as remote:
        started = remote.start_build(request)
        try:
            done = remote.follow(started["id"], reporter)
        except KeyboardInterrupt:
            if not _ask_to_cancel(started["id"]):
                raise typer.Exit(CANCELLED_EXIT) from None
            remote.cancel(started["id"])
            done = remote.follow(started["id"], reporter)
    if done["summary"] is None:
        raise FreightError(f"build {done['id']} on {settings.url} failed: {done['error']}")
    summary: dict[str, Any] = done["summary"]
    return summary


def _ask_to_cancel(build_id: str) -> bool:
    """After Ctrl-C on a remote build: ask on a terminal; elsewhere say how to cancel it later."""
    if sys.stdin.isatty():
        try:
            return typer.confirm("\ncancel the build on the server?", default=False, err=True)
        except (KeyboardInterrupt, typer.Abort):
            pass
    typer.echo(
        f"\nthe build {build_id} goes on on the server; cancel it with `freight build --cancel {build_id}`",
        err=True,
    )
    return False


def _print_summary(data: dict[str, Any], as_json: bool) -> None:
    from freight.builds.results import RunSummary

    if as_json:
        _print_json(data)
        return
    typer.echo(RunSummary.from_dict(data).table())
    for item in data["releases"]:
        if item["new"]:
            typer.echo(f"release {item['app']} {item['release']} ({item['files']} files)")
        if item.get("image"):
            typer.echo(f"image {item['app']} {item['image']}")


def _print_plan(data: dict[str, object]) -> None:
    tasks = data["tasks"]
    assert isinstance(tasks, list)
    rows = [("TASK", "HASH", "CACHE", "COMMAND")]
    for t in tasks:
        rows.append((t["task"], t["hash"][:12], t["cache"] or "-", t["command"] or "(no script)"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        typer.echo("  ".join([*(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)), r[3]]))
    if data.get("affected") is not None:
        typer.echo(f"affected packages: {', '.join(data['affected']) or 'none'}")  # type: ignore[arg-type]


def deploy(
    app_name: Annotated[str, typer.Argument(metavar="APP", help="The app (its short name)")],
    release: Annotated[
        str | None, typer.Argument(help="Release id or prefix (default: what the last build of APP produced)")
    ] = None,
    env: Env = "prod",
) -> None:
    """Make a release of APP current in an environment, atomically (on FREIGHT_URL's server if set)."""
    with _open_builds() as builds:
        release_id, done = builds.deploy(app_name, release, env, actor="cli")
    if done is None:
        typer.echo(f"{app_name}: {release_id} is already current in {env}")
    else:
        was = f" (was {done.previous_release_id})" if done.previous_release_id else ""
        typer.echo(f"{app_name}: {release_id} is now current in {env}{was}")


def rollback(
    app_name: Annotated[str, typer.Argument(metavar="APP")],
    env: Env = "prod",
) -> None:
    """Re-point APP to the release it replaced, at once (on FREIGHT_URL's server if set)."""
    with _open_builds() as builds:
        done = builds.rollback(app_name, env, actor="cli")
    typer.echo(f"{app_name}: rolled back to {done.release_id} in {env} (from {done.previous_release_id})")


def releases(
    app_name: Annotated[str, typer.Argument(metavar="APP")],
    as_json: AsJson = False,
    history: Annotated[bool, typer.Option("--history", help="Show deploys and rollbacks")] = False,
) -> None:
    """List APP's releases (newest first) and where each is current (on FREIGHT_URL's server if set)."""
    import datetime as dt

    with _open_builds() as builds:
        rows = builds.releases(app_name)
        events = builds.history(app_name) if history else []
    if as_json:
        _print_json({"releases": [r.to_dict() for r in rows], "history": [e.to_dict() for e in events]})
        return
    for row in rows:
        r = row.release
        when = dt.datetime.fromtimestamp(r.created_at).strftime("%Y-%m-%d %H:%M:%S")
        current = f"  <- current in {', '.join(row.current_in)}" if row.current_in else ""
        commit = (r.commit or "-")[:10]
        typer.echo(f"{r.id}  {when}  {r.files:>4} files  {format_bytes(r.bytes):>8}  {commit}{current}")
        if r.image:
            typer.echo(f"    image {r.image}")
    for e in events:
        when = dt.datetime.fromtimestamp(e.created_at).strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(
            f"{when}  {e.env}  {e.action:<8} {e.release_id} (was {e.previous_release_id or '-'}) by {e.actor}"
        )


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on")] = 8080,
    env: Env = "prod",
    ttl: Annotated[float, typer.Option("--ttl", min=0, help="Seconds to cache what is current")] = 1.0,
) -> None:
    """Serve every app's current release (by host name or path prefix) with CDN cache headers."""
    import uvicorn

    from freight.builds.api import Builds
    from freight.builds.config import check_deploy_env

    check_deploy_env(env, where="--env")
    builds = Builds.open(_settings())
    from freight.server.tokens import request_checker  # previews take an API token of this store

    gateway = builds.gateway(env=env, ttl=ttl, may_preview=request_checker(builds.store.engine))
    routes = builds.store.routes()
    typer.echo(f"freight gateway on http://{host}:{port} ({env}); apps:", err=True)
    for route in routes:
        hosts = f" hosts {', '.join(route.hosts)}" if route.hosts else ""
        typer.echo(f"  {route.app}: {route.prefix}{hosts}", err=True)
    try:
        uvicorn.run(gateway, host=host, port=port, log_level="warning")
    finally:
        builds.close()


build_app = typer.Typer(help="Monorepo builds: build, deploy, roll back, serve.", no_args_is_help=True)
COMMANDS: dict[str, Callable[..., None]] = {
    "build": build,
    "deploy": deploy,
    "rollback": rollback,
    "releases": releases,
    "serve": serve,
}
for _name, _fn in COMMANDS.items():
    build_app.command(_name)(_fn)


def mount(app: typer.Typer) -> None:
    """Add `build`, `deploy`, `rollback`, `releases` and `serve` to the root CLI."""
    for name, fn in COMMANDS.items():
        app.command(name)(fn)


__all__ = ["build", "build_app", "deploy", "mount", "releases", "rollback", "serve"]
