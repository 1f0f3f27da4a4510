"""Submit latency through the HTTP API under 50 concurrent clients, beside a trivial FastAPI endpoint
served the same way in the same run.

Each server runs in its own process under uvicorn (one worker, as `freight up` runs it); the clients
are 50 keep-alive connections from asyncio tasks in this process (a minimal HTTP/1.1 client, so the
client costs little), each sending requests back to back. Rows:

  trivial     a bare FastAPI app: POST /echo parses a small JSON body and returns it
  sqlite      freight's POST /api/v1/jobs on SQLite, API only (no scheduler)
  sqlite+run  the same with the scheduler running every submitted job (/bin/true), as `freight up`
  postgres    freight's POST /api/v1/jobs on PostgreSQL (a database of its own), API only

The one-client rows send requests back to back on one keep-alive connection (sequential latency);
the others use `--clients` connections at once.

Prints a table and writes bench/results/api.json.

    python bench/api.py [--clients 50] [--requests 40] [--sequential 1000] [--no-postgres] [--only sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).parent / "results"
PG_ADMIN = os.environ.get("FREIGHT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SPEC = {"command": ["/bin/true"], "resources": {"cpus": 0.05, "memory": "16M"}, "queue": "bench"}


# --- the servers (child processes) ------------------------------------------------------------------


def serve(kind: str, port: int, home: str, database: str | None) -> None:
    import logging

    import uvicorn

    logging.disable(logging.INFO)
    if kind == "trivial":
        from fastapi import FastAPI

        app: Any = FastAPI()

        @app.post("/echo")
        async def echo(body: dict[str, Any]) -> dict[str, Any]:
            return body

    else:
        from freight.config import load_settings
        from freight.jobs.service import JobService
        from freight.server import create_app

        env = {"FREIGHT_HOME": home, "FREIGHT_CGROUP_PARENT": f"freight-bench-{os.getpid()}"}
        if database:
            env["FREIGHT_DATABASE_URL"] = database
        service = JobService.open(load_settings(env))
        app = create_app(service=service, scheduler=kind.endswith("+run"))
    from freight.server.gctune import tune_for_serving
    from freight.server.serve import HTTP, LOOP

    tune_for_serving()  # as `freight up` does once it has started

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop=LOOP, http=HTTP)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(kind: str, home: str, database: str | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, __file__, "--serve", kind, str(port), home, database or ""]
    proc = subprocess.Popen(args)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/openapi.json", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def admin_token(home: str, database: str | None) -> str:
    from freight.config import load_settings
    from freight.jobs.service import JobService
    from freight.server.tokens import create_token

    env = {"FREIGHT_HOME": home}
    if database:
        env["FREIGHT_DATABASE_URL"] = database
    with JobService.open(load_settings(env)) as svc:
        return create_token(svc.engine, "bench", admin=True)[1]


# --- the clients ------------------------------------------------------------------------------------


async def load(url: str, path: str, headers: dict[str, str], clients: int, requests: int) -> dict[str, Any]:
    """`clients` keep-alive connections, each sending `requests` requests back to back. The client
    is a few lines of asyncio (no HTTP library), so it costs little next to the server's work."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(SPEC).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{head}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def client(n: int) -> list[float]:
        reader, writer = await asyncio.open_connection(host, int(port))
        out = []
        try:
            for _ in range(n):
                started = time.perf_counter()
                writer.write(request)
                response_head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", response_head)
                payload = await reader.readexactly(int(length.group(1)) if length else 0)
                out.append(time.perf_counter() - started)
                status = int(response_head[9:12])
                if status not in (200, 201):
                    raise RuntimeError(f"{path}: {status} {payload[:200]!r}")
        finally:
            writer.close()
        return out

    await asyncio.gather(*(client(2) for _ in range(clients)))  # warm up: imports, caches, pools
    started = time.perf_counter()
    per_client = await asyncio.gather(*(client(requests) for _ in range(clients)))
    wall = time.perf_counter() - started
    latencies = sorted(s * 1000 for batch in per_client for s in batch)
    return {
        "requests": len(latencies),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(latencies[-1], 2),
        "per_s": round(len(latencies) / wall, 1),
    }


def remove_cgroups(parent: str) -> None:
    """The server's cgroup slots go with it (only the row that ran jobs made any)."""
    from freight.runtime.cgroups import CgroupUnavailable, open_cgroups
    from freight.runtime.slots import SlotPool

    with contextlib.suppress(CgroupUnavailable):
        SlotPool(open_cgroups(parent)).destroy()


def percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def pg_database() -> tuple[str, Any]:
    import psycopg

    name = f"freight_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", drop


def run_row(kind: str, clients: int, requests: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="freight-bench-api-") as home:
        database, drop = pg_database() if kind == "postgres" else (None, None)
        try:
            headers: dict[str, str] = {}
            path = "/echo"
            if kind != "trivial":
                headers = {"Authorization": f"Bearer {admin_token(home, database)}"}
                path = "/api/v1/jobs"
            proc, url = start(kind, home, database)
            try:
                row = asyncio.run(load(url, path, headers, clients, requests))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
                remove_cgroups(f"freight-bench-{proc.pid}")
        finally:
            if drop is not None:
                drop()
    return {"server": kind, **row}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] or None)
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40, help="per client")
    parser.add_argument("--sequential", type=int, default=1000, help="requests of the one-client rows")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--only", nargs="*", help="server kinds to run (default: all)")
    args = parser.parse_args()
    kinds = ["trivial", "sqlite", "sqlite+run", *([] if args.no_postgres else ["postgres"])]
    plan = [(kind, 1, args.sequential) for kind in ("trivial", "sqlite")]
    plan += [(kind, args.clients, args.requests) for kind in kinds]
    rows = []
    for kind, clients, requests in plan:
        if args.only and kind not in args.only:
            continue
        row = run_row(kind, clients, requests)
        row["clients"] = clients
        rows.append(row)
        print(
            f"{kind:<11} {clients:3d} client{'s' if clients > 1 else ' '}  mean {row['mean_ms']:7.2f} ms  "
            f"p50 {row['p50_ms']:7.2f} ms  "
            f"p99 {row['p99_ms']:7.2f} ms  max {row['max_ms']:7.2f} ms  {row['per_s']:7.1f} req/s  "
            f"(n={row['requests']})",
            flush=True,
        )
    result = {
        "benchmark": "api",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "clients": args.clients,
        "requests_per_client": args.requests,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "api.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'api.json'}")


if __name__ == "__main__":
    main()
