"""Entry point: `freight ...`. Bad input prints one line and exits 2, never a traceback."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from freight.cli import jobs
from freight.cli.build import mount as mount_builds
from freight.cli.common import open_service, read_spec_file, validate_located
from freight.cli.image import image_app
from freight.cli.output import console, err_console, print_json
from freight.cli.pipeline import app as pipeline_app
from freight.cli.pipeline_schedule import register as register_pipeline_schedules
from freight.cli.queues import describe_policy, queue_policy_flags
from freight.cli.secrets import secrets_app
from freight.cli.service import service_app
from freight.cli.tokens import tokens_app
from freight.errors import FreightError, UserError
from freight.services.runner import start_services
from freight.units import format_bytes

app = typer.Typer(
    name="freight",
    help="Run any command as an isolated job with hard limits; ETL pipelines and monorepo builds on top.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("run", context_settings={"allow_interspersed_args": False})(jobs.run)
app.command("submit", context_settings={"allow_interspersed_args": False})(jobs.submit)
app.add_typer(jobs.jobs_app, name="jobs")

queues_app = typer.Typer(
    help="Named queues: priority, fair-share weight, pause and resume.", invoke_without_command=True
)
definitions_app = typer.Typer(help="Named, versioned job templates.", invoke_without_command=True)
app.add_typer(queues_app, name="queues")
app.add_typer(definitions_app, name="definitions")


@queues_app.callback()
def queues_ls(ctx: typer.Context, as_json: jobs.AsJson = False) -> None:
    """List queues with their settings and job counts."""
    if ctx.invoked_subcommand is not None:
        return
    with open_service() as svc:
        rows = svc.queues()
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    columns = ("QUEUE", "PRIORITY", "WEIGHT", "PAUSED", "QUEUED", "RUNNING", "CPUS", "MEMORY", "SUCCEEDED")
    for column in (*columns, "FAILED", "POLICY"):
        table.add_column(column)
    for q in rows:
        counts = q["jobs"]
        failed = sum(counts.get(s, 0) for s in ("failed", "oom_killed", "timed_out", "lost"))
        table.add_row(
            q["name"],
            str(q["priority"]),
            f"{q['weight']:g}",
            "yes" if q["paused"] else "no",
            str(counts.get("queued", 0) + counts.get("retrying", 0)),
            str(counts.get("running", 0) + counts.get("starting", 0)),
            f"{q['in_use']['cpus']:g}",
            format_bytes(q["in_use"]["memory"]),
            str(counts.get("succeeded", 0)),
            str(failed),
            describe_policy(q).removeprefix(", ") or "-",
        )
    console.print(table)


@queues_app.command("set")
def queues_set(
    name: str,
    weight: Annotated[float | None, typer.Option("--weight")] = None,
    priority: Annotated[int | None, typer.Option("--priority")] = None,
    pause: Annotated[bool, typer.Option("--pause")] = False,
    resume: Annotated[bool, typer.Option("--resume")] = False,
    allow_root: Annotated[
        bool | None, typer.Option("--allow-root/--no-allow-root", help="Jobs may ask for `user: root`")
    ] = None,
    allow_inherit_env: Annotated[
        bool | None,
        typer.Option(
            "--allow-inherit-env/--no-allow-inherit-env", help="Jobs may ask for `inherit_env: true`"
        ),
    ] = None,
    max_cpus: Annotated[
        str | None, typer.Option("--max-cpus", help="Most cpus one job may ask for; 0 clears")
    ] = None,
    max_memory: Annotated[
        str | None, typer.Option("--max-memory", help="Most memory one job may ask for (2G); 0 clears")
    ] = None,
    default_cpus: Annotated[
        str | None, typer.Option("--default-cpus", help="Cpus of a job that does not say; 0 clears")
    ] = None,
    default_memory: Annotated[
        str | None,
        typer.Option("--default-memory", help="Memory of a job that does not say (512M); 0 clears"),
    ] = None,
) -> None:
    """Create or change a queue: weight, priority, pause, and its policy (admin)."""
    if pause and resume:
        raise UserError("give --pause or --resume, not both")
    policy = queue_policy_flags(
        allow_root=allow_root,
        allow_inherit_env=allow_inherit_env,
        max_cpus=max_cpus,
        max_memory=max_memory,
        default_cpus=default_cpus,
        default_memory=default_memory,
    )
    with open_service() as svc:
        row = svc.set_queue(
            name,
            weight=weight,
            priority=priority,
            paused=True if pause else False if resume else None,
            policy=policy,
        )
    status = "paused" if row["paused"] else "active"
    typer.echo(
        f"{row['name']}: priority {row['priority']}, weight {row['weight']:g}, {status}{describe_policy(row)}"
    )


@definitions_app.callback()
def definitions_ls(ctx: typer.Context, as_json: jobs.AsJson = False) -> None:
    """List job definitions (newest version first)."""
    if ctx.invoked_subcommand is not None:
        return
    with open_service() as svc:
        rows = svc.definitions()
    if as_json:
        print_json(rows)
        return
    for row in rows:
        cmd = row["spec"].get("command") or row["spec"].get("shell")
        if row.get("problem"):
            cmd = f"(unusable: {row['problem']})"
        typer.echo(f"{row['name']}:{row['version']}  {row['description'] or ''}  {cmd}")


@definitions_app.command("rm")
def definitions_rm(
    ref: Annotated[str, typer.Argument(metavar="NAME[:VERSION]", help="One version, or every version")],
) -> None:
    """Delete a definition (every version, or the one NAME:VERSION names). Jobs already submitted from
    it keep their own spec."""
    name, _, version = ref.partition(":")
    if not name or (version and not version.isdigit()):
        raise UserError(
            f"bad definition reference {ref!r}", where="NAME[:VERSION]", hint="use NAME or NAME:VERSION"
        )
    with open_service() as svc:
        deleted = svc.delete_definition(name, int(version) if version else None)
    typer.echo(f"deleted {deleted} version{'s' if deleted != 1 else ''} of {name}")


@definitions_app.command("register")
def definitions_register(
    name: str,
    file: Path,
    description: Annotated[str | None, typer.Option("--description")] = None,
) -> None:
    """Register FILE (YAML/JSON job spec) as the next version of definition NAME."""
    template = read_spec_file(file)
    validate_located(file, template)  # a mistake names its line in FILE
    with open_service() as svc:
        version = svc.register_definition(name, template, description)
    typer.echo(f"{name}:{version}")


@app.command("up")
def up(
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port for the API and the web UI")] = 8321,
    cpus: Annotated[str | None, typer.Option("--cpus", help="Capacity to offer (default: detected)")] = None,
    memory: Annotated[
        str | None, typer.Option("--memory", help="Capacity to offer (default: detected)")
    ] = None,
    log_format: Annotated[str, typer.Option("--log-format", help="text or json")] = "text",
    gateway_port: Annotated[
        int | None, typer.Option("--gateway-port", help="Also serve build releases on this port")
    ] = None,
    registry: Annotated[
        bool, typer.Option("--registry", help="Also run a local image registry on 127.0.0.1")
    ] = False,
    registry_port: Annotated[int, typer.Option("--registry-port", help="Its port (0: a free one)")] = 5000,
) -> None:
    """Serve the API and the web UI and run the scheduler, in one process.

    Ctrl-C stops it; running jobs keep running and are re-attached on the next start."""
    import os

    from freight.config import load_settings
    from freight.server.serve import serve

    if log_format not in ("text", "json"):
        raise UserError(f"unknown log format {log_format!r}", where="--log-format", hint="use text or json")
    if cpus:
        os.environ["FREIGHT_CPUS"] = cpus
    if memory:
        os.environ["FREIGHT_MEMORY"] = memory
    settings = load_settings()

    def announce(url: str, token: str | None) -> None:
        # plain writes: a wrapped token line could not be copied
        typer.echo(f"freight: serving {url} (API at {url}/api/v1, home {settings.home})", err=True)
        if token:
            typer.echo(
                "freight: first start: an admin token was created. It is shown only this once; keep it:\n"
                f"\n    {token}\n\n"
                f"  sign in to {url} with it, or:\n"
                f"  export FREIGHT_URL={url} FREIGHT_TOKEN={token}\n",
                err=True,
            )

    local_registry = None
    if registry:
        from freight.runtime.registry import start_registry

        local_registry = start_registry(settings, registry_port)
        typer.echo(f"freight: image registry at {local_registry.address}", err=True)
    services = start_services(settings)
    try:
        serve(
            settings,
            host=host,
            port=port,
            log_format=log_format,
            gateway_port=gateway_port,
            announce=announce,
        )
    finally:
        services.set()
        if local_registry is not None:
            local_registry.stop()


# the workloads' commands, listed after the platform's own
app.add_typer(tokens_app, name="tokens")
app.add_typer(secrets_app, name="secrets")
app.add_typer(image_app, name="image")
app.add_typer(service_app, name="service")
register_pipeline_schedules(pipeline_app)
app.add_typer(pipeline_app, name="pipeline")
mount_builds(app)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="freight: %(message)s")
    try:
        _run_app()
    except UserError as exc:
        # escaped: messages name TOML sections such as [tasks.lint], which rich would eat as markup
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except FreightError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except Exception as exc:
        if not _store_unavailable(exc):
            raise
        orig = getattr(exc, "orig", None)
        first = str(orig).strip().splitlines()[0] if orig is not None else "unavailable"
        err_console.print(
            f"[red]error:[/] the store is busy or unreachable ({escape(first)}); nothing was changed, "
            "try again shortly",
            highlight=False,
        )
        sys.exit(1)


def _store_unavailable(exc: Exception) -> bool:
    """The store is busy (SQLite locked past its busy timeout) or unreachable. Checked without
    importing SQLAlchemy: a command that never opened the store has not loaded it."""
    errors = sys.modules.get("sqlalchemy.exc")
    if errors is None or not isinstance(exc, errors.OperationalError):
        return False
    from freight.db.engine import store_unavailable

    return store_unavailable(exc)


def _run_app() -> None:
    """The app, with a mistyped command line (an unknown option, a bad value for one) said in one
    line like any other bad input, instead of click's framed usage box."""
    # typer vendors click; these are the classes it raises (typer re-exports only a few of them)
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    command = typer.main.get_command(app)
    try:
        code = command.main(standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(2)
    except UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        err_console.print(f"[red]error:[/] {escape(exc.format_message())}{where}", highlight=False)
        sys.exit(2)
    except ClickException as exc:
        err_console.print(f"[red]error:[/] {escape(exc.format_message())}", highlight=False)
        sys.exit(exc.exit_code)
    except typer.Abort:  # end of input at a prompt
        err_console.print("freight: aborted")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
