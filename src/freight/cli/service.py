"""`freight service deploy|ls|show|rollback|scale|rm`: long-running services (run by `freight up`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from freight.cli.output import console, print_json
from freight.errors import UserError

if TYPE_CHECKING:
    from freight.config import Settings
    from freight.jobs.service import JobService
    from freight.services.store import ServiceStore

service_app = typer.Typer(
    help="Long-running services: N healthy replicas of an image, rolled and routed.", no_args_is_help=True
)


def _store() -> tuple[JobService, ServiceStore, Settings]:
    from freight.config import load_settings
    from freight.jobs.service import JobService
    from freight.services.store import ServiceStore

    settings = load_settings()
    if settings.url:
        raise UserError(
            "freight service works on the server's own store",
            where="FREIGHT_URL",
            hint="run it where freight up runs",
        )
    svc = JobService.open(settings)
    return svc, ServiceStore(svc.engine), settings


@service_app.command("deploy")
def deploy(
    name: Annotated[str, typer.Argument(help="The service's name (a-z, 0-9, -)")],
    image: Annotated[str, typer.Option("--image", help="NAME[:TAG] or NAME@sha256:...")],
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 routed to healthy replicas")],
    replicas: Annotated[int, typer.Option("--replicas", help="How many to keep running")] = 1,
    health: Annotated[str, typer.Option("--health", help="Path answering 2xx when ready")] = "/healthz",
    health_timeout: Annotated[float, typer.Option("--health-timeout", help="Seconds before rollback")] = 30.0,
    memory: Annotated[str | None, typer.Option("--memory", help="Per replica, e.g. 128M")] = None,
    cpus: Annotated[str | None, typer.Option("--cpus", help="Per replica, e.g. 0.5")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE; repeatable")] = None,
    command: Annotated[
        list[str] | None, typer.Argument(help="Command after -- (default: the image's)")
    ] = None,
) -> None:
    """Deploy a new revision: replicas are replaced one by one (start new, wait healthy, stop old),
    and rolled back by themselves if a new one never gets healthy. Each replica gets $PORT."""
    from pydantic import ValidationError

    from freight.cli.common import parse_pairs
    from freight.jobs.spec import format_validation_error
    from freight.runtime import images
    from freight.services.spec import ServiceSpec

    svc, store, settings = _store()
    with svc:
        pinned = images.pin(image, settings, where="--image")
        defaults = ServiceSpec.model_fields["resources"].get_default(call_default_factory=True)
        resources = {
            **defaults.model_dump(),
            **{k: v for k, v in (("memory", memory), ("cpus", cpus)) if v is not None},
        }
        try:
            spec = ServiceSpec(
                image=pinned,
                command=command or images.default_command(pinned, settings),
                replicas=replicas,
                port=port,
                health=health,
                health_timeout=health_timeout,
                env=parse_pairs(env or [], "--env"),
                resources=resources,
            )
        except ValidationError as exc:
            raise format_validation_error(exc, "service") from None
        row = store.deploy(name, spec)
    typer.echo(
        f"freight: service {name} revision {row.revision} deploying {pinned} on 127.0.0.1:{port}", err=True
    )


@service_app.command("ls")
def ls(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Every service: revision, status, replicas, port, image."""
    from rich.table import Table

    svc, store, _ = _store()
    with svc:
        rows = store.all()
    if as_json:
        print_json([row.to_dict() for row in rows])
        return
    table = Table("NAME", "REVISION", "STATUS", "REPLICAS", "PORT", "IMAGE", box=None)
    for row in rows:
        table.add_row(
            row.name,
            str(row.revision),
            row.status,
            str(row.spec.replicas),
            str(row.spec.port),
            row.spec.image,
        )
    console.print(table)


@service_app.command("show")
def show(name: str) -> None:
    """The service's spec, status and replicas (their jobs), as JSON."""
    svc, store, _ = _store()
    with svc:
        row = store.get(name)
        jobs = svc.list_jobs(label={"freight.service": name}, limit=200)
    data = row.to_dict()
    data["replicas"] = [
        {"job": v.id, "state": v.state.value, "port": v.spec.labels.get("freight.port")}
        for v in jobs
        if not v.terminal
    ]
    print_json(data)


@service_app.command("rollback")
def rollback(name: str) -> None:
    """Back to the revision before the last deploy (rolled like a deploy)."""
    svc, store, _ = _store()
    with svc:
        row = store.rollback(name)
    typer.echo(f"freight: service {name} revision {row.revision} rolling back to {row.spec.image}", err=True)


@service_app.command("scale")
def scale(name: str, replicas: int) -> None:
    """Keep REPLICAS replicas of the current revision."""
    svc, store, _ = _store()
    with svc:
        store.scale(name, replicas)
    typer.echo(f"freight: service {name} scaling to {replicas}", err=True)


@service_app.command("rm")
def rm(name: str) -> None:
    """Stop every replica and forget the service."""
    svc, store, _ = _store()
    with svc:
        store.mark_removing(name)
    typer.echo(f"freight: service {name} is being removed", err=True)
