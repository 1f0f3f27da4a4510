"""`freight pipeline validate|graph|run|runs|show|rerun|follow|cancel|schema` (mounted by the CLI)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from freight.config import load_settings
from freight.units import format_bytes, format_duration

if TYPE_CHECKING:
    from freight.pipelines.remote import RemotePipelines
    from freight.pipelines.store import Run, RunStore

app = typer.Typer(help="Declarative ETL pipelines whose steps run as isolated jobs.", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="The pipeline file (YAML)")]
Config = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="freight.toml with [connections] (default: $FREIGHT_CONFIG)"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]

_MARK = {
    "succeeded": "ok  ",
    "reused": "kept",
    "failed": "FAIL",
    "upstream_failed": "skip",
    "cancelled": "cncl",
    "running": " .. ",
}


@app.command()
def validate(file: FileArg) -> None:
    """Check a pipeline file: fields, step types, inputs, files and cycles."""
    from freight.pipelines.loader import load_pipeline

    pipeline = load_pipeline(file)
    typer.echo(f"{file}: pipeline {pipeline.name} is valid ({len(pipeline.spec.steps)} steps)")


@app.command()
def graph(
    file: FileArg,
    fmt: Annotated[str, typer.Option("--format", help="text, dot or mermaid")] = "text",
) -> None:
    """Draw the step graph."""
    from freight.errors import UserError
    from freight.pipelines.loader import load_pipeline

    pipeline = load_pipeline(file)
    dag = pipeline.dag
    types: dict[str, str] = {s.name: str(s.type) for s in pipeline.spec.steps}
    if fmt == "text":
        from freight.pipelines.fusion import fused_pairs

        for extract, load in fused_pairs(pipeline.spec).items():  # each pair runs as one job
            types[extract] += f", one job with {load}"
            types[load] += f", one job with {extract}"
        typer.echo(dag.render(types))
    elif fmt == "dot":
        lines = [f'digraph "{pipeline.name}" {{', "  rankdir=LR;"]
        lines += [f'  "{n}" [label="{n}\\n{types[n]}"];' for n in dag.names]
        lines += [f'  "{u}" -> "{n}";' for n in dag.names for u in dag.upstream[n]]
        typer.echo("\n".join([*lines, "}"]))
    elif fmt == "mermaid":
        # ids get a prefix: a step named `end` (a Mermaid keyword) would break the chart
        lines = ["flowchart LR"] + [f'  s_{n}["{n}<br/>{types[n]}"]' for n in dag.names]
        lines += [f"  s_{u} --> s_{n}" for n in dag.names for u in dag.upstream[n]]
        typer.echo("\n".join(lines))
    else:
        raise UserError(f"unknown format {fmt!r}", where="--format", hint="use text, dot or mermaid")


@app.command()
def schema() -> None:
    """Print the JSON Schema of pipeline files (for editor completion)."""
    from freight.pipelines.spec import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command()
def run(file: FileArg, config: Config = None, as_json: AsJson = False) -> None:
    """Run a pipeline now: every step becomes a job; waits for the run and prints each step."""
    from freight.pipelines.loader import load_pipeline

    pipeline = load_pipeline(file)
    server_config = _config_for_server(config)
    if server_config is not None and server_config.is_file():  # the line a server could not name
        _check_connections(pipeline, server_config)
    if _on_server(as_json, lambda s: s.start(pipeline, spec_path=file, config_path=server_config)):
        return
    with _runner(config, quiet=as_json) as runner:
        result = runner.run(pipeline, spec_path=str(file.resolve()))
    _finish(result, as_json, then=lambda: _say_where_data_landed(pipeline, result, config))


def _say_where_data_landed(pipeline: Any, result: Any, config: Path | None) -> None:
    """The run's last word, on stderr (stdout is the run as `pipeline show` prints it): the warehouse
    tables its load steps wrote, a user's next question."""
    from freight.connectors.connections import default_config_path, load_connections
    from freight.errors import UserError

    loaded = {s.step for s in result.steps if s.state in ("succeeded", "reused")}
    path = config if config is not None else default_config_path()
    try:
        connections = load_connections(path if path.is_file() else None, home=load_settings().home)
        places: dict[str, list[str]] = {}
        for step in pipeline.spec.steps:
            if step.type == "load" and step.name in loaded:
                where = connections.warehouse(step.warehouse).describe()
                places.setdefault(where, []).append(step.table)
    except UserError:  # the run said what was wrong with the connections already
        return
    for where, tables in places.items():
        typer.echo(f"data landed in {where}: {', '.join(tables)}", err=True)


