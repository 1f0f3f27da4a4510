"""QA checks. Each records one result row (pass | fail | warn); a failure with on_fail: fail also
fails the step (and so its dependents and the run), while on_fail: warn lets the run go on."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import TYPE_CHECKING, Any

from freight.connectors.connections import Connection
from freight.connectors.identifiers import qi, qt, quote_table
from freight.pipelines.datasets import count_rows, read_dataset
from freight.pipelines.step import CheckFailed, StepContext
from freight.pipelines.steps.load import warehouse_for

if TYPE_CHECKING:
    import pyarrow as pa


def _record(ctx: StepContext, ok: bool, observed: Any, expected: Any, message: str) -> None:
    on_fail = ctx.config.get("on_fail", "fail")
    status = "pass" if ok else ("warn" if on_fail == "warn" else "fail")
    ctx.result["checks"].append(
        {
            "check": ctx.type,
            "status": status,
            "on_fail": on_fail,
            "observed": observed,
            "expected": expected,
            "message": message,
        }
    )
    if status == "fail":
        raise CheckFailed(f"{ctx.type} failed: {message}")


def check_primary_key(ctx: StepContext) -> None:
    table, cols = ctx.config["table"], list(ctx.config["columns"])
    keys = ", ".join(qi(c) for c in cols)
    nulls_where = " OR ".join(f"{qi(c)} IS NULL" for c in cols)
    wh = warehouse_for(ctx)
    try:
        dupes = _scalar(
            wh.query(
                f"SELECT count(*) FROM (SELECT {keys} FROM {qt(table)} GROUP BY {keys} HAVING count(*) > 1) d"
            )
        )
        nulls = _scalar(wh.query(f"SELECT count(*) FROM {qt(table)} WHERE {nulls_where}"))
    finally:
        wh.close()
    observed = {"duplicate_keys": dupes, "null_keys": nulls}
    message = f"{table}({', '.join(cols)}): {dupes} duplicated key(s), {nulls} row(s) with a NULL key"
    _record(ctx, dupes == 0 and nulls == 0, observed, {"duplicate_keys": 0, "null_keys": 0}, message)


def check_count(ctx: StepContext) -> None:
    table = ctx.config["table"]
    tolerance = float(ctx.config.get("tolerance") or 0.0)
    if ctx.inputs:
        source = count_rows(ctx.input_store(next(iter(ctx.inputs))))
    else:
        ref = ctx.config["source"]
        conn = ctx.connections().get(ref["connection"], where=f"steps.{ctx.name}.source.connection")
        inner = ref.get("query") or f"SELECT * FROM {quote_table(ref['table'], conn.kind)}"
        source = _scalar(source_query(ctx, conn, f"SELECT count(*) AS n FROM ({inner}) s"))
    wh = warehouse_for(ctx)
    try:
        dest = _scalar(wh.query(f"SELECT count(*) FROM {qt(table)}"))
    finally:
        wh.close()
    diff = abs(dest - source) / max(source, 1) * 100
    message = f"{table}: {dest} rows, source {source} rows ({diff:.2f}% apart; tolerance {tolerance}%)"
    _record(
        ctx, diff <= tolerance, {"source": source, "destination": dest}, {"tolerance_pct": tolerance}, message
    )


def check_columns(ctx: StepContext) -> None:
    cfg = ctx.config
    table, key, size = cfg["table"], list(cfg["key"]), int(cfg.get("sample") or 1000)
    sample = _sample_input(ctx, size) if ctx.inputs else _sample_source(ctx, size)
    columns = list(cfg.get("columns") or [c for c in sample.column_names if c not in key])
    missing_cols = [c for c in [*key, *columns] if c not in sample.column_names]
    if missing_cols:
        from freight.errors import UserError

        raise UserError(f"steps.{ctx.name}: the source has no column {missing_cols[0]!r}")
    rows = sample.select([*key, *columns]).to_pylist()
    dest = _lookup(ctx, table, key, columns, rows)
    mismatches: list[str] = []
    for row in rows:
        k = tuple(row[c] for c in key)
        found = dest.get(k)
        if found is None:
            mismatches.append(f"key {_show(k)} missing")
            continue
        for c in columns:
            if not same_value(row[c], found[c]):
                mismatches.append(f"key {_show(k)} column {c}: source {row[c]!r}, destination {found[c]!r}")
    shown = "; ".join(mismatches[:3]) + (" …" if len(mismatches) > 3 else "")
    message = f"{table}: {len(rows)} sampled rows, {len(mismatches)} mismatch(es)" + (
        f": {shown}" if shown else ""
    )
    _record(
        ctx, not mismatches, {"sampled": len(rows), "mismatches": len(mismatches)}, {"mismatches": 0}, message
    )


def check_sql(ctx: StepContext) -> None:
    sql, expect = ctx.config["sql"], ctx.config.get("expect")
    wh = warehouse_for(ctx)
    try:
        result = wh.query(sql)
    finally:
        wh.close()
    if expect is None:
        ok = result.num_rows == 0
        first = result.slice(0, 1).to_pylist()
        message = "no rows" if ok else f"{result.num_rows} row(s), first: {first[0]}"
        _record(ctx, ok, {"rows": result.num_rows}, {"rows": 0}, message)
        return
    value = result.column(0)[0].as_py() if result.num_rows and result.num_columns else None
    ok = same_value(value, expect) or (value is not None and str(value) == str(expect))
    _record(ctx, ok, value, expect, f"got {value!r}, expected {expect!r}")


def same_value(a: Any, b: Any) -> bool:
    """Equal as values: 1 == Decimal('1.0'), naive and aware datetimes compare as written."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, int | float | decimal.Decimal) and isinstance(b, int | float | decimal.Decimal):
        if isinstance(a, bool) != isinstance(b, bool):
            return int(a) == int(b)
        return decimal.Decimal(str(a)) == decimal.Decimal(str(b))
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime) and (a.tzinfo is None) != (b.tzinfo is None):
        return a.replace(tzinfo=None) == b.replace(tzinfo=None)
    if isinstance(a, bytes | memoryview) or isinstance(b, bytes | memoryview):
        return bytes(a) == bytes(b)
    return bool(a == b)


