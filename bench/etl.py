"""ETL benchmark: N rows x 10 columns MariaDB -> PostgreSQL and -> DuckDB through real pipeline runs,
beside a baseline measured in the same run: a raw `mysql --batch | psql COPY` pipe.

    .venv/bin/python bench/etl.py [--rows 1000000]

Writes bench/results/etl.json. Steps run as jobs (`python -m freight.pipelines.step`) through a
JobClient: the embedded JobService when the platform's runtime is available, else the local test
double (real subprocesses, no cgroups) — the JSON says which. Each path runs fused (the extract and
its load as one job, pipelines/fusion.py) and with `fuse: false` (two jobs and a Parquet round trip);
with --repeat N every path and the baseline run N times, interleaved, and the median is reported.
`time_vs_pipe` is the path's seconds over the baseline pipe's (lower is better).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import pymysql  # noqa: E402

from freight.config import load_settings  # noqa: E402
from freight.pipelines.api import PipelineBuilder  # noqa: E402
from freight.pipelines.runner import PipelineRunner  # noqa: E402
from freight.pipelines.store import RunStore  # noqa: E402

COLUMNS = """
  id BIGINT PRIMARY KEY, customer_id INT NOT NULL, sku VARCHAR(20) NOT NULL, note VARCHAR(100) NULL,
  amount DOUBLE NULL, qty INT NOT NULL, price DECIMAL(12,2) NOT NULL, created DATETIME NOT NULL,
  shipped DATE NULL, status VARCHAR(10) NOT NULL
"""
PG_COLUMNS = """
  id BIGINT PRIMARY KEY, customer_id INT NOT NULL, sku TEXT NOT NULL, note TEXT NULL,
  amount DOUBLE PRECISION NULL, qty INT NOT NULL, price NUMERIC(12,2) NOT NULL, created TIMESTAMP NOT NULL,
  shipped DATE NULL, status TEXT NOT NULL
