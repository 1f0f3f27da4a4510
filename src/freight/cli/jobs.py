"""`freight run`, `freight submit` and `freight jobs ...`."""

from __future__ import annotations

import os
import signal
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from freight.cli.common import open_service, read_spec_file, spec_from_flags, validate_located
from freight.cli.output import (
    console,
    ending_sentence,
    err_console,
    exit_code_for,
    jobs_table,
    print_json,
    show_job,
)
from freight.errors import ConflictError, NotFoundError, UserError
from freight.text import check_text

if TYPE_CHECKING:  # the store and pydantic load when a command runs, not for --help
    from collections.abc import Sequence

    from freight.cli.common import Service
    from freight.cli.output import Listed
    from freight.jobs.client import JobView
    from freight.jobs.spec import JobSpec

jobs_app = typer.Typer(help="List, inspect, follow, cancel and retry jobs.", no_args_is_help=True)

Cpus = Annotated[str | None, typer.Option("--cpus", help="CPU limit, e.g. 0.5 or 2")]
Memory = Annotated[str | None, typer.Option("--memory", "-m", help="Hard memory limit, e.g. 512M, 2G")]
Timeout = Annotated[str | None, typer.Option("--timeout", help="Attempt timeout, e.g. 30s, 10m")]
Retries = Annotated[int | None, typer.Option("--retries", help="Extra attempts after a failure")]
RetryOn = Annotated[
    list[str] | None,
    typer.Option("--retry-on", help="oom, timeout, lost, failed or an exit code; repeatable"),
]
Queue = Annotated[str | None, typer.Option("--queue", "-q", help="Queue name (default: default)")]
Priority = Annotated[
    int | None, typer.Option("--priority", "-p", help="Higher runs first within its queue (default 0)")
]
Name = Annotated[str | None, typer.Option("--name", "-n", help="A name to find the job by")]
Env = Annotated[list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE; repeatable")]
Label = Annotated[list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE; repeatable")]
After = Annotated[list[str] | None, typer.Option("--after", help="JOB[:after_ok|after_any]; repeatable")]
Key = Annotated[str | None, typer.Option("--idempotency-key", help="Same key, same job: no duplicate")]
Shell = Annotated[bool, typer.Option("--shell", help="Run the command through /bin/sh -c")]
Cwd = Annotated[str | None, typer.Option("--cwd", help="Working directory of the job")]
File = Annotated[Path | None, typer.Option("--file", "-f", help="A job spec in YAML or JSON")]
Definition = Annotated[str | None, typer.Option("--definition", "-d", help="NAME or NAME:VERSION")]
Command = Annotated[list[str] | None, typer.Argument(help="The command, after --")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]
Image = Annotated[str | None, typer.Option("--image", help="Run in this container image (podman + runc)")]
Network = Annotated[str | None, typer.Option("--network", help="Image jobs: none (default), host or bridge")]
Mount = Annotated[
    list[str] | None, typer.Option("--mount", help="Image jobs: SOURCE:TARGET[:ro|rw]; repeatable")
]


@dataclass
class _Request:
    """A job `run` or `submit` will queue, checked before any store is opened: bad input leaves
    nothing behind, not even a new FREIGHT_HOME."""

    spec: dict[str, Any]
    file: Path | None
    definition: str | None
    checked: JobSpec | None  # None with a definition: the template is applied where it is stored


def _request(
    *, command: list[str] | None, file: Path | None, definition: str | None, **flags: Any
) -> _Request:
    """The job that `run`'s or `submit`'s parameters describe, passed by name: each command declares
    its flags once, in its signature, and hands them all here (`locals()`)."""
    from freight.jobs.spec import parse_spec

    base = read_spec_file(file) if file else None
    spec = spec_from_flags(command or [], base=base, **flags)
    check_text(spec, source=str(file) if file else "arguments")  # `printf 'caf\xe9'`: bytes, not UTF-8
    if definition is None and "command" not in spec and "shell" not in spec:
        if file is not None:  # a misspelt `comand:` is said as such, with its line
            validate_located(file, spec)
        raise UserError("nothing to run", hint="give a command after --, a --file, or a --definition")
    checked = None
    if definition is None:
        checked = validate_located(file, spec) if file is not None else parse_spec(spec)
    return _Request(spec, file, definition, checked)


def _submit(svc: Service, request: _Request) -> JobView:
    from freight.jobs.spec import Dependency

    spec, checked = request.spec, request.checked
    if spec.get("depends_on") and checked is not None and checked.depends_on:
        # --after and depends_on take an id or a unique prefix of one, as `jobs show` does
        deps = [dep.model_dump() | {"job": _full_id(svc, dep.job)} for dep in checked.depends_on]
        checked = checked.model_copy(update={"depends_on": [Dependency(**dep) for dep in deps]})
    if checked is not None:
        return svc.submit(checked)
    return svc.submit(spec, definition=request.definition)


def _full_id(svc: Service, job_id: str) -> str:
    try:
        return svc.get(job_id).id
    except NotFoundError:
        raise NotFoundError(f"no job {job_id!r} to depend on", where="depends_on") from None


def run(
    command: Command = None,
    cpus: Cpus = None,
    memory: Memory = None,
    timeout: Timeout = None,
    retries: Retries = None,
    retry_on: RetryOn = None,
    queue: Queue = None,
    priority: Priority = None,
    name: Name = None,
    env: Env = None,
    label: Label = None,
    shell: Shell = False,
    cwd: Cwd = None,
    file: File = None,
    definition: Definition = None,
    image: Image = None,
    network: Network = None,
    mount: Mount = None,
) -> None:
    """Run a command as an isolated job, stream its output, and exit with its exit code.

    Ctrl-C (or SIGTERM, SIGHUP) cancels the job, as srun does; a second one stops waiting for it."""
    # a container starts in its image's working directory, not in ours
    request = _request(**{**locals(), "cwd": cwd or (None if image else str(Path.cwd()))})
    _warn_if_stdin_given()
    with open_service() as svc:
        with svc.running():
            view = _submit(svc, request)
            err_console.print(f"[dim]freight: job {view.id} queued[/]")
            following = _Following(Follower(svc, view.id))
            with _signals_interrupt():
                try:
                    view = following.result()
                except KeyboardInterrupt:
                    view = _cancel_and_wait(svc, following)
        style = "green" if view.exit_code == 0 and view.state.value == "succeeded" else "red"
        err_console.print(f"[{style}]freight: {ending_sentence(view)}[/]")
        raise typer.Exit(exit_code_for(view))


class _Following:
    """A Follower at work in a thread of its own, so that Ctrl-C reaches a main thread that only
    waits: an interrupt raised in the middle of a store transaction could leave it open (and the
    SQLite store locked); and the output goes on while the cancelled job stops."""

    def __init__(self, follower: Follower) -> None:
        self.job_id = follower.job_id
        self._view: JobView | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(follower,), daemon=True)
        self._thread.start()

    def _work(self, follower: Follower) -> None:
        try:
            self._view = follower.until_done()
        except BaseException as exc:  # raised in the main thread, by result()
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> JobView:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._view is not None
        return self._view


def _cancel_and_wait(svc: Service, following: _Following) -> JobView:
    """Ctrl-C: cancel the job and keep showing its output while it stops (a job may print on
    SIGTERM); a second Ctrl-C stops waiting, and the job is cancelled all the same."""
    job_id = following.job_id
    try:
        err_console.print(
            f"[yellow]freight: cancelling job {job_id} "
            "(Ctrl-C again to stop waiting; it is cancelled either way)[/]"
        )
        with suppress(ConflictError):  # it ended meanwhile
            svc.cancel(job_id)
        return following.result()
    except KeyboardInterrupt:
        err_console.print(
            f"[yellow]freight: stopped waiting; job {job_id} is being cancelled "
            f"(see `freight jobs show {job_id}`)[/]"
        )
        raise typer.Exit(130) from None


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP (a CI runner stopping, a closed terminal) act like Ctrl-C while `run`
    waits: the job is cancelled rather than left running with no one watching it."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _warn_if_stdin_given() -> None:
    """A job's stdin is /dev/null (it may run on another machine, and outlives this command); say
    so when something is piped in, rather than dropping it silently."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return
    if stat.S_ISFIFO(mode) or stat.S_ISREG(mode):
        err_console.print(
            "[yellow]freight: the job's stdin is /dev/null; piped input is not passed to it "
            "(write it to a file the job reads)[/]"
        )


class Follower:
    """Copies a job's output to stdout, attempt after attempt, until the job ends."""

    def __init__(self, svc: Service, job_id: str, first_attempt: int = 1) -> None:
        self.svc = svc
        self.job_id = job_id
        self.first = first_attempt

    def until_done(self) -> JobView:
        shown = self.first - 1
        said_why = False
        while True:
            view = self.svc.get(self.job_id)
            if view.attempts == 0 and view.reason and not view.terminal and not said_why:
                # a job that does not start says why once (a paused queue, no capacity, no scheduler)
                err_console.print(f"[yellow]freight: job {view.id} waits: {view.reason}[/]")
                said_why = True
            if view.attempts > shown:
                shown += 1
                if shown > self.first:
                    err_console.print(f"[yellow]freight: {_next_attempt_line(view, shown)}[/]")
                for chunk in self.svc.logs(self.job_id, attempt=shown, follow=True):
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.buffer.flush()
                continue
            if view.terminal:
                return view
            self.svc.wait([self.job_id], timeout=0.2)


def _next_attempt_line(view: JobView, number: int) -> str:
    """'attempt 2 of 3 (attempt 1 failed, exit code 3)': said between two attempts' output."""
    line = f"attempt {number} of {view.spec.retry.max_attempts}"
    if number - 2 < len(view.attempt_list):
        before = view.attempt_list[number - 2]
        code = f", exit code {before.exit_code}" if before.exit_code is not None else ""
        line += f" (attempt {number - 1} {before.state}{code})"
    return line


def submit(
    command: Command = None,
    cpus: Cpus = None,
    memory: Memory = None,
    timeout: Timeout = None,
    retries: Retries = None,
    retry_on: RetryOn = None,
    queue: Queue = None,
    priority: Priority = None,
    name: Name = None,
    env: Env = None,
    label: Label = None,
    after: After = None,
    idempotency_key: Key = None,
    shell: Shell = False,
    cwd: Cwd = None,
    file: File = None,
    definition: Definition = None,
    image: Image = None,
    network: Network = None,
    mount: Mount = None,
    as_json: AsJson = False,
) -> None:
    """Queue a job and print its id. A scheduler (`freight up`) runs it, in this directory unless
    --cwd (or the file or definition) says where."""
    request = _request(**{k: v for k, v in locals().items() if k != "as_json"})
    if request.definition is None and "cwd" not in request.spec:  # `./nightly.sh` is the one here
        request.spec["cwd"] = str(Path.cwd())
        if request.checked is not None:
            request.checked = request.checked.model_copy(update={"cwd": request.spec["cwd"]})
    with open_service() as svc:
        view = _submit(svc, request)
        if as_json:
            print_json(view.to_dict())
        else:
            typer.echo(view.id)
        if svc.scheduler_holder() is None:
            err_console.print("[yellow]freight: no scheduler is running; start one with `freight up`[/]")


@jobs_app.command("ls")
def ls(
    state: Annotated[
        str | None, typer.Option("--state", "-s", help="Only jobs in this state, e.g. running, failed")
    ] = None,
    queue: Annotated[str | None, typer.Option("--queue", "-q", help="Only jobs of this queue")] = None,
    label: Label = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Jobs per page")] = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Jobs older than this id (the last of a page)")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List jobs, newest first, a page of --limit at a time."""
    from freight.cli.common import parse_pairs

    labels = parse_pairs(label, "--label") or None
    if not as_json and labels is None:  # the local store, read without SQLAlchemy when it can be
        from freight.config import load_settings
        from freight.jobs.listing import quick_list

        settings = load_settings()
        listed = (
            None
            if settings.url
            else quick_list(settings.database_url, state=state, queue=queue, limit=limit, cursor=cursor)
        )
        if listed is not None:
            _print_listing(listed, limit)
            return
    with open_service() as svc:
        views = svc.list_jobs(state=state, queue=queue, label=labels, limit=limit, cursor=cursor)
    if as_json:
        print_json([v.to_dict() for v in views])
        return
    _print_listing(views, limit)


def _print_listing(views: Sequence[Listed], limit: int) -> None:
    console.print(jobs_table(views))
    if len(views) == limit:
        err_console.print(f"[dim]freight: more may follow: add --cursor {views[-1].id}[/]")


@jobs_app.command("show")
def show(job_id: str, as_json: AsJson = False) -> None:
    """Everything about one job: spec, state, reason, attempts with exit, OOM, peak memory and CPU."""
    with open_service() as svc:
        view = svc.get(job_id)
    if as_json:
        print_json(view.to_dict())
    else:
        show_job(view)


@jobs_app.command("logs")
def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends")] = False,
    attempt: Annotated[
        int | None, typer.Option("--attempt", min=1, help="This attempt's output (default: the latest)")
    ] = None,
) -> None:
    """Print a job's output (stdout and stderr); -f follows it until the job ends."""
    with open_service() as svc:
        if follow and attempt is None:
            # the latest attempt, then any retries, until the job ends
            view = svc.get(job_id)
            Follower(svc, view.id, first_attempt=max(view.attempts, 1)).until_done()
            return
        for chunk in svc.logs(job_id, attempt=attempt, follow=follow):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()


@jobs_app.command("cancel")
def cancel(job_ids: list[str]) -> None:
    """Cancel jobs: queued ones never start; running ones get SIGTERM, then SIGKILL after their grace."""
    with open_service() as svc:
        for view in _all_or_none(svc, job_ids, ended=False):
            view = svc.cancel(view.id)
            typer.echo(f"{view.id} {view.state.value if view.terminal else 'cancelling'}")


@jobs_app.command("retry")
def retry(job_ids: list[str]) -> None:
    """Queue finished jobs again (a new attempt of the same job)."""
    with open_service() as svc:
        for view in _all_or_none(svc, job_ids, ended=True):
            typer.echo(f"{svc.retry(view.id).id} queued")


def _all_or_none(svc: Service, job_ids: list[str], *, ended: bool) -> list[JobView]:
    """The jobs named, checked before any is touched: one unknown id, or one job that has (not)
    ended, and none is cancelled or retried (the same errors the service gives for one job)."""
    views = [svc.get(job_id) for job_id in job_ids]
    for view in views:
        if ended and not view.terminal:
            raise ConflictError(f"job {view.id} is {view.state.value}; only a finished job can be retried")
        if not ended and view.terminal:
            raise ConflictError(f"job {view.id} already ended ({view.state.value})", where=view.id)
    return views


@jobs_app.command("events")
def events(
    job_id: Annotated[str | None, typer.Argument()] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="The newest this many events")] = 50,
    as_json: AsJson = False,
) -> None:
    """The audit trail of state transitions."""
    from freight.cli.output import when

    with open_service() as svc:
        rows = svc.events(job_id, limit)
    if as_json:
        print_json(rows)
        return
    for row in reversed(rows):
        moved = f"{row['from_state'] or '-':>10} -> {row['to_state']:<10}"
        typer.echo(f"{when(row['at'])}  {row['job_id']}  {moved} {row['detail'] or ''}")


@jobs_app.command("gc")
def gc(
    older_than: Annotated[str, typer.Option("--older-than", help="e.g. 30d, 12h")] = "30d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go")] = False,
) -> None:
    """Delete finished jobs (rows, attempts, events, logs) that ended longer ago than --older-than."""
    from freight.units import parse_duration

    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise UserError(str(exc), where="--older-than") from None
    with open_service() as svc:  # with FREIGHT_URL, on the server (an admin token)
        ids = svc.purge(older_than=seconds, dry_run=dry_run)
    from freight.units import plural

    typer.echo(f"{'would delete' if dry_run else 'deleted'} {plural(len(ids), 'finished job')}")
