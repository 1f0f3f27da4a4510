"""extract-http: a JSON API's records, page by page, into the step's Parquet dataset.

Columns come from the first page (nested objects and lists are kept as JSON text, a column with only
nulls is text), with `columns:` overriding types; later pages are cast to those columns (a key the
first page lacked is dropped and named in the result). With `incremental:`, only records whose cursor
is past the committed one are kept (and, with `param`, the API is told where to start); the load
commits the new cursor exactly once, as for extract-sql.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from freight.connectors.cursor_state import Cursor, cursor_of, initial_cursor
from freight.connectors.http_source import HttpSource
from freight.errors import UserError
from freight.pipelines.datasets import DatasetWriter
from freight.pipelines.step import StepContext

if TYPE_CHECKING:
    import pyarrow as pa


def extract_http(ctx: StepContext) -> None:
    cfg = ctx.config
    inc = cfg.get("incremental")
    params = dict(cfg.get("params") or {})
    last: Cursor | None = None
    lower: Cursor | None = None
    if inc:
        from freight.pipelines.steps.incremental import last_committed

        name, wh_name, last = last_committed(ctx)
        lower = last or initial_cursor(inc.get("initial"))
        if inc.get("param") and lower is not None:
            params[inc["param"]] = lower.value
    source = HttpSource(
        url=cfg["url"],
        params=params,
        headers=dict(cfg.get("headers") or {}),
        auth=cfg.get("auth"),
        records=cfg.get("records"),
        pagination=dict(cfg.get("pagination") or {}),
        rate_limit=cfg.get("rate_limit"),
        max_retries=int(cfg.get("max_retries", 5)),
        timeout=float(cfg.get("request_timeout") or 30.0),
        where=f"steps.{ctx.name}",
    )
    rows = Rows({k: str(v) for k, v in (cfg.get("columns") or {}).items()}, where=f"steps.{ctx.name}")
    writer = DatasetWriter(ctx.output())
    high = last

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal high
        for page in source.pages():
            if inc:
                page, high = _past(page, inc["cursor"], last, lower, high)
            batch = rows.batch(page)
            if batch is not None:
                yield batch

    writer.write_all(batches())
    ctx.result.update(
        {
            "rows": writer.rows,
            "files": len(writer.files),
            "requests": source.requests,
            "retries": source.retries,
        }
    )
    if rows.dropped:
        ctx.result["dropped_fields"] = sorted(rows.dropped)
    if inc:
        from freight.pipelines.steps.incremental import describe_range

        ctx.result["incremental"] = describe_range(name, wh_name, inc["cursor"], last, high)


def _past(
    page: list[dict[str, Any]], column: str, last: Cursor | None, lower: Cursor | None, high: Cursor | None
) -> tuple[list[dict[str, Any]], Cursor | None]:
    """The records past the committed cursor (at or past `initial` on a first run), and the new high."""
    kept = []
    for record in page:
        value = record.get(column)
        if value is None:
            continue
        if lower is not None:
            key, bound = _comparable(value, lower)
            if key < bound or (last is not None and key == bound):
                continue
        kept.append(record)
        if high is None or _greater(value, high):
            high = cursor_of(value)
    return kept, high


def _greater(value: Any, cursor: Cursor) -> bool:
    key, bound = _comparable(value, cursor)
    return bool(key > bound)


def _comparable(value: Any, cursor: Cursor) -> tuple[Any, Any]:
    if cursor.kind in ("int", "float", "decimal") and isinstance(value, int | float):
        return float(value), float(cursor.value)
    return str(value), cursor.value


class Rows:
    """JSON records → Arrow batches with the columns the first page set."""

    def __init__(self, types: dict[str, str], *, where: str) -> None:
        self.types = types
        self.where = where
        self.schema: pa.Schema | None = None
        self.dropped: set[str] = set()

    def batch(self, records: list[dict[str, Any]]) -> pa.RecordBatch | None:
        import pyarrow as pa

        if not records:
            return None
        flat = [
            {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in r.items()} for r in records
        ]
        try:
            table = pa.Table.from_pylist(flat)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise UserError(
                f"{self.where}: records do not fit one type per field: {exc}",
                hint="set `columns:` to give the types",
            ) from None
        if self.schema is None:
            fields = []
            for f in table.schema:
                t = pa.type_for_alias(self.types[f.name]) if f.name in self.types else f.type
                fields.append(pa.field(f.name, pa.string() if pa.types.is_null(t) else t))
            self.schema = pa.schema(fields)
        self.dropped |= set(table.column_names) - set(self.schema.names)
        columns = []
        for f in self.schema:
            if f.name not in table.column_names:
                columns.append(pa.nulls(table.num_rows, f.type))
                continue
            try:
                columns.append(table[f.name].cast(f.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise UserError(
                    f"{self.where}: field {f.name!r} does not fit {f.type}: {exc}",
                    where=f"{self.where}.columns",
                    hint=f"set `columns: {{{f.name}: string}}` (or the type it holds)",
                ) from None
        return pa.Table.from_arrays(columns, schema=self.schema).combine_chunks().to_batches()[0]