@app.command()
def rerun(
    run_id: Annotated[str, typer.Argument(help="The run to run again")],
    from_failed: Annotated[
        bool, typer.Option("--from-failed/--all", help="Rerun only failed steps and what depends on them")
    ] = True,
    config: Config = None,
    as_json: AsJson = False,
) -> None:
    """Run a finished run again: by default only what failed and what depends on it."""
    server_config = _config_for_server(config)
    if _on_server(as_json, lambda s: s.rerun(run_id, from_failed=from_failed, config_path=server_config)):
        return
    with _runner(config, quiet=as_json) as runner:
        result = runner.rerun(run_id, from_failed=from_failed)
    _finish(result, as_json)


@app.command()
def follow(
    run_id: Annotated[str, typer.Argument(help="A run whose runner went away")],
    config: Config = None,
    as_json: AsJson = False,
) -> None:
    """Attach to a run (e.g. after its runner process died): wait for its step jobs and record them.
    With FREIGHT_URL, the server follows its runs itself: this waits for the run to end."""
    if _on_server(as_json, lambda s: s.get(run_id)):
        return
    with _runner(config, quiet=as_json) as runner:
        result = runner.follow(run_id)
    _finish(result, as_json)


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(help="The run to cancel")],
    config: Config = None,
    as_json: AsJson = False,
) -> None:
    """Cancel a run's step jobs that have not finished, and record how the run ended."""
    if _on_server(as_json, lambda s: s.cancel(run_id)):
        return
    with _runner(config, quiet=as_json) as runner:
        runner.cancel(run_id)
        result = runner.follow(run_id)
    _finish(result, as_json)


@app.command()
def runs(
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p", help="Only this pipeline")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="The newest this many runs")] = 20,
    as_json: AsJson = False,
) -> None:
    """List recent runs."""
    with _store() as store:
        found = store.list(pipeline, limit)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in found], indent=2))
        return
    from rich.table import Table

    from freight.cli.output import console, when

    table = Table(box=None, header_style="bold")
    for column in ("RUN", "PIPELINE", "STATE", "STARTED", "TOOK", "INTERVAL", "RERUN OF"):
        table.add_column(column, no_wrap=True)
    for r in found:
        took = format_duration(r.ended_at - r.created_at) if r.ended_at else "-"
        interval = r.interval_start_iso()
        scheduled = f"{interval} ({r.trigger})" if interval else ""
        table.add_row(r.id, r.pipeline, r.state, when(r.created_at), took, scheduled, r.rerun_of or "")
    console.print(table)


@app.command()
def show(run_id: Annotated[str, typer.Argument(help="A run id")], as_json: AsJson = False) -> None:
    """One run: its steps, their jobs, rows, times and QA results."""
    with _store() as store:
        found = store.get(run_id)
    if as_json:
        typer.echo(json.dumps(found.to_dict(), indent=2, default=str))
        return
    _print_run(found)


@contextlib.contextmanager
def remote_pipelines() -> Iterator[RemotePipelines | None]:
    """The server at FREIGHT_URL (with FREIGHT_TOKEN), when it is set; else None (embedded)."""
    settings = load_settings()
    if not settings.url:
        yield None
        return
    from freight.jobs.remote import RemoteJobClient
    from freight.pipelines.remote import RemotePipelines

    with RemotePipelines(RemoteJobClient(settings.url, settings.token)) as server:
        yield server


def _on_server(as_json: bool, begin: Callable[[RemotePipelines], Run]) -> bool:
    """With FREIGHT_URL: start (or find) the run on the server, wait for it to end printing each step
    as embedded mode does, print it and exit as embedded mode does. Without, False."""
    with remote_pipelines() as server:
        if server is None:
            return False
        _finish(server.wait(begin(server), _on_event(as_json)), as_json)
    return True


