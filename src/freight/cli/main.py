"""Entry point: `freight ...`. Bad input prints one line and exits 2, never a traceback."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from freight.cli import jobs
from freight.cli.build import mount as mount_builds
from freight.cli.image import image_app
from freight.cli.output import err_console
from freight.cli.pipeline import app as pipeline_app
from freight.cli.pipeline_schedule import register as register_pipeline_schedules
from freight.cli.queues import definitions_app, queues_app
from freight.cli.secrets import secrets_app
from freight.cli.service import service_app
from freight.cli.tokens import tokens_app
from freight.errors import FreightError, UserError

app = typer.Typer(
    name="freight",
    help="Run any command as an isolated job with hard limits; ETL pipelines and monorepo builds on top.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # plain (click) help, for every command below: typer's rich help imports rich.markdown,
    # markdown-it and pygments, ~60 ms of every `--help` (a bare typer app's rich --help takes
    # longer here than freight's whole budget; see docs/benchmarks.md)
    rich_markup_mode=None,
)


@app.callback()
def _before_any_command() -> None:
    """Runs before every command, not for --help (which answers before it): what only a command
    needs, such as the logging setup (the logging module alone costs ~20 ms to import)."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="freight: %(message)s")


app.command("run", context_settings={"allow_interspersed_args": False})(jobs.run)
app.command("submit", context_settings={"allow_interspersed_args": False})(jobs.submit)
app.add_typer(jobs.jobs_app, name="jobs")

app.add_typer(queues_app, name="queues")
app.add_typer(definitions_app, name="definitions")


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
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Place jobs on the nodes of the Ray cluster at ADDRESS (host:6379; auto: RAY_ADDRESS)",
        ),
    ] = None,
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
    if ray:
        os.environ["FREIGHT_RAY_ADDRESS"] = ray
    settings = load_settings()
    if settings.ray_address:
        typer.echo(f"freight: placing jobs on the Ray cluster at {settings.ray_address}", err=True)

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
    from freight.services.runner import start_services

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
