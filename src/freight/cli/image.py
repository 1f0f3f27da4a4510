"""`freight image build|ls|inspect|rm`: images for container jobs, in the registry or this node."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from freight.cli.output import console, print_json

image_app = typer.Typer(help="Build, list, inspect and remove container images.", no_args_is_help=True)


@image_app.command("build")
def build(
    directory: Annotated[Path, typer.Argument(help="Folder holding a Containerfile (or Dockerfile)")],
    tag: Annotated[str, typer.Option("--tag", "-t", help="NAME or NAME:TAG")],
) -> None:
    """Build DIR's Containerfile with podman (runc), push it to the registry, print its digest.

    Without a registry (FREIGHT_REGISTRY, or `freight up --registry`), the image stays in this
    node's storage and its id is printed."""
    from freight.config import load_settings
    from freight.runtime import images

    pinned, digest = images.build(directory, tag, load_settings())
    typer.echo(f"freight: built {tag} as {pinned}", err=True)
    typer.echo(digest)


@image_app.command("ls")
def ls(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """The images of the registry (each tag and its digest), or of this node without one."""
    from rich.table import Table

    from freight.config import load_settings
    from freight.runtime import images

    rows = images.list_images(load_settings())
    if as_json:
        print_json([row.__dict__ for row in rows])
        return
    table = Table("NAME", "TAG", "DIGEST", "WHERE", box=None)
    for row in rows:
        table.add_row(row.name, row.tag, row.digest, row.where)
    console.print(table)


@image_app.command("inspect")
def inspect(image: Annotated[str, typer.Argument(help="NAME, NAME:TAG or NAME@sha256:...")]) -> None:
    """The image's digest and manifest (registry) or podman's description (this node), as JSON."""
    from freight.config import load_settings
    from freight.runtime import images

    print_json(images.inspect(image, load_settings()))


@image_app.command("rm")
def rm(image: Annotated[str, typer.Argument(help="NAME, NAME:TAG or NAME@sha256:...")]) -> None:
    """Delete the image from the registry and from this node's storage."""
    from freight.config import load_settings
    from freight.runtime import images

    typer.echo(f"removed {images.remove(image, load_settings())}")
