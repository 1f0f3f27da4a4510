"""publish-redis: serve a table from Redis, swapping versions atomically.

Rows are written (pipelined, one round trip per batch) under a NEW version, `PREFIX:VERSION:KEY`, as
hashes (one field per non-NULL column) or as JSON strings. Only when every key is written does
`SET PREFIX VERSION GET` point the alias at the new version, in one atomic command that also returns
the version it replaced. The old version's keys then get `keep_old` seconds to live, so a reader that
resolved the alias just before the switch can finish; they are never rewritten, so no reader ever
sees a mix of two versions. Readers do `GET PREFIX` then `HGETALL PREFIX:VERSION:KEY`.

The version is the run id, so a rerun of the same run rewrites the same keys and keeps them live.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from freight.connectors.connections import redact
from freight.errors import TerminalError, UserError
from freight.pipelines.datasets import read_dataset
from freight.pipelines.step import StepContext

if TYPE_CHECKING:
    import redis


def publish_redis(ctx: StepContext) -> None:
    import redis as redis_lib

    from freight.pipelines.steps.incremental import manifest

    cfg = ctx.config
    conn = ctx.connections().get(cfg["connection"], where=f"steps.{ctx.name}.connection")
    if conn.kind != "redis":
        raise UserError(
            f"connection {conn.name!r} is {conn.kind}, not redis",
            where=f"steps.{ctx.name}.connection",
            hint='publish-redis needs kind = "redis", url = "redis://host:6379/0"',
        )
    reader = read_dataset(
        ctx.input_store(next(iter(ctx.inputs))), batch_size=int(cfg.get("batch_size") or 10_000)
    )
    key_columns = list(cfg["key"])
    missing = [c for c in key_columns if c not in reader.schema.names]
    if missing:
        raise UserError(
            f"steps.{ctx.name}.key: column {missing[0]!r} is not in the input",
            hint=f"columns: {reader.schema.names}",
        )
    prefix, version = str(cfg["prefix"]), str(manifest(ctx)["run_id"])
    client: redis.Redis = redis_lib.Redis.from_url(conn.resolved_url())
    try:
        rows = write_version(client, reader, prefix, version, key_columns, cfg.get("format", "hash"))
        old = switch_alias(client, prefix, version, keep_old=float(cfg.get("keep_old", 300.0)))
    except redis_lib.RedisError as exc:
        raise TerminalError(f"redis {conn.name!r}: {redact(str(exc))}") from None
    finally:
        client.close()
    ctx.result.update({"rows": rows, "prefix": prefix, "version": version, "replaced": old})


def write_version(
    client: redis.Redis, batches: Any, prefix: str, version: str, key_columns: list[str], fmt: str
) -> int:
    rows = 0
    base = f"{prefix}:{version}:"
    for batch in batches:
        pipe = client.pipeline(transaction=False)
        for row in batch.to_pylist():
            key = base + ":".join(_text(row[c]) for c in key_columns)
            if fmt == "json":
                pipe.set(key, json.dumps(row, default=_json_default))
            else:
                fields = {k: _text(v) for k, v in row.items() if v is not None}
                pipe.delete(key)
                if fields:
                    pipe.hset(key, mapping=fields)
            rows += 1
        pipe.execute()
    return rows


def switch_alias(client: redis.Redis, prefix: str, version: str, *, keep_old: float) -> str | None:
    """Point PREFIX at `version` atomically; give the replaced version's keys `keep_old` to live."""
    raw = client.set(prefix, version, get=True)
    old = raw.decode() if isinstance(raw, bytes) else raw
    if old and old != version:
        expire_version(client, prefix, str(old), keep_old)
    return str(old) if old else None


def expire_version(client: redis.Redis, prefix: str, version: str, seconds: float) -> int:
    count = 0
    pipe = client.pipeline(transaction=False)
    for key in _scan(client, f"{_glob_escape(prefix)}:{_glob_escape(version)}:*"):
        if seconds <= 0:
            pipe.delete(key)
        else:
            pipe.expire(key, max(1, int(seconds)))
        count += 1
        if count % 10_000 == 0:
            pipe.execute()
    pipe.execute()
    return count


def _scan(client: redis.Redis, pattern: str) -> Iterator[bytes]:
    yield from client.scan_iter(match=pattern, count=1000)


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
