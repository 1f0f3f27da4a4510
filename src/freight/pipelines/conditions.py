"""What a scheduled run waits for before its steps are submitted: other pipelines' runs of the same
interval (`wait_for`, Dataduct's pipeline-dependencies) and preconditions (a table has rows for the
interval, a file or object exists, a SQL query returns true).

A run that waits holds no job slot: it is a row in state `waiting`, and the pipeline scheduler asks
`evaluate` on each tick whether it may go, must keep waiting, or has failed (a dependency failed, or
the timeout passed). Every check is one short query or stat; none blocks.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from freight.unitfields import Seconds

if TYPE_CHECKING:
    from freight.connectors.connections import Connections
    from freight.pipelines.store import Run, RunStore

DEFAULT_TIMEOUT = 2 * 3600.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WaitFor(_Strict):
    pipeline: str = Field(description="The pipeline whose run must end first")
    same_interval: bool = Field(
        default=True, description="Its run of the same interval (false: its latest run, whatever interval)"
    )
    ok_to_fail: bool = Field(default=False, description="Go on when that run failed, too")
    timeout: Seconds = DEFAULT_TIMEOUT


class TableHasRows(_Strict):
    type: Literal["table-has-rows"]
    connection: str
    table: str
    where: str | None = Field(default=None, description="A SQL condition, templated: day = '{{ ds }}'")
    timeout: Seconds = DEFAULT_TIMEOUT


class FileExists(_Strict):
    type: Literal["file-exists"]
    path: str = Field(description="A path or glob (local, or an object store URL); templated")
    timeout: Seconds = DEFAULT_TIMEOUT


class SqlTrue(_Strict):
    type: Literal["sql"]
    connection: str
    sql: str = Field(description="A query whose first value is true; templated")
    timeout: Seconds = DEFAULT_TIMEOUT


Precondition = Annotated[TableHasRows | FileExists | SqlTrue, Field(discriminator="type")]


@dataclass(frozen=True)
class Verdict:
    """go: submit the steps; wait: ask again later; fail: end the run with `reason`."""

    state: Literal["go", "wait", "fail"]
    reason: str = ""


def evaluate(
    run: Run,
    wait_for: list[WaitFor],
    preconditions: list[Precondition],
    *,
    store: RunStore,
    connections: Connections,
    base_dir: Path,
    render: dict[str, object],
    now: float,
) -> Verdict:
    """Whether a waiting run may start. `render` is the run's template context."""
    waited = now - run.created_at
    for dep in wait_for:
        verdict = _dependency(run, dep, store)
        if verdict.state == "fail":
            return verdict
        if verdict.state == "wait":
            if waited >= dep.timeout:
                return Verdict("fail", f"timed out after {_took(dep.timeout)} waiting for {verdict.reason}")
            return verdict
    for i, cond in enumerate(preconditions):
        try:
            ok = _holds(cond, connections, base_dir, render)
        except Exception as exc:  # a broken query fails the run with its error, it never stops a tick
            from freight.pipelines.step import describe

            return Verdict("fail", f"preconditions[{i}] ({cond.type}) failed: {describe(exc)}")
        if not ok:
            what = f"preconditions[{i}] ({cond.type})"
            if waited >= cond.timeout:
                return Verdict("fail", f"timed out after {_took(cond.timeout)} waiting for {what}")
            return Verdict("wait", what)
    return Verdict("go")


def _dependency(run: Run, dep: WaitFor, store: RunStore) -> Verdict:
    what = f"pipeline {dep.pipeline}" + (" (same interval)" if dep.same_interval else "")
    if dep.same_interval:
        other = (
            store.for_interval(dep.pipeline, run.interval_start) if run.interval_start is not None else None
        )
    else:
        found = store.list(dep.pipeline, 1)
        other = found[0] if found else None
    if other is None or other.state in ("running", "waiting"):
        return Verdict("wait", what)
    if other.state == "succeeded" or dep.ok_to_fail:
        return Verdict("go")
    return Verdict("fail", f"{what}: its run {other.id} {other.state}")


def _holds(cond: Precondition, connections: Connections, base_dir: Path, render: dict[str, object]) -> bool:
    from freight.pipelines.templating import render_text

    if isinstance(cond, FileExists):
        path = render_text(cond.path, render, where="preconditions.path")
        if "://" in path:
            import fsspec

            fs, _, paths = fsspec.get_fs_token_paths(path)
            return bool(fs.glob(paths[0]) if any(c in path for c in "*?[") else fs.exists(paths[0]))
        full = path if Path(path).is_absolute() else str(base_dir / path)
        return bool(glob.glob(full))
    if isinstance(cond, TableHasRows):
        where = render_text(cond.where, render, where="preconditions.where") if cond.where else None
        sql = f"SELECT EXISTS (SELECT 1 FROM {cond.table}" + (f" WHERE {where}" if where else "") + ")"
        return _truthy(_first_value(connections, cond.connection, sql))
    sql = render_text(cond.sql, render, where="preconditions.sql")
    return _truthy(_first_value(connections, cond.connection, sql))


def _first_value(connections: Connections, name: str, sql: str) -> object:
    conn = connections.get(name, where="preconditions.connection")
    if conn.kind == "duckdb":
        import duckdb

        db = duckdb.connect(conn.path or ":memory:", read_only=conn.path not in (None, ":memory:"))
        try:
            row = db.execute(sql).fetchone()
        finally:
            db.close()
        return row[0] if row else None
    from freight.connectors.sql_source import SqlSource

    table = SqlSource(conn, query=sql).open().read_all()
    return table.column(0)[0].as_py() if table.num_rows and table.num_columns else None


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "t", "true", "yes")
    return bool(value)


def _took(seconds: float) -> str:
    from freight.units import format_duration

    return format_duration(seconds)
