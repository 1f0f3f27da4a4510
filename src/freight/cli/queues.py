"""`freight queues [ls|set]` and `freight definitions [ls|register]`: the platform's named things.

A bare noun lists, as `noun ls` does (same options, same output); see freight/cli/__init__.py for
why the store is imported inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from freight.cli.common import open_service, read_spec_file, validate_located
from freight.cli.output import console, print_json, when
from freight.errors import UserError
from freight.units import format_bytes, parse_bytes, parse_cpus

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]

queues_app = typer.Typer(
    help="Named queues: priority, fair-share weight, pause and resume.", invoke_without_command=True
)
definitions_app = typer.Typer(help="Named, versioned job templates.", invoke_without_command=True)


@queues_app.callback()
def queues_default(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List queues with their settings and job counts (as `freight queues ls`)."""
    if ctx.invoked_subcommand is None:
        queues_ls(as_json)


@queues_app.command("ls")
def queues_ls(as_json: AsJson = False) -> None:
    """List queues with their settings, job counts and what their running jobs hold."""
    from rich.table import Table

    with open_service() as svc:
        rows = svc.queues()
    if as_json:
        print_json(rows)
        return
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
    name: Annotated[str, typer.Argument(help="The queue (created if new)")],
    weight: Annotated[
        float | None, typer.Option("--weight", help="Fair-share weight against other queues (default 1)")
    ] = None,
    priority: Annotated[
        int | None, typer.Option("--priority", help="Higher queues are served first (default 0)")
    ] = None,
    pause: Annotated[bool, typer.Option("--pause", help="Start none of its jobs until resumed")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Start its jobs again")] = False,
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
def definitions_default(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List job definitions, newest version first (as `freight definitions ls`)."""
    if ctx.invoked_subcommand is None:
        definitions_ls(as_json)


@definitions_app.command("ls")
def definitions_ls(as_json: AsJson = False) -> None:
    """List job definitions, newest version first."""
    import shlex

    from rich.table import Table

    with open_service() as svc:
        rows = svc.definitions()
    if as_json:
        print_json(rows)
        return
    table = Table(box=None, header_style="bold")
    for column in ("DEFINITION", "VERSION", "CREATED", "COMMAND", "DESCRIPTION"):
        table.add_column(column)
    for row in rows:
        spec = row["spec"]
        command = spec.get("shell") or shlex.join(spec.get("command") or [])
        if row.get("problem"):
            command = f"(unusable: {row['problem']})"
        created = row.get("created_at")
        table.add_row(
            row["name"],
            str(row["version"]),
            when(created) if isinstance(created, int | float) else "-",
            command or "-",
            row["description"] or "",
        )
    console.print(table)


@definitions_app.command("register")
def definitions_register(
    name: Annotated[str, typer.Argument(help="The definition's name")],
    file: Annotated[Path, typer.Argument(help="A job spec in YAML or JSON")],
    description: Annotated[
        str | None, typer.Option("--description", help="What the definition is for, one line")
    ] = None,
) -> None:
    """Register FILE (YAML/JSON job spec) as the next version of definition NAME."""
    template = read_spec_file(file)
    validate_located(file, template)  # a mistake names its line in FILE
    with open_service() as svc:
        version = svc.register_definition(name, template, description)
    typer.echo(f"{name}:{version}")


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


def queue_policy_flags(
    *,
    allow_root: bool | None,
    allow_inherit_env: bool | None,
    max_cpus: str | None,
    max_memory: str | None,
    default_cpus: str | None,
    default_memory: str | None,
) -> dict[str, Any]:
    """The policy a `queues set` command line asks for, parsed ("2G", "0.5"); 0 clears an amount."""
    policy: dict[str, Any] = {}
    for key, flag in (("allow_root", allow_root), ("allow_inherit_env", allow_inherit_env)):
        if flag is not None:
            policy[key] = flag
    amounts = (
        ("max_cpus", max_cpus, parse_cpus),
        ("default_cpus", default_cpus, parse_cpus),
        ("max_memory", max_memory, parse_bytes),
        ("default_memory", default_memory, parse_bytes),
    )
    for key, text, parse in amounts:
        if text is None:
            continue
        try:
            policy[key] = 0 if text.strip() in ("0", "0.0") else parse(text)
        except ValueError as exc:
            raise UserError(str(exc), where=f"--{key.replace('_', '-')}") from None
    return policy


def describe_policy(row: dict[str, Any]) -> str:
    """', root allowed, max 2 cpus / 2.0G, default 512.0M' for what is set, or ''."""
    parts = []
    if row.get("allow_root"):
        parts.append("root allowed")
    if row.get("allow_inherit_env"):
        parts.append("inherit_env allowed")
    for kind in ("max", "default"):
        cpus, memory = row.get(f"{kind}_cpus"), row.get(f"{kind}_memory")
        amounts = [f"{cpus:g} cpus" if cpus else "", format_bytes(memory) if memory else ""]
        if any(amounts):
            parts.append(f"{kind} " + " / ".join(a for a in amounts if a))
    return "".join(f", {p}" for p in parts)
