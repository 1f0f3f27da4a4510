"""extract-sql and extract-files: read a source as Arrow batches into the step's Parquet dataset."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from freight.connectors.files import FileSource
from freight.connectors.sql_source import SqlSource
from freight.errors import UserError
from freight.pipelines.datasets import DatasetWriter
from freight.pipelines.step import StepContext

if TYPE_CHECKING:
    import pyarrow as pa


def extract_sql(ctx: StepContext) -> None:
    reader, cursor_range = open_sql(ctx)
    writer = DatasetWriter(ctx.output())
    ctx.result["rows"] = writer.write_all(reader, reader.schema)
    ctx.result["files"] = len(writer.files)
    if cursor_range is not None:
        ctx.result["incremental"] = cursor_range


def open_sql(ctx: StepContext) -> tuple[pa.RecordBatchReader, dict[str, Any] | None]:
    """The step's rows as a stream, and (when incremental) the cursor range they cover."""
    cfg = ctx.config
    conn = ctx.connections().get(cfg["connection"], where=f"steps.{ctx.name}.connection")
    split = cfg.get("split") or {}
    source = SqlSource(
        conn,
        table=cfg.get("table"),
        query=cfg.get("query"),
        batch_size=int(cfg.get("batch_size") or 65_536),
        split_column=split.get("column"),
        split_parts=int(split.get("parts") or 1),
    )
    cursor_range = None
    if cfg.get("incremental"):
        from freight.pipelines.steps.incremental import incremental_source

        source, cursor_range = incremental_source(ctx, source)
    try:
        return source.open(), cursor_range
    except UserError as exc:
        if exc.where != "split.column":
            raise
        raise UserError(exc.message, where=f"steps.{ctx.name}.split.column", hint=exc.hint) from None


def extract_files(ctx: StepContext) -> None:
    cfg = ctx.config
    source = FileSource(
        pattern=ctx.paths.get("path", cfg["path"]),
        format=cfg.get("format"),
        header=bool(cfg.get("header", True)),
        delimiter=cfg.get("delimiter"),
        column_types=dict(cfg.get("columns") or {}),
    )
    writer = DatasetWriter(ctx.output())
    ctx.result["rows"] = writer.write_all(_same_schema(source))
    ctx.result["files"] = len(writer.files)
    ctx.result["sources"] = len(source.files())


def _same_schema(source: FileSource) -> Iterator[pa.RecordBatch]:
    """Files read one by one may infer different types; cast each to the first file's schema."""
    import pyarrow as pa

    schema: pa.Schema | None = None
    for path in source.files():
        for batch in source._read(path, source.format_of(path)):
            if schema is None:
                schema = batch.schema
            elif batch.schema != schema:
                if batch.schema.names != schema.names:
                    raise UserError(
                        f"{path} has columns {batch.schema.names}, but earlier files have {schema.names}",
                        hint="give every file the same columns, or extract them in separate steps",
                    )
                try:
                    batch = batch.cast(schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise UserError(
                        f"{path} does not fit the types of earlier files: {exc}",
                        hint="set `columns:` to give the types",
                    ) from None
            yield batch
