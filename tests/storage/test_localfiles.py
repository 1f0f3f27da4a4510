"""LocalBlobs reads and writes a local ObjectStore's objects exactly where the store keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest

from freight.errors import NotFoundError, UserError
from freight.storage.localfiles import LocalBlobs, local_root
from freight.storage.objectstore import ObjectStore


def test_same_objects_as_the_object_store(tmp_path: Path) -> None:
    store = ObjectStore((tmp_path / "objects").as_uri())
    root = local_root(store.url)
    assert root == tmp_path / "objects"
    blobs = LocalBlobs(root)
    store.put_bytes("builds/cache/ab/abc.json", b"{}")
    assert blobs.get_bytes("builds/cache/ab/abc.json") == b"{}" and blobs.exists("builds/cache/ab/abc.json")
    blobs.put_bytes("a/b.bin", b"\x00\x01")
    assert store.get_bytes("a/b.bin") == b"\x00\x01"
    with pytest.raises(NotFoundError):
        blobs.get_bytes("a/missing")
    with pytest.raises(UserError):
        blobs.get_bytes("a/../../etc/passwd")


def test_only_plain_local_urls() -> None:
    assert local_root("file:///srv/objects") == Path("/srv/objects")
    assert local_root("file://localhost/srv/objects") == Path("/srv/objects")
    assert local_root("/srv/objects") == Path("/srv/objects")
    for url in ("s3://bucket/x", "file://host/x", "file:///a%20b", "memory://x"):
        assert local_root(url) is None
