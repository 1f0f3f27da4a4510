"""`freight pipeline schedule|unschedule|schedules|pause|resume|backfill|import` (mounted on the
pipeline app by the CLI's entry point).

Schedules live in the store (`pipeline_schedules`): `freight up` on the same FREIGHT_HOME (or the same
FREIGHT_DATABASE_URL) runs them. With FREIGHT_URL the schedule commands go through the server's API
(/api/v1/pipelines/schedules); without, they read and write the local store. `backfill` runs in this
process's embedded platform, so it refuses FREIGHT_URL rather than write a store the server may not
read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from freight.cli import pipeline
from freight.cli.pipeline import AsJson, Config, FileArg, _named_config_exists, _runner, remote_pipelines
from freight.config import load_settings

if TYPE_CHECKING:
    from freight.pipelines.registry import ScheduleRegistry
    from freight.pipelines.store import RunStore

Name = Annotated[str, typer.Argument(help="A scheduled pipeline's name")]


def register(app: typer.Typer) -> None:
    for command in (schedule, unschedule, schedules, pause, resume, backfill, import_):
        name = "import" if command is import_ else command.__name__
        app.command(name)(command)


def _local_only(command: str) -> None:
    from freight.errors import UserError

    if load_settings().url:
        raise UserError(
            f"`freight pipeline {command}` works on the server's store, not through FREIGHT_URL",
            where="FREIGHT_URL",
            hint="run it on the server's machine with FREIGHT_URL unset (same FREIGHT_HOME)",
        )


@contextlib.contextmanager
def _registry() -> Iterator[tuple[RunStore, ScheduleRegistry]]:
    from freight.pipelines.registry import ScheduleRegistry
    from freight.pipelines.store import RunStore

    store = RunStore.open(load_settings().database_url)
    try:
        yield store, ScheduleRegistry(store.engine)
    finally:
        store.close()


def schedule(file: FileArg, config: Config = None) -> None:
    """Register a pipeline's `schedule:` with the server (`freight up` runs its due intervals)."""
    from freight.pipelines.loader import load_pipeline
    from freight.pipelines.schedule import next_due

    _named_config_exists(config)
    pipeline = load_pipeline(file)
    if pipeline.spec.schedule is None:
        from freight.errors import UserError

        raise UserError(
            f"pipeline {pipeline.name} has no `schedule`",
            where=pipeline.locator.where(()),
            hint='add e.g. schedule: {cron: "0 3 * * *", start: 2026-01-01}',
        )
    with remote_pipelines() as server:
        if server is not None:
            found = server.schedule(pipeline, spec_path=file, config_path=config)
            typer.echo(
                f"scheduled {pipeline.name} on the server; next run due {found['next_due'] or 'never'}"
            )
            return
    spec = pipeline.spec.model_dump(mode="json", exclude_none=True)
    config_path = str(config.resolve()) if config else None
    with _registry() as (_, registry):
        new = registry.register(
            pipeline.name,
            spec,
            spec_path=str(file.resolve()),
            base_dir=str(pipeline.base_dir),
            config_path=config_path,
        )
    nxt = next_due(pipeline.spec.schedule, dt.datetime.now(dt.UTC))
    when = nxt.isoformat() if nxt else "never (the schedule has ended)"
    typer.echo(f"{'scheduled' if new else 'updated'} {pipeline.name}; next run due {when}")


def unschedule(name: Name) -> None:
    """Stop running a pipeline on its schedule (its runs stay)."""
    with remote_pipelines() as server:
        if server is not None:
            server.unschedule(name)
        else:
            with _registry() as (_, registry):
                registry.remove(name)
    typer.echo(f"unscheduled {name}")


def pause(name: Name) -> None:
    """Start no new runs of a scheduled pipeline until `resume` (running ones go on)."""
    _set_paused(name, True)
    typer.echo(f"paused {name}")


def resume(name: Name) -> None:
    """Run a paused pipeline's schedule again (with catch-up, the intervals missed meanwhile run)."""
    _set_paused(name, False)
    typer.echo(f"resumed {name}")


def _set_paused(name: str, paused: bool) -> None:
    with remote_pipelines() as server:
        if server is not None:
            server.set_paused(name, paused)
        else:
            with _registry() as (_, registry):
                registry.set_paused(name, paused)


def schedules(as_json: AsJson = False) -> None:
    """What is scheduled: the rule, paused or not, the next run due and the last run's result."""
    from freight.pipelines.registry import describe

    with remote_pipelines() as server:
        if server is not None:
            rows = server.schedules()
        else:
            with _registry() as (store, registry):
                rows = [describe(store, entry) for entry in registry.list()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("nothing is scheduled (register a pipeline with `freight pipeline schedule FILE`)")
        return
    typer.echo(f"{'PIPELINE':<24} {'RULE':<28} {'STATE':<7} {'NEXT RUN DUE':<26} LAST RUN")
    for r in rows:
        last = f"{r['last_interval']} {r['last_state']}" if r["last_state"] else "-"
        state = "paused" if r["paused"] else "active"
        typer.echo(f"{r['pipeline']:<24} {r['rule']:<28} {state:<7} {r['next_due'] or '-':<26} {last}")


def backfill(
    file: FileArg,
    since: Annotated[str, typer.Option("--from", help="First interval start, e.g. 2026-01-01")],
    until: Annotated[str, typer.Option("--to", help="Last interval start (inclusive)")],
    parallel: Annotated[int, typer.Option("--parallel", "-p", help="Runs at once", min=1, max=32)] = 1,
    config: Config = None,
    as_json: AsJson = False,
) -> None:
    """Run every interval of the schedule from --from to --to that has no succeeded run."""
    from freight.pipelines import backfill as bf
    from freight.pipelines.loader import load_pipeline
    from freight.pipelines.schedule import parse_when

    _local_only("backfill")
    pipeline = load_pipeline(file)
    zone = pipeline.spec.schedule.zone if pipeline.spec.schedule else dt.UTC
    start = parse_when(since, zone, "--from")  # type: ignore[arg-type]
    end = parse_when(until, zone, "--to")  # type: ignore[arg-type]
    with _runner(config, quiet=True) as runner:
        planned = bf.plan(runner, pipeline, start, end)
        if not as_json:
            skipped = f" ({len(planned.skipped)} already succeeded or running)" if planned.skipped else ""
            typer.echo(f"backfill {pipeline.name}: {len(planned.todo)} interval(s){skipped}", err=True)

        def ended(run: Any, interval: Any) -> None:
            if not as_json:
                error = f"  {run.error}" if run.error else ""
                typer.echo(f"  {interval.ds}  {run.id}  {run.state}{error}", err=True)

        done = bf.backfill(
            runner, pipeline, planned.todo, parallel=parallel, spec_path=str(file.resolve()), on_end=ended
        )
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in done], indent=2, default=str))
    failed = [r for r in done if r.state != "succeeded"]
    if not as_json:
        typer.echo(f"{len(done) - len(failed)} succeeded, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


def import_(
    file: Annotated[Path, typer.Argument(help="A Dataduct pipeline file (YAML)")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write freight's file (default: stdout)")
    ] = None,
) -> None:
    """Convert a Dataduct pipeline file to freight's format, with a line-by-line report on stderr."""
    from freight.pipelines.dataduct import convert_file, dump

    converted = convert_file(file)
    text = dump(converted.spec)
    for line in converted.report:
        typer.echo(line, err=True)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}", err=True)


register(pipeline.app)
pipeline_app = pipeline.app  # `freight pipeline`: the pipeline commands and the schedule ones
