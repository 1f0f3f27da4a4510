"""The task cache: restore with log replay, signatures, loud shared-store failures, stale outputs cleared."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from freight.builds.cache import CacheStore, TaskCache
from freight.builds.outputs import OutputsState
from freight.storage.objectstore import ObjectStore

KEY = b"k" * 32
OUTPUTS = ["dist/**"]


def make_outputs(pkg: Path) -> list[str]:
    (pkg / "dist" / "assets").mkdir(parents=True, exist_ok=True)
    (pkg / "dist" / "index.html").write_text("<html>v1</html>")
    (pkg / "dist" / "assets" / "main-ABCD1234.js").write_text("console.log(1)")
    return ["dist/assets/main-ABCD1234.js", "dist/index.html"]


def stores(tmp_path: Path, key: bytes = KEY) -> tuple[CacheStore, CacheStore]:
    local = CacheStore(ObjectStore((tmp_path / "local").as_uri()), key, "local")
    shared = CacheStore(ObjectStore((tmp_path / "shared").as_uri()), key, "shared")
    return local, shared


def test_roundtrip_replays_the_log_and_clears_stale_outputs(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    files = make_outputs(pkg)
    local, shared = stores(tmp_path)
    cache = TaskCache(local, shared)
    assert cache.save("h1", "app#build", pkg, files, b"built it\n", 1.5) == []
    shutil.rmtree(pkg / "dist")
    (pkg / "dist").mkdir()
    (pkg / "dist" / "stale-OLD12345.js").write_text("from an earlier build")
    found = cache.lookup("h1", "app#build", pkg, OUTPUTS)
    assert found.hit and found.source == "local" and found.warnings == []
    assert found.entry is not None and found.entry.log == b"built it\n" and found.entry.duration == 1.5
    assert sorted(p.relative_to(pkg).as_posix() for p in (pkg / "dist").rglob("*") if p.is_file()) == files
    assert cache.lookup("other", "app#build", pkg, OUTPUTS).hit is False


def test_shared_hit_is_copied_into_the_local_cache(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    files = make_outputs(pkg)
    local, shared = stores(tmp_path)
    TaskCache(None, shared).save("h2", "app#build", pkg, files, b"log", 2.0)
    cache = TaskCache(local, shared)
    first = cache.lookup("h2", "app#build", pkg, OUTPUTS)
    assert first.source == "shared"
    assert cache.lookup("h2", "app#build", pkg, OUTPUTS).source == "local"


def test_tampered_archive_is_a_reported_miss(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    files = make_outputs(pkg)
    _, shared = stores(tmp_path)
    cache = TaskCache(None, shared)
    cache.save("h3", "app#build", pkg, files, b"log", 1.0)
    archive = tmp_path / "shared" / "builds" / "cache" / "h3"[:2] / "h3.tgz"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    (pkg / "dist" / "index.html").write_text("<html>current</html>")
    found = cache.lookup("h3", "app#build", pkg, OUTPUTS)
    assert not found.hit
    assert found.warnings and "does not match the signed digest" in found.warnings[0]
    assert (pkg / "dist" / "index.html").read_text() == "<html>current</html>"  # nothing restored


def test_tampered_metadata_or_foreign_key_is_a_reported_miss(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    files = make_outputs(pkg)
    _, shared = stores(tmp_path)
    TaskCache(None, shared).save("h4", "app#build", pkg, files, b"log", 1.0)
    meta_path = tmp_path / "shared" / "builds" / "cache" / "h4" / "h4.json"
    meta = json.loads(meta_path.read_text())
    meta["duration"] = 0.0
    meta_path.write_text(json.dumps(meta))
    found = TaskCache(None, shared).lookup("h4", "app#build", pkg, OUTPUTS)
    assert not found.hit and "signature does not match" in found.warnings[0]
    TaskCache(None, shared).save("h5", "app#build", pkg, files, b"log", 1.0)
    _, other_key = stores(tmp_path, key=b"another machine's key")
    foreign = TaskCache(None, other_key).lookup("h5", "app#build", pkg, OUTPUTS)
    assert not foreign.hit and "signature" in foreign.warnings[0]


def test_shared_store_failures_are_loud(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    files = make_outputs(pkg)
    local, shared = stores(tmp_path)
    # The shared store's folder turns into a file: every read and write now fails for real.
    shutil.rmtree(tmp_path / "shared")
    (tmp_path / "shared").write_text("not a folder")
    cache = TaskCache(local, shared)
    warnings = cache.save("h6", "app#build", pkg, files, b"log", 1.0)
    assert len(warnings) == 1 and "could not write to the shared cache" in warnings[0]
    found = cache.lookup("h7", "app#build", pkg, OUTPUTS)
    assert not found.hit and "shared cache unavailable" in found.warnings[0]
    assert cache.lookup("h6", "app#build", pkg, OUTPUTS).source == "local"  # the local write still happened


def test_entries_are_written_atomically(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    files = make_outputs(pkg)
    local, _ = stores(tmp_path)
    TaskCache(local, None).save("h8", "app#build", pkg, files, b"log", 1.0)
    written = sorted(p.name for p in (tmp_path / "local").rglob("*") if p.is_file())
    assert written == ["h8.json", "h8.tgz"]


@pytest.mark.parametrize("name", ["../escape", "/abs"])
def test_archives_with_unsafe_paths_are_rejected(tmp_path: Path, name: str) -> None:
    import hashlib
    import io
    import tarfile

    from freight.builds.signing import sign

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("out/" + name)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    archive = buffer.getvalue()
    store = ObjectStore((tmp_path / "s").as_uri())
    meta = {"hash": "h9", "task": "t", "files": [], "duration": 0, "created_at": 0}
    meta["archive_sha256"] = hashlib.sha256(archive).hexdigest()
    meta["signature"] = sign(KEY, meta)
    store.put_bytes("builds/cache/h9/h9.tgz", archive)
    store.put_bytes("builds/cache/h9/h9.json", json.dumps(meta).encode())
    found = TaskCache(CacheStore(store, KEY, "local"), None).lookup("h9", "t", tmp_path / "pkg", OUTPUTS)
    assert not found.hit and "unsafe path" in found.warnings[0]


def archive_of(tmp_path: Path, store: str, task_hash: str) -> Path:
    return tmp_path / store / "builds" / "cache" / task_hash[:2] / f"{task_hash}.tgz"


def test_outputs_in_place_are_not_restored(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    files = make_outputs(pkg)
    local, _ = stores(tmp_path)
    cache = TaskCache(local, None, state=OutputsState(tmp_path / "state.json"))
    cache.save("h7", "app#build", pkg, files, b"built it\n", 1.5)
    archive_of(tmp_path, "local", "h7").unlink()  # a restore would have to read it
    found = cache.lookup("h7", "app#build", pkg, OUTPUTS)
    assert found.hit and found.in_place and found.warnings == []
    assert found.entry is not None and found.entry.log == b"built it\n" and found.entry.files == files


def test_tampered_or_stale_outputs_are_restored_over(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    files = make_outputs(pkg)
    local, _ = stores(tmp_path)
    cache = TaskCache(local, None, state=OutputsState(tmp_path / "state.json"))
    cache.save("h8", "app#build", pkg, files, b"log", 1.0)
    (pkg / "dist" / "index.html").write_text("<html>tampered</html>")
    found = cache.lookup("h8", "app#build", pkg, OUTPUTS)
    assert found.hit and not found.in_place
    assert (pkg / "dist" / "index.html").read_text() == "<html>v1</html>"
    (pkg / "dist" / "assets" / "stale-OLD00001.js").write_text("an earlier build")
    found = cache.lookup("h8", "app#build", pkg, OUTPUTS)
    assert found.hit and not found.in_place
    assert sorted(p.relative_to(pkg).as_posix() for p in (pkg / "dist").rglob("*") if p.is_file()) == files
    assert cache.lookup("h8", "app#build", pkg, OUTPUTS).in_place  # as restored: in place


def test_an_entry_without_a_manifest_is_restored(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    files = make_outputs(pkg)
    local, _ = stores(tmp_path)
    TaskCache(local, None).save("h9", "app#build", pkg, files, b"log", 1.0)
    meta_path = archive_of(tmp_path, "local", "h9").with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    del meta["manifest"], meta["signature"], meta["archive_sha256"], meta["archive_size"]
    local.write(meta, archive_of(tmp_path, "local", "h9").read_bytes())  # as an older freight wrote it
    cache = TaskCache(local, None, state=OutputsState(tmp_path / "state.json"))
    found = cache.lookup("h9", "app#build", pkg, OUTPUTS)
    assert found.hit and not found.in_place
