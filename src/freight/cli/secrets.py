"""`freight secrets set|ls|rm`: named secrets jobs get as env (`secrets: {ENV: name}` in a spec).

`set NAME` reads the value from stdin (never from the command line, where `ps` and shell history
would show it). Values are stored encrypted and never printed again: `ls` shows names and times.
Works on the local store, or through the server when FREIGHT_URL is set (an admin token).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any
from urllib.parse import quote

import typer

from freight.cli.common import remote_client
from freight.cli.output import console, print_json, when
from freight.config import load_settings
from freight.errors import UserError

secrets_app = typer.Typer(help="Named secrets for jobs (stored encrypted).", no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]
Name = Annotated[str, typer.Argument(help="The secret's name, e.g. warehouse-password")]


def _service() -> Any:
    from freight.jobs.service import JobService

    return JobService.open(load_settings())


def read_value() -> str:
    """The value on stdin, less one trailing newline (`echo pw | freight secrets set x`)."""
    if sys.stdin.isatty():
        raise UserError(
            "the value comes from stdin",
            where="stdin",
            hint="pipe it: `cat pw.txt | freight secrets set NAME`",
        )
    data = sys.stdin.buffer.read()
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise UserError("the value is not UTF-8 text", where="stdin") from None
    return text[:-1] if text.endswith("\n") else text


@secrets_app.command("set")
def set_secret(name: Name) -> None:
    """Store a secret (the value from stdin), replacing any earlier value of that name."""
    from freight.jobs.secrets import check_name

    check_name(name)
    value = read_value()
    remote = remote_client()
    if remote is not None:
        with remote:
            replaced = remote.request("PUT", f"/secrets/{quote(name, safe='')}", json={"value": value})[
                "replaced"
            ]
    else:
        with _service() as svc:
            replaced = svc.secrets.set(name, value)
    typer.echo(f"{'replaced' if replaced else 'stored'} secret {name}")


@secrets_app.command("ls")
def ls(as_json: AsJson = False) -> None:
    """List secrets: names and when they were set, never values."""
    remote = remote_client()
    if remote is not None:
        with remote:
            rows = remote.request("GET", "/secrets")
    else:
        with _service() as svc:
            rows = svc.secrets.names()
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("NAME", "CREATED", "UPDATED"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], when(row["created_at"]), when(row["updated_at"]))
    console.print(table)


@secrets_app.command("rm")
def rm(name: Name) -> None:
    """Delete a secret. Queued jobs that name it fail when they start."""
    remote = remote_client()
    if remote is not None:
        with remote:
            remote.request("DELETE", f"/secrets/{quote(name, safe='')}")
    else:
        with _service() as svc:
            svc.secrets.remove(name)
    typer.echo(f"removed secret {name}")
