"""Incremental extracts and the staged loads that commit them exactly once.

Extract (`extract-sql` with `incremental:`): read the cursor the last load committed from the
warehouse's `freight_cursors`, find the new high mark (MAX(cursor) past it, and older than now - lag
by the source's clock), and read exactly the rows in (last, new]. The step's result records both ends.

Load (any `load` downstream of such an extract, and every `merge` / `delete_insert` load): copy the
input into a staging table (committed on its own: harmless, a rerun replaces it), make sure the
target exists with the data's columns, then in ONE transaction move the cursor from `last` to `new`
(compare-and-set), apply the rows by mode, and drop the staging table. See connectors/cursor_state.py.

Modes on this path: append, replace, merge/upsert (the last row per key wins: the highest cursor when
the cursor is a column), merge with `history: true` (SCD2: changed keys get their current version
closed and a new one opened; unchanged rows add nothing), delete_insert (the target rows whose
`interval_column` lies within the staged rows' range are replaced by them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING, Any

from freight.connectors.connections import redact
from freight.connectors.cursor_state import (
    AlreadyCommitted,
    Cursor,
    Tx,
    advance,
    cursor_of,
    ensure_state_table,
    initial_cursor,
    read_cursor,
    transaction,
)
from freight.connectors.identifiers import qi as _qi
from freight.connectors.identifiers import qt as _qt
from freight.connectors.identifiers import quote_ident
from freight.connectors.postgres_warehouse import PostgresWarehouse
from freight.connectors.sql_source import SqlSource, cx_url
from freight.errors import TerminalError, UserError
from freight.pipelines.datasets import read_dataset, read_result
from freight.pipelines.step import MANIFEST, StepContext
from freight.storage.objectstore import ObjectStore

if TYPE_CHECKING:
    import pyarrow as pa

HISTORY_COLUMNS = ("_valid_from", "_valid_to", "_current")
INCREMENTAL_TYPES = ("extract-sql", "extract-http")


def manifest(ctx: StepContext) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ObjectStore(ctx.run_url).get_bytes(MANIFEST))
    return data


def cursor_name(ctx: StepContext) -> str:
    return f"{manifest(ctx)['pipeline']}.{ctx.name}"


def state_warehouse(ctx: StepContext) -> Any:
    from freight.connectors.warehouse import open_warehouse

    inc = ctx.config.get("incremental") or {}
    name = inc.get("warehouse") or ctx.config.get("warehouse") or ctx.default_warehouse
    conn = ctx.connections().warehouse(name, where=f"steps.{ctx.name}.incremental.warehouse")
    return name, open_warehouse(conn)


def last_committed(ctx: StepContext) -> tuple[str, str, Cursor | None]:
    """(cursor name, warehouse name, the cursor's committed value or None)."""
    name = cursor_name(ctx)
    wh_name, wh = state_warehouse(ctx)
    try:
        return name, wh_name, read_cursor(wh, name)
    finally:
        wh.close()


# --- extract ------------------------------------------------------------------------------------------


def incremental_source(ctx: StepContext, source: SqlSource) -> tuple[SqlSource, dict[str, Any]]:
    """The source narrowed to the rows past the committed cursor, and the range they cover."""
    inc = ctx.config["incremental"]
    name, wh_name, last = last_committed(ctx)
    kind = source.connection.kind
    column = quote_ident(inc["cursor"], kind)
    where = []
    if last is not None:
        where.append(f"{column} > {last.literal()}")
    elif (start := initial_cursor(inc.get("initial"))) is not None:
        where.append(f"{column} >= {start.literal()}")
    if inc.get("lag") is not None:
        seconds = int(float(inc["lag"]))
        interval = (
            f"INTERVAL {seconds} SECOND" if kind in ("mariadb", "mysql") else f"INTERVAL '{seconds} seconds'"
        )
        where.append(f"{column} <= CURRENT_TIMESTAMP - {interval}")
    base = source.sql()
    high = _scalar(ctx, source, f"SELECT MAX({column}) FROM ({base}) freight_inc" + _where(where))
    new = cursor_of(high) or last
    where.append(f"{column} <= {new.literal()}" if high is not None and new else "1 = 0")
    query = f"SELECT * FROM ({base}) freight_inc" + _where(where)
    narrowed = SqlSource(
        source.connection,
        query=query,
        batch_size=source.batch_size,
        split_column=source.split_column,
        split_parts=source.split_parts,
    )
    return narrowed, describe_range(name, wh_name, inc["cursor"], last, new)


def describe_range(
    name: str, warehouse: str, column: str, old: Cursor | None, new: Cursor | None
) -> dict[str, Any]:
    def pack(c: Cursor | None) -> dict[str, str] | None:
        return None if c is None else {"value": c.value, "kind": c.kind}

    return {"name": name, "warehouse": warehouse, "cursor": column, "from": pack(old), "to": pack(new)}


def _where(conditions: list[str]) -> str:
    return (" WHERE " + " AND ".join(conditions)) if conditions else ""


def _scalar(ctx: StepContext, source: SqlSource, sql: str) -> Any:
    import connectorx as cx
    import pyarrow as pa

    try:
        table = cx.read_sql(cx_url(source.connection), sql, return_type="arrow")
    except BaseException as exc:  # connectorx raises plain RuntimeError/PanicException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        text = redact(str(exc))
        cursor = ctx.config["incremental"]["cursor"]
        if cursor.lower() in text.lower():
            raise UserError(
                f"cannot read the cursor column {cursor!r}: {text}",
                where=f"steps.{ctx.name}.incremental.cursor",
                hint="name a column of the table or query that only grows (updated_at, an id)",
            ) from None
        raise TerminalError(f"reading from {source.connection.name!r} failed: {text}") from None
    if not table.num_rows:
        return None
    column = table.column(0)
    if pa.types.is_timestamp(column.type) and column.type.unit == "ns":
        column = column.cast(pa.timestamp("us", column.type.tz))
    return column[0].as_py()


# --- load ---------------------------------------------------------------------------------------------


def incremental_origin(ctx: StepContext) -> dict[str, Any] | None:
    """The cursor range of the incremental extract upstream of this load (through transforms)."""
    steps = manifest(ctx)["steps"]
    found: list[str] = []
    todo, seen = list(ctx.inputs), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in steps:
            continue
        seen.add(name)
        entry = steps[name]
        if entry["type"] == "extract-logs" or (
            entry["type"] in INCREMENTAL_TYPES and entry["config"].get("incremental")
        ):
            found.append(name)
        else:
            todo.extend(entry.get("inputs", {}))
    if not found:
        return None
    if len(found) > 1:
        raise UserError(
            f"steps.{ctx.name}: takes rows from {len(found)} incremental extracts "
            f"({', '.join(sorted(found))})",
            hint="load each incremental extract with a load of its own",
        )
    result = read_result(ObjectStore(steps[found[0]]["output_url"])) or {}
    if "incremental" not in result:
        raise TerminalError(f"steps.{found[0]} recorded no cursor range; rerun it")
    origin: dict[str, Any] = result["incremental"]
    return origin


def needs_staged_load(ctx: StepContext) -> dict[str, Any] | bool | None:
    """The origin's range when the load is incremental; True for merge/delete_insert; else False."""
    origin = incremental_origin(ctx)
    if origin is not None:
        return origin
    return ctx.config.get("mode") in ("merge", "delete_insert")


def staged_load(
    ctx: StepContext,
    origin: dict[str, Any] | None,
    *,
    now: dt.datetime | None = None,
    rows: pa.RecordBatchReader | None = None,
) -> None:
    """Stage the input (or `rows`, streamed by a fused extract), then apply it in one transaction."""
    import pyarrow as pa

    from freight.pipelines.steps.load import warehouse_for

    cfg = ctx.config
    table, mode = cfg["table"], cfg.get("mode", "append")
    now = now or dt.datetime.now(dt.UTC)
    wh = warehouse_for(ctx, fused=rows is not None)
    try:
        old = new = None
        if origin is not None:
            if origin["warehouse"] != ctx.warehouse_name():
                raise UserError(
                    f"steps.{ctx.name}: loads into {ctx.warehouse_name()!r} but the cursor of "
                    f"{origin['name']} lives in {origin['warehouse']!r}",
                    hint="set incremental.warehouse on the extract to this load's warehouse",
                )
            old, new = _unpack(origin["from"]), _unpack(origin["to"])
            ctx.result["incremental"] = origin
            if new is None or new == old:
                ctx.result.update({"rows": 0, "table": table, "note": "no new rows"})
                return
            ensure_state_table(wh)
            if read_cursor(wh, origin["name"]) != old:
                ctx.result.update({"rows": 0, "table": table, "note": "already loaded"})
                return
        reader = rows if rows is not None else read_dataset(ctx.input_store(next(iter(ctx.inputs))))
        schema = reader.schema
        _check_columns(ctx, schema, origin)
        stage = stage_name(table, f"{manifest(ctx)['pipeline']}.{ctx.name}")
        wh.execute(f"DROP TABLE IF EXISTS {_qt(stage)}")
        wh.load(stage, reader, mode="append")
        target = schema
        if cfg.get("history"):
            target = (
                schema.append(pa.field("_valid_from", pa.timestamp("us")))
                .append(pa.field("_valid_to", pa.timestamp("us")))
                .append(pa.field("_current", pa.bool_()))
            )
        ensured = wh.load(
            table, target.empty_table().to_reader(), mode="append", create_sql=ctx.texts.get("create")
        )
        try:
            with transaction(wh) as tx:
                if isinstance(wh, PostgresWarehouse) and wh.kind == "postgres":
                    wh.lock_table(table)  # loads into one table take turns (see postgres_warehouse)
                if origin is not None and new is not None:
                    advance(tx, origin["name"], old, new, run_id=str(manifest(ctx)["run_id"]), now=now)
                applied = apply(tx, mode, table, stage, schema.names, cfg, origin, now)
                tx.run(f"DROP TABLE {_qt(stage)}")
        except AlreadyCommitted:
            wh.execute(f"DROP TABLE IF EXISTS {_qt(stage)}")
            ctx.result.update({"rows": 0, "table": table, "note": "already loaded"})
            return
        added = list(ensured.added_columns)
        ctx.result.update({"rows": applied, "table": table, "created": ensured.created, "added": added})
    finally:
        wh.close()


def apply(
    tx: Tx,
    mode: str,
    table: str,
    stage: str,
    columns: list[str],
    cfg: dict[str, Any],
    origin: dict[str, Any] | None,
    now: dt.datetime,
) -> int:
    """Apply the staged rows to the target by mode; returns the rows inserted."""
    t, s = _qt(table), _qt(stage)
    cols = ", ".join(_qi(c) for c in columns)
    if mode == "append":
        return tx.count(f"INSERT INTO {t} ({cols}) SELECT {cols} FROM {s}")
    if mode == "replace":
        tx.run(f"DELETE FROM {t}")
        return tx.count(f"INSERT INTO {t} ({cols}) SELECT {cols} FROM {s}")
    if mode == "delete_insert":
        column = _qi(cfg.get("interval_column") or (origin or {}).get("cursor") or "")
        tx.run(
            f"DELETE FROM {t} WHERE {column} >= (SELECT MIN({column}) FROM {s}) "
            f"AND {column} <= (SELECT MAX({column}) FROM {s})"
        )
        return tx.count(f"INSERT INTO {t} ({cols}) SELECT {cols} FROM {s}")
    key = list(cfg.get("primary_key") or [])
    cursor = (origin or {}).get("cursor")
    order = f" ORDER BY {_qi(cursor)} DESC" if cursor in columns else ""
    partition = ", ".join(_qi(k) for k in key)
    latest = (
        f"SELECT {cols} FROM (SELECT {cols}, row_number() OVER (PARTITION BY {partition}{order}) "
        f"AS freight_rn FROM {s}) latest WHERE freight_rn = 1"
    )
    if not cfg.get("history"):
        match = " AND ".join(f"s.{_qi(k)} = t.{_qi(k)}" for k in key)
        tx.run(f"DELETE FROM {t} AS t WHERE EXISTS (SELECT 1 FROM {s} AS s WHERE {match})")
        return tx.count(f"INSERT INTO {t} ({cols}) {latest}")
    changed = "freight_changed"
    same = " AND ".join(f"t.{_qi(c)} IS NOT DISTINCT FROM d.{_qi(c)}" for c in columns)
    tx.run(f"DROP TABLE IF EXISTS {changed}")
    tx.run(
        f"CREATE TEMP TABLE {changed} AS SELECT * FROM ({latest}) d "
        f"WHERE NOT EXISTS (SELECT 1 FROM {t} AS t WHERE t._current AND {same})"
    )
    stamp = f"TIMESTAMP '{now.replace(tzinfo=None).isoformat(sep=' ')}'"
    match = " AND ".join(f"c.{_qi(k)} = {t}.{_qi(k)}" for k in key)
    tx.run(
        f"UPDATE {t} SET _valid_to = {stamp}, _current = FALSE "
        f"WHERE _current AND EXISTS (SELECT 1 FROM {changed} AS c WHERE {match})"
    )
    rows = tx.count(
        f"INSERT INTO {t} ({cols}, _valid_from, _valid_to, _current) "
        f"SELECT {cols}, {stamp}, NULL, TRUE FROM {changed}"
    )
    tx.run(f"DROP TABLE {changed}")
    return rows


def stage_name(table: str, step: str) -> str:
    """A short staging table beside the target (PostgreSQL cuts names at 63 bytes), one per target and
    `pipeline.step`: a rerun replaces what a killed attempt left; two pipelines never share one."""
    schema, _, _name = table.rpartition(".")
    digest = hashlib.sha1(f"{table}\0{step}".encode()).hexdigest()[:10]
    return f"{schema}.freight_stage_{digest}" if schema else f"freight_stage_{digest}"


def _check_columns(ctx: StepContext, schema: pa.Schema, origin: dict[str, Any] | None) -> None:
    cfg = ctx.config
    needed = list(cfg.get("primary_key") or []) if cfg.get("mode") in ("merge", "upsert") else []
    if cfg.get("mode") == "delete_insert":
        column = cfg.get("interval_column") or (origin or {}).get("cursor")
        if not column:
            raise UserError(
                f"steps.{ctx.name}: mode delete_insert needs `interval_column`",
                hint="name the column whose range each load replaces",
            )
        needed.append(column)
    if cfg.get("history"):
        clash = [c for c in HISTORY_COLUMNS if c in schema.names]
        if clash:
            raise UserError(f"steps.{ctx.name}: the data has a column {clash[0]!r}, which history adds")
    for column in needed:
        if column not in schema.names:
            raise UserError(
                f"steps.{ctx.name}: column {column!r} is not in the data", hint=f"columns: {schema.names}"
            )


def _unpack(raw: dict[str, str] | None) -> Cursor | None:
    return None if raw is None else Cursor(raw["value"], raw["kind"])
