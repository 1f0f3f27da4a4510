"""`freight run`, `freight submit` and `freight jobs ...`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from freight.cli.common import Service, open_service, read_spec_file, spec_from_flags, validate_located
from freight.cli.output import (
    console,
    ending_sentence,
    err_console,
    exit_code_for,
    jobs_table,
    print_json,
    show_job,
)
from freight.errors import UserError
from freight.jobs.client import JobView

jobs_app = typer.Typer(help="List, inspect, follow, cancel and retry jobs.", no_args_is_help=True)

Cpus = Annotated[str | None, typer.Option("--cpus", help="CPU limit, e.g. 0.5 or 2")]
Memory = Annotated[str | None, typer.Option("--memory", "-m", help="Hard memory limit, e.g. 512M, 2G")]
Timeout = Annotated[str | None, typer.Option("--timeout", help="Attempt timeout, e.g. 30s, 10m")]
Retries = Annotated[int | None, typer.Option("--retries", help="Extra attempts after a failure")]
RetryOn = Annotated[
    list[str] | None,
    typer.Option("--retry-on", help="oom, timeout, lost, failed or an exit code; repeatable"),
]
Queue = Annotated[str | None, typer.Option("--queue", "-q")]
Priority = Annotated[int | None, typer.Option("--priority", "-p")]
Name = Annotated[str | None, typer.Option("--name", "-n")]
Env = Annotated[list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE; repeatable")]
Label = Annotated[list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE; repeatable")]
After = Annotated[list[str] | None, typer.Option("--after", help="JOB[:after_ok|after_any]; repeatable")]
Key = Annotated[str | None, typer.Option("--idempotency-key", help="Same key, same job: no duplicate")]
Shell = Annotated[bool, typer.Option("--shell", help="Run the command through /bin/sh -c")]
Cwd = Annotated[str | None, typer.Option("--cwd")]
File = Annotated[Path | None, typer.Option("--file", "-f", help="A job spec in YAML or JSON")]
Definition = Annotated[str | None, typer.Option("--definition", "-d", help="NAME or NAME:VERSION")]
Command = Annotated[list[str] | None, typer.Argument(help="The command, after --")]
AsJson = Annotated[bool, typer.Option("--json")]


def _submit(
    svc: Service, *, command: list[str] | None, file: Path | None, definition: str | None, **flags: Any
) -> JobView:
    """Queue the job that `run`'s or `submit`'s parameters describe, passed by name: each command
    declares its flags once, in its signature, and hands them all here (`locals()`)."""
    base = read_spec_file(file) if file else None
    spec = spec_from_flags(command or [], base=base, **flags)
    if definition is None and "command" not in spec and "shell" not in spec:
        raise UserError("nothing to run", hint="give a command after --, a --file, or a --definition")
    if file is not None and definition is None:
        return svc.submit(validate_located(file, spec))
    return svc.submit(spec, definition=definition)


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
) -> None:
    """Run a command as an isolated job, stream its output, and exit with its exit code."""
    flags = {**locals(), "cwd": cwd or str(Path.cwd())}
    with open_service() as svc:
        with svc.running():
            view = _submit(svc, **flags)
            err_console.print(f"[dim]freight: job {view.id} queued[/]")
            try:
                view = _stream_until_done(svc, view.id)
            except KeyboardInterrupt:
                svc.cancel(view.id)
                view = svc.wait([view.id], timeout=30)[0]
        style = "green" if view.exit_code == 0 and view.state.value == "succeeded" else "red"
        err_console.print(f"[{style}]freight: {ending_sentence(view)}[/]")
        raise typer.Exit(exit_code_for(view))


def _stream_until_done(svc: Service, job_id: str) -> JobView:
    """Copy each attempt's output to stdout as it is written, until the job ends."""
    shown = 0
    while True:
        view = svc.get(job_id)
        if view.attempts > shown:
            shown += 1
            for chunk in svc.logs(job_id, attempt=shown, follow=True):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
            continue
        if view.terminal:
            return view
        svc.wait([job_id], timeout=0.2)


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
    as_json: AsJson = False,
) -> None:
    """Queue a job and print its id. A scheduler (`freight up`) runs it."""
    flags = {k: v for k, v in locals().items() if k != "as_json"}
    with open_service() as svc:
        view = _submit(svc, **flags)
        if as_json:
            print_json(view.to_dict())
        else:
            typer.echo(view.id)
        if svc.scheduler_holder() is None:
            err_console.print("[yellow]freight: no scheduler is running; start one with `freight up`[/]")


@jobs_app.command("ls")
def ls(
    state: Annotated[str | None, typer.Option("--state", "-s")] = None,
    queue: Queue = None,
    label: Label = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    as_json: AsJson = False,
) -> None:
    """List jobs, newest first."""
    from freight.cli.common import parse_pairs

    with open_service() as svc:
        views = svc.list_jobs(
            state=state, queue=queue, label=parse_pairs(label, "--label") or None, limit=limit
        )
    if as_json:
        print_json([v.to_dict() for v in views])
    else:
        console.print(jobs_table(views))


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
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    attempt: Annotated[int | None, typer.Option("--attempt")] = None,
) -> None:
    """Print a job's output (stdout and stderr); -f follows it until the job ends."""
    with open_service() as svc:
        for chunk in svc.logs(job_id, attempt=attempt, follow=follow):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()


@jobs_app.command("cancel")
def cancel(job_ids: list[str]) -> None:
    """Cancel jobs: queued ones never start; running ones get SIGTERM, then SIGKILL after their grace."""
    with open_service() as svc:
        for job_id in job_ids:
            view = svc.cancel(job_id)
            typer.echo(f"{view.id} {view.state.value if view.terminal else 'cancelling'}")


@jobs_app.command("retry")
def retry(job_ids: list[str]) -> None:
    """Queue finished jobs again (a new attempt of the same job)."""
    with open_service() as svc:
        for job_id in job_ids:
            typer.echo(f"{svc.retry(job_id).id} queued")


@jobs_app.command("events")
def events(job_id: Annotated[str | None, typer.Argument()] = None, limit: int = 50) -> None:
    """The audit trail of state transitions."""
    from freight.cli.output import when

    with open_service() as svc:
        rows = svc.events(job_id, limit)
    for row in reversed(rows):
        moved = f"{row['from_state'] or '-':>10} -> {row['to_state']:<10}"
        typer.echo(f"{when(row['at'])}  {row['job_id']}  {moved} {row['detail'] or ''}")


@jobs_app.command("gc")
def gc(
    older_than: Annotated[str, typer.Option("--older-than", help="e.g. 30d, 12h")] = "30d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go")] = False,
) -> None:
    """Delete finished jobs (rows, attempts, events, logs) that ended longer ago than --older-than."""
    from freight.jobs.service import JobService
    from freight.units import parse_duration

    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise UserError(str(exc), where="--older-than") from None
    with open_service() as svc:
        if not isinstance(svc, JobService):
            raise UserError(
                "gc works on the local store", hint="run it where the store is, without FREIGHT_URL"
            )
        ids = svc.purge(older_than=seconds, dry_run=dry_run)
    typer.echo(f"{'would delete' if dry_run else 'deleted'} {len(ids)} finished job(s)")
