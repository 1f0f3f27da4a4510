"""load (an input into a warehouse table) and sql (a script in the warehouse, in one transaction)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from freight.connectors.warehouse import Warehouse, open_warehouse
from freight.pipelines.datasets import part_keys, read_dataset
from freight.pipelines.step import StepContext

if TYPE_CHECKING:
    import pyarrow as pa


def warehouse_for(ctx: StepContext, *, fused: bool = False) -> Warehouse:
    """The step's warehouse. DuckDB runs in this process, sized by the step's job: all of its cpus and
    3/4 of its memory. In a fused job (steps/fused.py) the extract shares the process (connectorx's
    threads, the Parquet writer), so DuckDB gets one cpu less and 3/16 of the memory: measured with 1M
    rows, 2 cpus and 1 GiB, the job's peak RSS fell from ~370 MB to ~280 MB at the same speed (the
    machine's cores are busy with the source either way)."""
    from freight.connectors.duckdb_warehouse import DuckDBWarehouse

    conn = ctx.connections().warehouse(ctx.warehouse_name(), where=f"steps.{ctx.name}.warehouse")
    if conn.kind == "duckdb":
        cpus = max(1, int((ctx.cpus or 1) + 0.5))
        memory = ctx.memory
        if fused:
            cpus = max(1, cpus - 1)
            memory = memory // 4 if memory else None  # DuckDB takes 3/4 of it: 3/16 of the job
        return DuckDBWarehouse(conn.path or ":memory:", memory_limit=memory, threads=cpus)
    return open_warehouse(conn)


def load(ctx: StepContext) -> None:
    from freight.connectors.duckdb_warehouse import DuckDBWarehouse
    from freight.pipelines.steps.incremental import needs_staged_load, staged_load

    staged = needs_staged_load(ctx)
    if staged is not False:
        staged_load(ctx, staged if isinstance(staged, dict) else None)
        return
    (source,) = ctx.inputs
    store = ctx.input_store(source)
    reader = read_dataset(store)
    files = None
    warehouse = warehouse_for(ctx)
    if isinstance(warehouse, DuckDBWarehouse) and store.local:
        # DuckDB reads the Parquet parts natively: less memory than scanning them through Arrow.
        files = [str(store.local_path(k)) for k in part_keys(store)]
    load_into(ctx, warehouse, reader, parquet_files=files)


def load_into(
    ctx: StepContext,
    warehouse: Warehouse,
    reader: pa.RecordBatchReader,
    *,
    parquet_files: list[str] | None = None,
) -> None:
    """Load `reader` into the step's table by its mode (append, replace, upsert); closes the warehouse."""
    from freight.connectors.duckdb_warehouse import DuckDBWarehouse

    cfg = ctx.config
    options = {
        "mode": cfg.get("mode", "append"),
        "primary_key": list(cfg.get("primary_key") or []),
        "create_sql": ctx.texts.get("create"),
    }
    try:
        if isinstance(warehouse, DuckDBWarehouse) and parquet_files:
            result = warehouse.load(cfg["table"], reader, parquet_files=parquet_files, **options)
        else:
            result = warehouse.load(cfg["table"], reader, **options)
    finally:
        warehouse.close()
    ctx.result.update(
        {
            "rows": result.rows,
            "table": result.table,
            "created": result.created,
            "added": list(result.added_columns),
        }
    )


def run_sql(ctx: StepContext) -> None:
    sql = ctx.config.get("sql") or ctx.texts["file"]
    warehouse = warehouse_for(ctx)
    try:
        warehouse.execute(sql)
    finally:
        warehouse.close()
