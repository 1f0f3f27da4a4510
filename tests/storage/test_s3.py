"""s3:// on a real S3 server (SeaweedFS): the object store, and extract-files reading a glob of objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from freight.pipelines.loader import load_pipeline
from freight.storage.objectstore import ObjectStore
from tests.pipelines.stepdriver import run_once
from tests.storage.seaweed import KEY, SECRET, seaweed_s3


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with seaweed_s3() as endpoint:
        yield endpoint


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """What a step job would be given: botocore reads the endpoint and keys from the environment."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3_endpoint


def test_the_object_store_on_s3(s3_env: str) -> None:
    store = ObjectStore("s3://data/objects")
    store.put_bytes("a/one.txt", b"1")
    store.put_bytes("a/two.txt", b"22")
    assert store.get_bytes("a/two.txt") == b"22" and store.size("a/two.txt") == 2
    assert sorted(store.list("a")) == ["a/one.txt", "a/two.txt"]
    assert store.local_path("a/one.txt") is None


def test_extract_files_reads_an_s3_glob(s3_env: str, tmp_path: Path) -> None:
    store = ObjectStore("s3://data/in")
    store.put_bytes("2026-01-01.csv", b"id,note\n1,a\n2,\n")
    store.put_bytes("2026-01-02.csv", b'id,note\n3,"tab\there"\n')
    store.put_bytes("skip.json", b"{}")
    (tmp_path / "freight.toml").write_text(
        f'[connections.warehouse]\nkind = "duckdb"\npath = "{tmp_path}/wh.duckdb"\n'
    )
    (tmp_path / "p.yaml").write_text(
        "name: s3\nsteps:\n"
        "  - {name: files, type: extract-files, path: 's3://data/in/*.csv'}\n"
        "  - {name: load, type: load, inputs: [files], table: t}\n"
    )
    # the step datasets live on S3 too, as they do with an s3:// object store
    out = run_once(
        load_pipeline(tmp_path / "p.yaml"), tmp_path / "freight.toml", tmp_path / "home", "s3://data/runs"
    )
    assert out["files"]["rows"] == 3 and out["files"]["sources"] == 2
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    assert con.execute("SELECT id, note FROM t ORDER BY id").fetchall() == [
        (1, "a"),
        (2, ""),
        (3, "tab\there"),
    ]
    con.close()
