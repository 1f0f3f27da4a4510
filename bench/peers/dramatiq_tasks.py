"""Dramatiq peer for bench/jobs.py: each message runs /bin/true in a subprocess and counts itself.

The worker runs as `dramatiq dramatiq_tasks --processes 2 --threads 1` with this folder on the path;
BENCH_REDIS names the broker and BENCH_TAG the namespace and counter (unique per run).
"""

from __future__ import annotations

import os
import subprocess

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
TAG = os.environ.get("BENCH_TAG", "bench")

broker = RedisBroker(url=URL, namespace=f"{TAG}-dramatiq")
dramatiq.set_broker(broker)

_client: tuple[int, redis.Redis] | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), redis.Redis.from_url(URL))
    return _client[1]


@dramatiq.actor(max_retries=0, queue_name="bench")
def run_true(counter: str) -> None:
    subprocess.run(["/bin/true"], check=True)
    _redis().incr(counter)