@contextlib.contextmanager
def _store() -> Iterator[RemotePipelines | RunStore]:
    """Where runs are read from: the server, or the local store."""
    with remote_pipelines() as server:
        if server is not None:
            yield server
            return
    from freight.pipelines.store import RunStore

    store = RunStore.open(load_settings().database_url)
    try:
        yield store
    finally:
        store.close()


def _config_for_server(config: Path | None) -> Path | None:
    """The connections file embedded mode would read, for the server to read: --config, else
    $FREIGHT_CONFIG or ./freight.toml when there is one (without, the server uses its own)."""
    from freight.connectors.connections import default_config_path

    if config is not None:
        return config.resolve()
    default = default_config_path()
    return default if default.is_file() else None


def _check_connections(pipeline: Any, config: Path) -> None:
    from freight.connectors.connections import load_connections
    from freight.pipelines.preflight import check_connections

    check_connections(pipeline, load_connections(config, home=load_settings().home))


def _named_config_exists(config: Path | None) -> None:
    """Only the implicit ./freight.toml may be missing: a file named by --config or $FREIGHT_CONFIG
    that is not there would have steps load into the default DuckDB warehouse instead. (A server
    checks the path the remote CLI sends it.)"""
    import os

    from freight.errors import UserError

    named, where = (
        (config, "--config") if config is not None else (os.environ.get("FREIGHT_CONFIG"), "FREIGHT_CONFIG")
    )
    if named and not Path(named).expanduser().is_file():
        raise UserError(
            f"no connections file {str(named)!r}", where=where, hint="give the path of your freight.toml"
        )


def _on_event(quiet: bool) -> Callable[[str, Any], None] | None:
    return None if quiet else _print_event


@contextlib.contextmanager
def _runner(config: Path | None, *, quiet: bool) -> Iterator[Any]:
    from freight.jobs.service import JobService
    from freight.pipelines.runner import PipelineRunner
    from freight.pipelines.store import RunStore

    _named_config_exists(config)
    settings = load_settings()
    svc = JobService.open(settings)
    store = RunStore.open(settings.database_url)
    try:
        with svc.running():
            yield PipelineRunner(
                svc,
                store,
                settings,
                config_path=config.resolve() if config else None,
                on_event=_on_event(quiet),
            )
    finally:
        store.close()
        svc.close()


def _print_event(event: str, step: Any) -> None:
    if event == "running":
        typer.echo(f"  {_MARK['running']} {step.step}", err=True)
        return
    typer.echo(f"  {_MARK.get(step.state, step.state)} {_step_line(step)}", err=True)


def _step_line(step: Any) -> str:
    rows = f"{step.rows} rows" if step.rows is not None else ""
    took = format_duration(step.seconds) if step.seconds is not None else ""
    error = f"  {step.error}" if step.error and step.state != "succeeded" else ""
    return f"{step.step:<24} {step.type:<18} {rows:>12} {took:>8}{error}"


def _finish(result: Any, as_json: bool, then: Callable[[], None] | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        _print_run(result)
        if then is not None:
            then()
    if result.state != "succeeded":
        raise typer.Exit(1)


def _print_run(r: Any) -> None:
    took = format_duration(r.ended_at - r.created_at) if r.ended_at else "-"
    typer.echo(f"run {r.id}  pipeline {r.pipeline}  {r.state}  {took}")
    if r.rerun_of:
        typer.echo(f"  rerun of {r.rerun_of}")
    for s in r.steps:
        mem = s.metrics.get("job_peak_memory") or s.metrics.get("peak_rss")
        extra = f"  peak {format_bytes(mem)}" if mem else ""
        job = f"  job {s.job_id}" if s.job_id else (f"  from {s.reused_from}" if s.reused_from else "")
        typer.echo(f"  {_MARK.get(s.state, s.state)} {_step_line(s)}{job}{extra}")
    for c in r.checks:
        typer.echo(f"  check {c.step} ({c.check_type}): {c.status} — {c.message}")
    if r.error:
        typer.echo(f"  error: {r.error}")