"""


def seed(db: str, rows: int) -> None:
    conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute(f"CREATE TABLE orders ({COLUMNS})")
        cur.execute(
            f"""INSERT INTO orders SELECT seq, seq % 50000, CONCAT('SKU-', seq % 9973),
              CASE seq % 10 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'tab\\there' WHEN 3 THEN 'NULL'
                   ELSE CONCAT('note ', seq) END,
              CASE WHEN seq % 17 = 0 THEN NULL ELSE seq / 7.0e0 END, seq % 13,
              (seq % 100000) / 100, TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND,
              CASE WHEN seq % 5 = 0 THEN NULL ELSE DATE '2024-01-01' + INTERVAL (seq % 365) DAY END,
              ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'returned')
            FROM seq_1_to_{rows}"""
        )
    conn.close()


def baseline(db: str, pg_url: str) -> dict[str, Any]:
    with psycopg.connect(pg_url, autocommit=True) as pg:
        pg.execute(f"DROP TABLE IF EXISTS orders_baseline; CREATE TABLE orders_baseline ({PG_COLUMNS})")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    pipe = (
        f"mysql -h127.0.0.1 -uroot --batch --skip-column-names -e 'SELECT * FROM orders' {db} | "
        f"psql -q '{pg_url}' -c \"COPY orders_baseline FROM STDIN WITH (NULL 'NULL')\""
    )
    subprocess.run(["bash", "-o", "pipefail", "-c", pipe], check=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with psycopg.connect(pg_url) as pg:
        (count,) = pg.execute("SELECT count(*) FROM orders_baseline").fetchone() or (0,)
    return {
        "seconds": round(seconds, 3),
        "rows": count,
        "rows_per_s": round(count / seconds),
        "peak_rss": after.ru_maxrss * 1024,
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
    }


def pipeline_run(
    runner: PipelineRunner, warehouse: str, table: str, base: Path, *, fuse: bool = True
) -> dict[str, Any]:
    p = PipelineBuilder(f"bench-{warehouse}", base_dir=base)
    raw = p.extract_sql(
        "orders_raw", connection="shop", table="orders", resources={"cpus": 2, "memory": "1G"}, fuse=fuse
    )
    p.load(
        "load",
        input=raw,
        table=table,
        mode="replace",
        warehouse=warehouse,
        resources={"cpus": 2, "memory": "1G"},
        fuse=fuse,
    )
    pipeline = p.build()
    start = time.perf_counter()
    run = runner.run(pipeline, poll=0.2)
    seconds = time.perf_counter() - start
    assert run.state == "succeeded", [(s.step, s.state, s.error) for s in run.steps]
    steps = {
        s.step: {
            "seconds": round(s.seconds or 0, 3),
            "rows": s.rows,
            "peak_rss": s.metrics.get("peak_rss"),
            "job_peak_memory": s.metrics.get("job_peak_memory"),
            "import_s": s.metrics.get("import_s"),
            "work_s": s.metrics.get("work_s"),
            "process_s": s.metrics.get("process_s"),
        }
        for s in run.steps
    }
    rows = run.step("load").rows or 0
    ext, load = run.step("orders_raw"), run.step("load")
    gap = (load.started_at or 0) - (ext.ended_at or 0) if load.job_id != ext.job_id else None
    return {
        "run": run.id,
        "fused": load.job_id == ext.job_id,
        "seconds": round(seconds, 3),
        "rows": rows,
        "rows_per_s": round(rows / seconds),
        "peak_rss": max(int(v["peak_rss"] or 0) for v in steps.values()),
        "step_to_step_gap_s": None if gap is None else round(gap, 4),
        "steps": steps,
    }


def chain_overhead(runner: PipelineRunner, base: Path, length: int = 8) -> dict[str, Any]:
    """A chain of tiny steps: what a dependency costs beyond the step's own work."""
    p = PipelineBuilder("bench-chain", base_dir=base)
    prev = p.transform_sql("s0", inputs=[], sql="SELECT 1 AS x")
    for i in range(1, length):
        prev = p.transform_sql(f"s{i}", inputs=[prev], sql=f"SELECT x + 1 AS x FROM s{i - 1}")
    run = runner.run(p.build(), poll=0.05)
    assert run.state == "succeeded"
    steps = run.steps
    gaps = [(b.started_at or 0) - (a.ended_at or 0) for a, b in itertools.pairwise(steps)]
    process = [float(s.metrics.get("process_s") or 0) for s in steps]
    job = [s.seconds or 0 for s in steps]
    return {
        "steps": length,
        "wall_s": round((steps[-1].ended_at or 0) - (steps[0].started_at or 0), 3),
        "dependency_gap_ms_median": round(sorted(gaps)[len(gaps) // 2] * 1000, 1),
        "dependency_gap_ms_max": round(max(gaps) * 1000, 1),
        "job_seconds_median": round(sorted(job)[len(job) // 2], 3),
        "step_process_s_median": round(sorted(process)[len(process) // 2], 3),
        "interpreter_and_imports_s_median": round(
            sorted(j - float(s.metrics.get("work_s") or 0) for j, s in zip(job, steps, strict=False))[
                len(job) // 2
            ],
            3,
        ),
    }


def open_client(settings: Any) -> tuple[Any, Any, str]:
    try:
        from freight.jobs.service import JobService
        from freight.runtime import create_runtime  # noqa: F401
    except ImportError:
        from tests.pipelines.jobclient_double import LocalJobClient

        return LocalJobClient(), None, "local test double (no runtime yet)"
    svc = JobService.open(settings)
    ctx = svc.running()
    ctx.__enter__()
    return svc, ctx, "JobService (embedded scheduler)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of every path (median reported)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "etl.json")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    db, pg_db = f"freight_bench_{tag}", f"freight_bench_{tag}"
    with psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True) as pg:
        pg.execute(f"CREATE DATABASE {pg_db}")
    pg_url = f"postgresql://postgres@127.0.0.1:5432/{pg_db}"
    tmp = Path(tempfile.mkdtemp(prefix="freight-bench-"))
    try:
        t = time.perf_counter()
        seed(db, args.rows)
        print(f"seeded {args.rows} rows in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        config = tmp / "freight.toml"
        config.write_text(
            f'[connections.shop]\nkind = "mariadb"\nurl = "mysql://root@127.0.0.1:3306/{db}"\n'
            f'[connections.pg]\nkind = "postgres"\nurl = "{pg_url}"\n'
        )
        settings = load_settings({"FREIGHT_HOME": str(tmp / "home")})
        settings.home.mkdir(parents=True)
        client, ctx, client_kind = open_client(settings)
        store = RunStore.open(settings.database_url)
        runner = PipelineRunner(client, store, settings, config_path=config)
        results: dict[str, Any] = {
            "rows": args.rows,
            "columns": 10,
            "client": client_kind,
            "cpus": os.cpu_count(),
        }
        paths: dict[str, Any] = {
            "baseline_mysql_psql_copy": lambda: baseline(db, pg_url),
            "pipeline_to_postgres": lambda: pipeline_run(runner, "pg", "orders", tmp),
            "pipeline_to_duckdb": lambda: pipeline_run(runner, "warehouse", "orders", tmp),
            "pipeline_to_postgres_unfused": lambda: pipeline_run(runner, "pg", "orders", tmp, fuse=False),
            "pipeline_to_duckdb_unfused": lambda: pipeline_run(
                runner, "warehouse", "orders", tmp, fuse=False
            ),
        }
        runs: dict[str, list[dict[str, Any]]] = {key: [] for key in paths}
        for i in range(args.repeat):
            for key, measure in paths.items():
                runs[key].append(measure())
                print(f"{i + 1}/{args.repeat} {key}", runs[key][-1], file=sys.stderr)
        for key, done in runs.items():
            median = sorted(done, key=lambda r: r["seconds"])[len(done) // 2]
            results[key] = {**median, "all_seconds": [r["seconds"] for r in done]}
        results["step_chain"] = chain_overhead(runner, tmp)
        print("chain", results["step_chain"], file=sys.stderr)
        base = results["baseline_mysql_psql_copy"]
        for key in paths:
            if key.startswith("pipeline_"):
                results[key]["time_vs_pipe"] = round(results[key]["seconds"] / base["seconds"], 2)
                results[key]["time_vs_pipe_each_round"] = [
                    round(a["seconds"] / b["seconds"], 2)
                    for a, b in zip(runs[key], runs["baseline_mysql_psql_copy"], strict=True)
                ]
        with psycopg.connect(pg_url) as pg:
            same = pg.execute(
                "SELECT count(*) FROM (SELECT * FROM orders EXCEPT SELECT * FROM orders_baseline) d"
            ).fetchone()
        results["pipeline_to_postgres"]["rows_differing_from_baseline"] = same[0] if same else None
        store.close()
        if ctx is not None:
            ctx.__exit__(None, None, None)
            client.close()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(json.dumps(results, indent=2))
    finally:
        conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        with psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True) as pg:
            pg.execute(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    main()
