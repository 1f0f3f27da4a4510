"""load (an input into a warehouse table) and sql (a script in the warehouse, in one transaction)."""

from __future__ import annotations

from freight.connectors.warehouse import Warehouse, open_warehouse
from freight.pipelines.datasets import read_dataset
from freight.pipelines.step import StepContext


def warehouse_for(ctx: StepContext) -> Warehouse:
    conn = ctx.connections().warehouse(ctx.warehouse_name(), where=f"steps.{ctx.name}.warehouse")
    if conn.kind == "duckdb":
        from freight.connectors.duckdb_warehouse import DuckDBWarehouse

        threads = max(1, int((ctx.cpus or 1) + 0.5))
        return DuckDBWarehouse(conn.path or ":memory:", memory_limit=ctx.memory, threads=threads)
    return open_warehouse(conn)


def load(ctx: StepContext) -> None:
    cfg = ctx.config
    (source,) = ctx.inputs
    reader = read_dataset(ctx.input_store(source))
    warehouse = warehouse_for(ctx)
    try:
        result = warehouse.load(
            cfg["table"],
            reader,
            mode=cfg.get("mode", "append"),
            primary_key=list(cfg.get("primary_key") or []),
            create_sql=ctx.texts.get("create"),
        )
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
