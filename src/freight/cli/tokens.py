"""`freight tokens create|ls|revoke`: API tokens for the server, the remote CLI and the web UI.

Works on the local store, or through the server when FREIGHT_URL is set (that needs an admin token).
`create` prints the token alone on stdout, so `TOKEN=$(freight tokens create --name ci)` works.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from freight.cli.common import remote_client
from freight.cli.output import console, err_console, print_json, when
from freight.config import load_settings

tokens_app = typer.Typer(
    help="API tokens for the server, the remote CLI and the web UI.", no_args_is_help=True
)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _engine() -> Any:
    from freight.jobs.service import JobService

    return JobService.open(load_settings())


@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", "-n", help="Who or what uses it, e.g. ci or alice")],
    queue: Annotated[
        list[str] | None, typer.Option("--queue", "-q", help="Limit it to this queue; repeatable")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="May manage tokens, queues and definitions")] = False,
    as_json: AsJson = False,
) -> None:
    """Create a token. It is shown once: store it now."""
    remote = remote_client()
    if remote is not None:
        with remote:
            data = remote.request(
                "POST", "/tokens", json={"name": name, "queues": queue or None, "admin": admin}
            )
    else:
        from freight.server.tokens import create_token

        with _engine() as svc:
            info, text = create_token(svc.engine, name, queues=queue or None, admin=admin)
        data = info.to_dict() | {"token": text}
    if as_json:
        print_json(data)
        return
    typer.echo(data["token"])
    err_console.print(
        f"freight: created token {data['id']} ({data['name']}, {_scope(data)}); it is shown only now",
        highlight=False,
    )


@tokens_app.command("ls")
def ls(
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked tokens")] = False,
    as_json: AsJson = False,
) -> None:
    """List tokens (never their secrets)."""
    remote = remote_client()
    if remote is not None:
        with remote:
            rows = remote.request("GET", "/tokens", params={"all": str(include_revoked).lower()})
    else:
        from freight.server.tokens import list_tokens

        with _engine() as svc:
            rows = [t.to_dict() for t in list_tokens(svc.engine, include_revoked=include_revoked)]
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("ID", "NAME", "SCOPE", "CREATED", "LAST USED", *(["REVOKED"] if include_revoked else [])):
        table.add_column(column)
    for row in rows:
        cells = [row["id"], row["name"], _scope(row), when(row["created_at"]), when(row["last_used_at"])]
        if include_revoked:
            cells.append(when(row["revoked_at"]))
        table.add_row(*cells)
    console.print(table)


@tokens_app.command("revoke")
def revoke(ref: Annotated[str, typer.Argument(help="The token's id (or its name, if unique)")]) -> None:
    """Revoke a token: it stops working at once."""
    remote = remote_client()
    if remote is not None:
        from urllib.parse import quote

        with remote:
            row = remote.request("DELETE", f"/tokens/{quote(ref, safe='')}")
    else:
        from freight.server.tokens import revoke_token

        with _engine() as svc:
            row = revoke_token(svc.engine, ref).to_dict()
    typer.echo(f"revoked {row['id']} ({row['name']})")


def _scope(row: dict[str, Any]) -> str:
    if row["admin"]:
        return "admin"
    if row["queues"] is None:
        return "all queues"
    return "queues " + ", ".join(row["queues"])
