"""s3:// on a real S3 server (SeaweedFS): the object store, extract-files reading a glob of objects,
pipeline step data, the shared build cache, releases and log archives."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from freight.builds.cache import PREFIX, CacheStore, TaskCache
from freight.builds.releases import blob_key, load_manifest, publish
from freight.builds.store import BuildStore
from freight.config import Settings
from freight.db.engine import make_engine
from freight.jobs.logarchive import LogArchive
from freight.pipelines.datasets import read_dataset
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


def test_transform_sql_reads_each_s3_input_as_its_own(s3_env: str, tmp_path: Path) -> None:
    """Two inputs whose part files have the same names (part-00000.parquet): each is downloaded on
    its own. Before the fix the second overwrote the first in the step's scratch folder and both
    views read it: this union returned b twice, silently (a join of differently shaped inputs
    failed with a binder error)."""
    (tmp_path / "freight.toml").write_text("")
    (tmp_path / "p.yaml").write_text(
        "name: two\nsteps:\n"
        "  - {name: a, type: transform-sql, sql: \"SELECT 1 AS id, 'from a' AS note\"}\n"
        "  - {name: b, type: transform-sql, sql: \"SELECT 2 AS id, 'from b' AS note\"}\n"
        "  - name: both\n    type: transform-sql\n    inputs: [a, b]\n"
        "    sql: SELECT * FROM a UNION ALL SELECT * FROM b ORDER BY id\n"
    )
    root = "s3://data/runs-two"
    out = run_once(load_pipeline(tmp_path / "p.yaml"), tmp_path / "freight.toml", tmp_path / "home", root)
    assert out["both"]["rows"] == 2
    (run_id,) = {key.split("/")[0] for key in ObjectStore(root).list()}
    both = read_dataset(ObjectStore(f"{root}/{run_id}/both")).read_all()
    assert both.to_pylist() == [{"id": 1, "note": "from a"}, {"id": 2, "note": "from b"}]


def test_the_build_cache_on_s3_round_trips_and_rejects_tampering(s3_env: str, tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "dist").mkdir(parents=True)
    (pkg / "dist" / "index.html").write_text("<html>v1</html>")
    shared = CacheStore(ObjectStore("s3://data/cache"), b"k" * 32, "shared")
    TaskCache(None, shared).save("h1", "web#build", pkg, ["dist/index.html"], b"built\n", 1.0)
    (pkg / "dist" / "index.html").write_text("stale")
    found = TaskCache(None, shared).lookup("h1", "web#build", pkg, ["dist/**"])
    assert (
        found.hit and found.source == "shared" and found.entry is not None and found.entry.log == b"built\n"
    )
    assert (pkg / "dist" / "index.html").read_text() == "<html>v1</html>"
    # another node's cache, same store: a tampered archive is a reported miss, never restored
    TaskCache(None, shared).save("h2", "web#build", pkg, ["dist/index.html"], b"", 1.0)
    ObjectStore("s3://data/cache").put_bytes(f"{PREFIX}/h2/h2.tgz", b"tampered")  # the entry's archive
    missed = TaskCache(None, shared).lookup("h2", "web#build", pkg, ["dist/**"])
    assert not missed.hit and "does not match the signed digest" in missed.warnings[0]


def test_releases_on_s3_publish_once_and_read_back(s3_env: str, tmp_path: Path, settings: Settings) -> None:
    site = tmp_path / "site"
    (site / "assets").mkdir(parents=True)
    (site / "index.html").write_text("<html>hello</html>")
    (site / "assets" / "main-ABCD1234.js").write_text("console.log(1)\n" * 200)
    objects = ObjectStore("s3://data/releases")
    store = BuildStore(make_engine(settings.database_url))
    try:
        release, new = publish(objects, store, "web", site)
        again, new_again = publish(objects, store, "web", site)
        assert new and not new_again and again.id == release.id and release.files == 2
        manifest = load_manifest(objects, "web", release.id)
        entry = manifest.files["assets/main-ABCD1234.js"]
        assert entry.immutable and objects.exists(blob_key(entry.sha256))
        assert objects.get_bytes(blob_key(manifest.files["index.html"].sha256)) == b"<html>hello</html>"
    finally:
        store.close()


def test_log_archives_on_s3_are_read_by_range_once_the_local_file_is_gone(
    s3_env: str, settings: Settings
) -> None:
    archive = LogArchive(replace(settings, object_store_url="s3://data/objects"))
    path = settings.log_path("0123456789abcdef", 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"line one\nline two\n")
    assert archive.archive("0123456789abcdef", 1)
    path.unlink()  # another server, or FREIGHT_LOG_KEEP_LOCAL=false: only the archived copy is left
    assert archive.read("0123456789abcdef", 1) == b"line one\nline two\n"
    assert archive.read("0123456789abcdef", 1, offset=9, size=4) == b"line"
    archive.delete([("0123456789abcdef", 1)])
    assert archive.read("0123456789abcdef", 1) == b""
    assert not archive.archive("fedcba9876543210", 1)  # no local log: nothing to archive
