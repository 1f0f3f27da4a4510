"""`freight up`: the server, the scheduler and the web UI in one process."""

from __future__ import annotations

from typing import Annotated

import typer

from freight.errors import UserError


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
    from freight.server.registry_login import ensure_node_login
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

    local_registry = None

    def announce(url: str, token: str | None) -> None:
        if local_registry is not None:  # after the first start's admin token: this one is not it
            ensure_node_login(settings, local_registry.address)
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

    if registry:
        from freight.runtime.registry import start_registry

        # token auth tied to freight's tokens; this server is the realm
        realm_host = "127.0.0.1" if host in ("0.0.0.0", "::", "localhost") else host
        realm = f"http://{realm_host}:{port}/api/v1/registry/token"
        local_registry = start_registry(settings, registry_port, token_realm=realm)
        typer.echo(
            f"freight: image registry at {local_registry.address} (token auth: log in with "
            "`podman login -u freight ADDRESS` and an API token as the password)",
            err=True,
        )
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
