"""The pipelines demo for `make run`: seed a few CSV files, run a real pipeline on the job platform
(every step an isolated job) into the DuckDB warehouse, and print what happened.

    from freight.pipelines.demo import run_demo
    run = run_demo(load_settings())

Needs no database server: files in, DuckDB out. examples/pipelines/ has the same pipeline as YAML and
a MariaDB → PostgreSQL one.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from freight.config import Settings
from freight.pipelines.api import PipelineBuilder
from freight.pipelines.loader import Pipeline
from freight.pipelines.store import Run

STATUSES = ("new", "paid", "shipped", "returned")


def write_seed_data(folder: Path, orders: int = 5000, customers: int = 200, seed: int = 7) -> list[Path]:
    """Orders split over three CSV files plus a customers file, with awkward values on purpose
    ('' vs missing, tabs, quotes and the text NULL), so the demo shows they survive."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    notes = ["", "gift", "tab\there", 'say "hi"', "NULL", "line\nbreak"]
    written = []
    per_file = orders // 3 + 1
    for part in range(3):
        path = folder / f"orders-{part}.csv"
        with path.open("w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["id", "customer_id", "amount", "status", "note", "placed"])
            for i in range(part * per_file + 1, min(orders, (part + 1) * per_file) + 1):
                out.writerow(
                    [
                        i,
                        rng.randint(1, customers),
                        round(rng.uniform(1, 500), 2),
                        rng.choice(STATUSES),
                        rng.choice(notes),
                        f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} 12:00:00",
                    ]
                )
        written.append(path)
    path = folder / "customers.csv"
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "name", "country"])
        for i in range(1, customers + 1):
            out.writerow([i, f"customer {i}", rng.choice(["DE", "FR", "US", "JP"])])
    written.append(path)
    return written


def demo_pipeline(data: Path) -> Pipeline:
    p = PipelineBuilder("demo-shop", description="CSV orders into the DuckDB warehouse", base_dir=data)
    p.set_defaults(resources={"cpus": 1, "memory": "384M"})
    orders = p.extract_files("orders_raw", path="orders-*.csv", columns={"placed": "timestamp[s]"})
    customers = p.extract_files("customers_raw", path="customers.csv")
    daily = p.transform_sql(
        "revenue_by_country",
        inputs=[orders, customers],
        sql="SELECT c.country, o.status, count(*) AS orders, round(sum(o.amount), 2) AS revenue "
        "FROM orders_raw o JOIN customers_raw c ON c.id = o.customer_id "
        "WHERE o.status <> 'returned' GROUP BY ALL ORDER BY ALL",
    )
    p.load("load_orders", input=orders, table="demo.orders", mode="upsert", primary_key=["id"])
    p.load("load_revenue", input=daily, table="demo.revenue_by_country", mode="replace")
    p.check("primary-key", "orders_pk", depends_on=["load_orders"], table="demo.orders", columns=["id"])
    p.check("count", "orders_count", inputs=[orders], depends_on=["load_orders"], table="demo.orders")
    p.check(
        "sql",
        "no_negative_revenue",
        depends_on=["load_revenue"],
        sql="SELECT * FROM demo.revenue_by_country WHERE revenue < 0",
        on_fail="warn",
    )
    return p.build()


def run_demo(settings: Settings, *, orders: int = 5000, echo: bool = True) -> Run:
    from freight.jobs.service import JobService
    from freight.pipelines.runner import PipelineRunner
    from freight.pipelines.store import RunStore

    data = settings.home / "demo" / "pipelines"
    write_seed_data(data, orders=orders)
    pipeline = demo_pipeline(data)
    store = RunStore.open(settings.database_url)
    try:
        with JobService.open(settings) as svc, svc.running():
            runner = PipelineRunner(svc, store, settings, config_path=settings.home / "freight.toml")
            run = runner.run(pipeline, poll=0.2)
    finally:
        store.close()
    if echo:
        print(f"pipeline {run.pipeline}: run {run.id} {run.state}")
        for s in run.steps:
            took = f"{s.seconds:.2f}s" if s.seconds is not None else "-"
            rows = f"{s.rows} rows" if s.rows is not None else ""
            print(f"  {s.state:<10} {s.step:<22} {s.type:<18} {rows:>11} {took:>7}")
        for c in run.checks:
            print(f"  check {c.step}: {c.status} — {c.message}")
        print(
            f"  warehouse: {settings.home / 'warehouse.duckdb'} (tables demo.orders, demo.revenue_by_country)"
        )
    return run


if __name__ == "__main__":
    from freight.config import load_settings

    raise SystemExit(0 if run_demo(load_settings()).state == "succeeded" else 1)
