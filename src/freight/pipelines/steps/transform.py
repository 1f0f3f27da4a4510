"""transform-sql (DuckDB over the inputs by name) and transform-python (a function over Arrow tables)."""

from __future__ import annotations

import importlib
import runpy
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from freight.connectors.identifiers import qi
from freight.errors import UserError
from freight.pipelines.datasets import DatasetWriter, local_files, read_dataset
from freight.pipelines.step import StepContext


def transform_sql(ctx: StepContext) -> None:
    import duckdb

    sql = ctx.config.get("sql") or ctx.texts["file"]
    config: dict[str, Any] = {}
    if ctx.memory:
        config["memory_limit"] = f"{max(64, ctx.memory // 1024**2 * 3 // 4)}MB"
    if ctx.cpus:
        config["threads"] = max(1, int(ctx.cpus + 0.5))
    with tempfile.TemporaryDirectory(prefix="freight-step-") as scratch:
        con = duckdb.connect(":memory:", config=config)
        try:
            con.execute(f"SET temp_directory = '{scratch}'")
            for name in ctx.inputs:
                files = local_files(ctx.input_store(name), Path(scratch))
                listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
                con.execute(f"CREATE VIEW {qi(name)} AS SELECT * FROM read_parquet([{listing}])")
            try:
                reader = con.sql(sql).to_arrow_reader(65_536)
            except duckdb.Error as exc:
                raise UserError(f"steps.{ctx.name}.sql: {exc}") from None
            writer = DatasetWriter(ctx.output())
            ctx.result["rows"] = writer.write_all(reader, reader.schema)
            ctx.result["files"] = len(writer.files)
        finally:
            con.close()


def transform_python(ctx: StepContext) -> None:
    import pyarrow as pa

    func = _function(ctx)
    tables = {name: read_dataset(ctx.input_store(name)).read_all() for name in ctx.inputs}
    out = func(**tables)
    writer = DatasetWriter(ctx.output())
    if isinstance(out, pa.Table):
        ctx.result["rows"] = writer.write_all(out.to_batches(), out.schema)
    elif isinstance(out, pa.RecordBatchReader):
        ctx.result["rows"] = writer.write_all(out, out.schema)
    elif isinstance(out, pa.RecordBatch):
        ctx.result["rows"] = writer.write_all([out], out.schema)
    elif isinstance(out, Iterable):
        ctx.result["rows"] = writer.write_all(out)
    else:
        raise UserError(
            f"steps.{ctx.name}: the function returned {type(out).__name__}",
            hint="return a pyarrow Table, RecordBatch, RecordBatchReader or an iterable of batches",
        )
    ctx.result["files"] = len(writer.files)


def _function(ctx: StepContext) -> Callable[..., Any]:
    base = ctx.paths.get("base_dir")
    if base and base not in sys.path:
        sys.path.insert(0, base)
    if ctx.config.get("script"):
        namespace = runpy.run_path(ctx.paths["script"])
        func = namespace.get("transform")
        if not callable(func):
            raise UserError(
                f"steps.{ctx.name}.script: {ctx.config['script']} defines no `transform` function"
            )
        return func  # type: ignore[no-any-return]
    module_name, _, attr = str(ctx.config["function"]).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"steps.{ctx.name}.function: cannot import {module_name!r}: {exc}") from None
    func = getattr(module, attr, None)
    if not callable(func):
        raise UserError(f"steps.{ctx.name}.function: {module_name} has no function {attr!r}")
    return func  # type: ignore[no-any-return]
