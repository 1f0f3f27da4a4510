"""Outputs are regular files inside their folder: no symlink, device or path outside it is published,
cached or restored (a build that outputs a link to the store's database must not make it public)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from freight.builds.cache import CacheCheckFailed, CacheStore, TaskCache, pack, unpack
from freight.builds.outputs import find_outputs, scan_outputs
from freight.builds.releases import publish
from freight.builds.store import BuildStore
from freight.config import Settings
from freight.errors import UserError
from freight.storage.objectstore import ObjectStore
from tests.builds.test_store import store

__all__ = ["store"]

OUTPUTS = ["dist/**"]


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "freight.db"
    path.write_text("the store's secrets")
    return path


def package(tmp_path: Path) -> Path:
    pkg = tmp_path / "pkg"
    (pkg / "dist").mkdir(parents=True)
    (pkg / "dist" / "index.html").write_text("<html>ok</html>")
    return pkg


def test_links_and_fifos_are_not_outputs_but_are_named(tmp_path: Path, secret: Path) -> None:
    pkg = package(tmp_path)
    (pkg / "dist" / "db.sqlite").symlink_to(secret)
    (pkg / "dist" / "etc").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(pkg / "dist" / "pipe")
    files, other = scan_outputs(pkg, OUTPUTS)
    assert files == ["dist/index.html"] == find_outputs(pkg, OUTPUTS)
    assert other == ["dist/db.sqlite", "dist/etc", "dist/pipe"]


def test_an_output_folder_that_is_a_link_is_not_walked(tmp_path: Path, secret: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "dist").symlink_to(secret.parent, target_is_directory=True)
    assert scan_outputs(pkg, OUTPUTS) == ([], ["dist"])


def test_a_release_with_a_symlink_is_refused(
    store: BuildStore, store_settings: Settings, tmp_path: Path, secret: Path
) -> None:
    objects = ObjectStore((tmp_path / "objects").as_uri())
    pkg = package(tmp_path)
    (pkg / "dist" / "data.db").symlink_to(secret)
    with pytest.raises(UserError) as err:
        publish(objects, store, "web", pkg / "dist")
    assert "data.db is not a regular file" in str(err.value)
    assert store.releases("web") == [] and not list((tmp_path / "objects").rglob("*.json"))
    linked = tmp_path / "linked"
    linked.symlink_to(pkg / "dist", target_is_directory=True)
    with pytest.raises(UserError, match="is a symlink"):
        publish(objects, store, "web", linked)


def test_a_cache_archive_never_reads_through_a_link(tmp_path: Path, secret: Path) -> None:
    pkg = package(tmp_path)
    (pkg / "dist" / "x.js").symlink_to(secret)
    with pytest.raises(UserError, match="is a symlink"):
        pack(pkg, ["dist/x.js"], b"")


def _archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_restore_does_not_write_through_a_link_in_the_package(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "build").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (pkg / "build" / "x").symlink_to(outside, target_is_directory=True)  # a link the repository holds
    archive = _archive({"log": b"", "out/build/x/evil.js": b"pwned"})
    with pytest.raises(CacheCheckFailed, match="is a symlink"):
        unpack(archive, pkg, ["build/other/**"])
    assert list(outside.iterdir()) == []


def test_a_restore_replaces_a_link_at_its_target_instead_of_following_it(
    tmp_path: Path, secret: Path
) -> None:
    pkg = package(tmp_path)
    local = CacheStore(ObjectStore((tmp_path / "local").as_uri()), b"k" * 32, "local")
    cache = TaskCache(local, None)
    assert cache.save("h", "app#build", pkg, ["dist/index.html"], b"", 1.0) == []
    (pkg / "dist" / "index.html").unlink()
    (pkg / "dist" / "index.html").symlink_to(secret)
    assert cache.lookup("h", "app#build", pkg, ["dist/index.html"]).hit
    assert not (pkg / "dist" / "index.html").is_symlink()
    assert (pkg / "dist" / "index.html").read_text() == "<html>ok</html>"
    assert secret.read_text() == "the store's secrets"
