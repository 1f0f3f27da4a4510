"""`freight nodes`: the nodes jobs are placed on (this machine embedded; a Ray cluster's nodes with
`freight up --ray`), from the local store's scheduler or from the server at FREIGHT_URL."""

from __future__ import annotations

from typing import Annotated, Any

import typer


def nodes(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON (id, address, cpus, ...)")] = False,
) -> None:
    """List the nodes jobs run on: id, address, cpus, memory, in use, labels, state."""
    from freight.cli.common import remote_client
    from freight.cli.output import print_json

    client = remote_client()
    if client is not None:
        rows: list[dict[str, Any]] = list(client.request("GET", "/nodes")["nodes"])
    else:
        from freight.jobs.service import JobService

        with JobService.open() as svc:
            rows = svc.nodes()
    if json_out:
        print_json(rows)
        return
    typer.echo(nodes_text(rows), nl=False)


def nodes_text(rows: list[dict[str, Any]]) -> str:
    """One aligned line per node, with a header."""
    from freight.units import format_bytes

    head = ("ID", "ADDRESS", "CPUS", "MEMORY", "IN USE", "RUNNING", "LABELS", "STATE")
    lines = [head]
    for row in rows:
        in_use = f"{row['used_cpus']:g} cpus, {format_bytes(int(row['used_memory']))}"
        labels = ",".join(f"{k}={v}" for k, v in sorted(row["labels"].items())) or "-"
        lines.append(
            (
                str(row["name"]),
                str(row["address"] or "-"),
                f"{row['cpus']:g}",
                format_bytes(int(row["memory"])),
                in_use,
                str(row["running"]),
                labels,
                str(row["state"]),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n" for line in lines
    )