def source_query(ctx: StepContext, conn: Connection, sql: str) -> pa.Table:
    if conn.kind == "duckdb":
        from freight.connectors.duckdb_warehouse import DuckDBWarehouse

        wh = DuckDBWarehouse(conn.path or ":memory:")
        try:
            return wh.query(sql)
        finally:
            wh.close()
    from freight.connectors.sql_source import SqlSource

    return SqlSource(conn, query=sql).open().read_all()


def _sample_input(ctx: StepContext, size: int) -> pa.Table:
    """Evenly spaced rows across the whole input, read batch by batch (never the whole dataset)."""
    import pyarrow as pa

    store = ctx.input_store(next(iter(ctx.inputs)))
    total = count_rows(store)
    every = max(1, total // size)
    picked: list[pa.RecordBatch] = []
    offset = 0
    reader = read_dataset(store)
    for batch in reader:
        first = (-offset) % every
        idx = list(range(first, batch.num_rows, every))
        if idx:
            picked.append(batch.take(pa.array(idx)))
        offset += batch.num_rows
    return pa.Table.from_batches(picked, reader.schema).slice(0, size)


def _sample_source(ctx: StepContext, size: int) -> pa.Table:
    ref = ctx.config["source"]
    conn = ctx.connections().get(ref["connection"], where=f"steps.{ctx.name}.source.connection")
    inner = ref.get("query") or f"SELECT * FROM {quote_table(ref['table'], conn.kind)}"
    rand = "RAND()" if conn.kind in ("mariadb", "mysql") else "random()"
    return source_query(ctx, conn, f"SELECT * FROM ({inner}) s ORDER BY {rand} LIMIT {size}")


def _lookup(
    ctx: StepContext, table: str, key: list[str], columns: list[str], rows: list[dict[str, Any]]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    if not rows:
        return {}
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    wh = warehouse_for(ctx)
    try:
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            tuples = ", ".join("(" + ", ".join(sql_literal(r[k]) for k in key) + ")" for r in chunk)
            cols = ", ".join(qi(c) for c in [*key, *columns])
            keys = ", ".join(qi(k) for k in key)
            found = wh.query(f"SELECT {cols} FROM {qt(table)} WHERE ({keys}) IN ({tuples})").to_pylist()
            for r in found:
                out[tuple(r[k] for k in key)] = r
    finally:
        wh.close()
    return out


def sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | decimal.Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime | dt.date):
        return (
            "'" + value.isoformat(sep=" ") + "'"
            if isinstance(value, dt.datetime)
            else f"'{value.isoformat()}'"
        )
    return "'" + str(value).replace("'", "''") + "'"


def _scalar(table: pa.Table) -> int:
    value = table.column(0)[0].as_py() if table.num_rows else 0
    return int(value or 0)


def _show(key: tuple[Any, ...]) -> str:
    return repr(key[0]) if len(key) == 1 else repr(key)
