"""Celery peer for bench/jobs.py: each task runs /bin/true in a subprocess and counts itself in Redis.

The worker runs as `celery -A celery_tasks worker --pool prefork --concurrency 2` with this folder on
the path; BENCH_REDIS names the broker and BENCH_TAG the queue and counter (unique per run).
"""

from __future__ import annotations

import os
import subprocess

import redis
from celery import Celery

URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
TAG = os.environ.get("BENCH_TAG", "bench")

app = Celery("bench_celery", broker=URL)
app.conf.update(
    task_ignore_result=True,
    task_default_queue=f"{TAG}-celery",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_client: tuple[int, redis.Redis] | None = None


def _redis() -> redis.Redis:
    """One connection per worker process (a connection made before the fork must not be shared)."""
    global _client
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), redis.Redis.from_url(URL))
    return _client[1]


@app.task(name="run_true")
def run_true(counter: str) -> None:
    subprocess.run(["/bin/true"], check=True)
    _redis().incr(counter)
