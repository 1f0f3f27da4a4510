"""Listing jobs at scale: one page of `jobs ls`, GET /api/v1/jobs and the UI's jobs page with 100,000
jobs in the store, on SQLite and on PostgreSQL.

The store is filled through JobService.submit_many (1,000 a transaction); 90% of the jobs are then
marked succeeded and 1% failed in SQL (what a day of work leaves), and every 100th job carries the
label run=r<n % 10>. Each figure is the median of `--repeat` reads of one page (100 jobs; the CLI
shows 50) after a warm-up read, for: no filter, state=queued (9%), state=failed (1%),
state=succeeded (90%), queue=other (5%), queue=bench (95%), both queue=bench and state=succeeded,
a label (0.1%), and a page deep in the list (a cursor half-way down). Columns:

  raw       the same page straight from the driver (sqlite3 / psycopg, one SELECT): the floor
  service   JobService.list_jobs (what the CLI's `jobs ls` and the API call)
  api       GET /api/v1/jobs through the whole app (ASGI, in process: no socket)
  ui        GET /jobs, the HTML page, likewise
  cli       `freight jobs ls` as a process, start-up included (SQLite only)
  no-0015   service, with migration 0015's indexes swapped back for the old ones (same store)

Prints a table and writes bench/results/listing.json.

    python bench/listing.py [--jobs 100000] [--repeat 15] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
PG_ADMIN = os.environ.get("FREIGHT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PAGE = 100


def fill(svc: Any, count: int) -> None:
    from sqlalchemy import update

    from freight.db.schema import jobs
    from freight.jobs.spec import parse_spec

    chunk = 1000
    for start in range(0, count, chunk):
        specs = []
        for n in range(start, min(count, start + chunk)):
            body: dict[str, Any] = {"command": ["/bin/true"], "queue": "other" if n % 20 == 0 else "bench"}
            if n % 100 == 0:
                body["labels"] = {"run": f"r{n // 100 % 10}"}
            specs.append(parse_spec(body))
        svc.submit_many(specs)
    with svc.engine.begin() as conn:
        ids = [r.id for r in conn.execute(jobs.select().with_only_columns(jobs.c.id).order_by(jobs.c.id))]
        done = [i for n, i in enumerate(ids) if n % 100 < 90]
        failed = [i for n, i in enumerate(ids) if n % 100 == 95]
        for part in range(0, len(done), 5000):
            conn.execute(
                update(jobs).where(jobs.c.id.in_(done[part : part + 5000])).values(state="succeeded")
            )
        conn.execute(update(jobs).where(jobs.c.id.in_(failed)).values(state="failed"))


def timed(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 2)


def middle_id(svc: Any) -> str:
    from sqlalchemy import func, select

    from freight.db.schema import jobs

    with svc.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(jobs)).scalar_one()
        return str(
            conn.execute(
                select(jobs.c.id).order_by(jobs.c.id.desc()).offset(total // 2).limit(1)
            ).scalar_one()
        )


def raw_page(svc: Any, where: str, params: dict[str, Any]) -> Callable[[], Any]:
    """The page from the driver: the floor any listing could reach on this store."""
    sql = f"SELECT * FROM jobs {where} ORDER BY jobs.id DESC LIMIT {PAGE}"

    def run() -> Any:
        raw = svc.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if svc.engine.dialect.name == "sqlite":
                cursor.execute(sql.replace("%(", ":").replace(")s", ""), params)
            else:
                cursor.execute(sql, params)
            return cursor.fetchall()
        finally:
            raw.close()

    return run


CASES: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("newest", {}, "", {}),
    ("state=queued", {"state": "queued"}, "WHERE state = %(s)s", {"s": "queued"}),
    ("state=failed", {"state": "failed"}, "WHERE state = %(s)s", {"s": "failed"}),
    ("state=succeeded", {"state": "succeeded"}, "WHERE state = %(s)s", {"s": "succeeded"}),
    ("queue=other", {"queue": "other"}, "WHERE queue = %(q)s", {"q": "other"}),
    ("queue=bench", {"queue": "bench"}, "WHERE queue = %(q)s", {"q": "bench"}),
    (
        "bench+succeeded",
        {"queue": "bench", "state": "succeeded"},
        "WHERE queue = %(q)s AND state = %(s)s",
        {"q": "bench", "s": "succeeded"},
    ),
    (
        "label run=r3",
        {"label": {"run": "r3"}},
        "JOIN job_labels l ON l.job_id = jobs.id WHERE l.key = %(k)s AND l.value = %(v)s",
        {"k": "run", "v": "r3"},
    ),
]


def swap_indexes(svc: Any, *, to_old: bool) -> None:
    statements = (
        [
            "DROP INDEX ix_jobs_state_id",
            "DROP INDEX ix_jobs_queue_state_id",
            "DROP INDEX ix_jobs_queue_id",
            "CREATE INDEX ix_jobs_state ON jobs (state)",
            "CREATE INDEX ix_jobs_queue_state ON jobs (queue, state)",
        ]
        if to_old
        else [
            "DROP INDEX ix_jobs_state",
            "DROP INDEX ix_jobs_queue_state",
            "CREATE INDEX ix_jobs_state_id ON jobs (state, id)",
            "CREATE INDEX ix_jobs_queue_state_id ON jobs (queue, state, id)",
            "CREATE INDEX ix_jobs_queue_id ON jobs (queue, id)",
        ]
    )
    with svc.engine.begin() as conn:
        for sql in statements:
            conn.exec_driver_sql(sql)
        if svc.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE jobs")


def measure(store: str, count: int, repeat: int) -> list[dict[str, Any]]:
    from freight.config import load_settings
    from freight.jobs.service import JobService
    from freight.server import create_app
    from freight.server.tokens import create_token

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    home = tempfile.mkdtemp(prefix="freight-bench-listing-")
    env = {"FREIGHT_HOME": home, "FREIGHT_CGROUP_PARENT": f"freight-bench-listing-{os.getpid()}"}
    drop = None
    if store == "postgres":
        import psycopg

        name = f"freight_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        env["FREIGHT_DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"

        def drop() -> None:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    rows: list[dict[str, Any]] = []
    try:
        svc = JobService.open(load_settings(env))
        started = time.perf_counter()
        fill(svc, count)
        print(f"{store}: {count} jobs stored in {time.perf_counter() - started:.1f} s", flush=True)
        with svc.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE" if store == "sqlite" else "ANALYZE jobs")
        deep = middle_id(svc)
        _, token = create_token(svc.engine, "bench", admin=True)
        headers = {"Authorization": f"Bearer {token}"}
        app = create_app(service=svc)
        with TestClient(app) as client:
            client.cookies.set("freight_token", token)
            cases = [*CASES, ("deep page", {"cursor": deep}, "WHERE jobs.id < %(c)s", {"c": deep})]
            for case, filters, where, params in cases:
                query: dict[str, Any] = {k: v for k, v in filters.items() if k != "label"}
                if "label" in filters:
                    query["label"] = [f"{k}={v}" for k, v in filters["label"].items()]
                ui_query = {**query, "label": query["label"][0]} if "label" in query else query
                row = {
                    "store": store,
                    "jobs": count,
                    "case": case,
                    "raw_ms": timed(raw_page(svc, where, params), repeat),
                    "service_ms": timed(lambda f=filters: svc.list_jobs(limit=PAGE, **f), repeat),
                    "api_ms": timed(
                        lambda q=query: client.get(
                            "/api/v1/jobs", params={**q, "limit": PAGE}, headers=headers
                        ).raise_for_status(),
                        repeat,
                    ),
                    "ui_ms": timed(
                        lambda q=ui_query: client.get("/jobs", params=q).raise_for_status(), repeat
                    ),
                }
                rows.append(row)
            if store == "sqlite":
                cli = [sys.executable, "-m", "freight.cli.main", "jobs", "ls"]
                for case, args in [("newest", []), ("state=failed", ["--state", "failed"])]:
                    run = lambda a=args: subprocess.run(  # noqa: E731
                        [*cli, *a], env={**os.environ, **env}, check=True, capture_output=True
                    )
                    for row in rows:
                        if row["case"] == case:
                            row["cli_ms"] = timed(run, max(3, repeat // 3))
            swap_indexes(svc, to_old=True)
            for row, (_, filters, _, _) in zip(rows, cases, strict=True):
                # a label filter reads job_labels either way (0015 made that table): not compared
                row["no_0015_service_ms"] = (
                    None
                    if "label" in filters
                    else timed(lambda f=filters: svc.list_jobs(limit=PAGE, **f), repeat)
                )
            swap_indexes(svc, to_old=False)
        svc.close()
    finally:
        if drop is not None:
            drop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    rows = []
    for store in ["sqlite", *([] if args.no_postgres else ["postgres"])]:
        for row in measure(store, args.jobs, args.repeat):
            rows.append(row)
            print(
                f"{row['store']:<8} {row['case']:<16} raw {row['raw_ms']:7.2f}  "
                f"service {row['service_ms']:7.2f}  "
                f"api {row['api_ms']:7.2f}  ui {row['ui_ms']:7.2f}  "
                f"cli {row.get('cli_ms') or float('nan'):7.2f}  "
                f"no-0015 {row['no_0015_service_ms'] or float('nan'):8.2f}  ms",
                flush=True,
            )
    result = {
        "benchmark": "listing",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "page": PAGE,
        "repeat": args.repeat,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "listing.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'listing.json'}")


if __name__ == "__main__":
    main()
