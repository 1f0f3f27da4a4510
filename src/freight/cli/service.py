"""`freight service deploy|ls|show|rollback|scale|rm`: long-running services (run by `freight up`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from freight.cli.output import console, print_json

if TYPE_CHECKING:
    from freight.services.client import ServiceClient

service_app = typer.Typer(
    help="Long-running services: N healthy replicas of an image, rolled and routed.", no_args_is_help=True
)


def _services() -> ServiceClient:
    """The server's own store, or the server at FREIGHT_URL (with FREIGHT_TOKEN's queues)."""
    from freight.config import load_settings
    from freight.services.client import open_services

    return open_services(load_settings())


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
    queue: Annotated[str, typer.Option("--queue", "-q", help="The replicas' queue")] = "default",
    host: Annotated[
        list[str] | None, typer.Option("--host", help="The gateway routes this host name here; repeatable")
    ] = None,
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="The gateway routes this path prefix here (stripped)")
    ] = None,
    command: Annotated[
        list[str] | None, typer.Argument(help="Command after -- (default: the image's)")
    ] = None,
) -> None:
    """Deploy a new revision: replicas are replaced one by one (start new, wait healthy, stop old),
    and rolled back by themselves if a new one never gets healthy. Each replica gets $PORT."""
    from freight.cli.common import parse_pairs

    body = {
        "name": name,
        "image": image,
        "port": port,
        "command": command or None,
        "replicas": replicas,
        "health": health,
        "health_timeout": health_timeout,
        "env": parse_pairs(env or [], "--env"),
        "memory": memory,
        "cpus": cpus,
        "queue": queue,
        "hosts": host or [],
        "prefix": prefix,
    }
    with _services() as services:
        row = services.deploy(body)
    pinned = row["spec"]["image"]
    typer.echo(
        f"freight: service {name} revision {row['revision']} deploying {pinned} on 127.0.0.1:{port}",
        err=True,
    )


@service_app.command("ls")
def ls(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Every service: revision, status, replicas, port, queue, image."""
    from rich.table import Table

    with _services() as services:
        rows = services.all()
    if as_json:
        print_json(rows)
        return
    table = Table("NAME", "REVISION", "STATUS", "REPLICAS", "PORT", "QUEUE", "IMAGE", box=None)
    for row in rows:
        spec = row["spec"]
        table.add_row(
            row["name"],
            str(row["revision"]),
            row["status"],
            str(spec["replicas"]),
            str(spec["port"]),
            spec.get("queue", "default"),
            spec["image"],
        )
    console.print(table)


@service_app.command("show")
def show(name: str) -> None:
    """The service's spec, status and replicas (their jobs), as JSON."""
    with _services() as services:
        print_json(services.show(name))


@service_app.command("rollback")
def rollback(name: str) -> None:
    """Back to the revision before the last deploy (rolled like a deploy)."""
    with _services() as services:
        row = services.rollback(name)
    typer.echo(
        f"freight: service {name} revision {row['revision']} rolling back to {row['spec']['image']}",
        err=True,
    )


@service_app.command("scale")
def scale(name: str, replicas: int) -> None:
    """Keep REPLICAS replicas of the current revision."""
    with _services() as services:
        services.scale(name, replicas)
    typer.echo(f"freight: service {name} scaling to {replicas}", err=True)


@service_app.command("rm")
def rm(name: str) -> None:
    """Stop every replica and forget the service."""
    with _services() as services:
        services.remove(name)
    typer.echo(f"freight: service {name} is being removed", err=True)
