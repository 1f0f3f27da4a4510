"""publish-redis on the real Redis: a new version per run, an atomic alias switch, the old one expires."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from freight.errors import UserError
from freight.pipelines.loader import load_pipeline
from tests.pipelines.stepdriver import run_once

DB = 7  # a database number of these tests' own


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis(db=DB)
    keys = [name, *client.scan_iter(match=f"{name}:*")]
    client.delete(*keys)
    client.close()


def publish(tmp: Path, prefix: str, csv: str, fmt: str = "hash") -> dict[str, dict[str, object]]:
    (tmp / "data.csv").write_text(csv)
    (tmp / "freight.toml").write_text(
        f'[connections.cache]\nkind = "redis"\nurl = "redis://127.0.0.1:6379/{DB}"\n'
    )
    (tmp / "p.yaml").write_text(
        f"""
name: pub
steps:
  - {{name: users, type: extract-files, path: {tmp}/data.csv}}
  - {{name: publish, type: publish-redis, inputs: [users], connection: cache, prefix: {prefix},
      key: [id], format: {fmt}, keep_old: 60}}
"""
    )
    return run_once(load_pipeline(tmp / "p.yaml"), tmp / "freight.toml", tmp / "home", f"file://{tmp}/runs")


def test_a_new_version_is_switched_in_and_the_old_one_expires(tmp_path: Path, prefix: str) -> None:
    client = redis.Redis(db=DB, decode_responses=True)
    first = publish(tmp_path, prefix, "id,name,score\n1,ann,1.5\n2,,\n")["publish"]
    v1 = client.get(prefix)
    assert v1 == first["version"] and first["rows"] == 2
    assert client.hgetall(f"{prefix}:{v1}:1") == {"id": "1", "name": "ann", "score": "1.5"}
    assert client.hgetall(f"{prefix}:{v1}:2") == {"id": "2", "name": ""}  # a NULL is an absent field
    second = publish(tmp_path, prefix, "id,name,score\n1,bob,2.0\n")["publish"]
    v2 = client.get(prefix)
    assert v2 == second["version"] != v1 and second["replaced"] == v1
    assert client.hgetall(f"{prefix}:{v2}:1")["name"] == "bob"
    assert client.exists(f"{prefix}:{v2}:2") == 0
    assert 0 < client.ttl(f"{prefix}:{v1}:1") <= 60  # the old version still serves, for a while
    assert client.ttl(f"{prefix}:{v2}:1") == -1
    client.close()


def test_json_values(tmp_path: Path, prefix: str) -> None:
    client = redis.Redis(db=DB, decode_responses=True)
    out = publish(tmp_path, prefix, "id,name\n7,zed\n", fmt="json")["publish"]
    assert client.get(f"{prefix}:{out['version']}:7") == '{"id": 7, "name": "zed"}'
    client.close()


def test_a_key_column_the_input_lacks_is_named(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(UserError) as err:
        publish(tmp_path, prefix, "uid,name\n1,a\n")
    assert "steps.publish.key" in str(err.value)
    assert redis.Redis(db=DB).exists(prefix) == 0
