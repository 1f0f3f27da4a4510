from pathlib import Path

import pytest

from freight.errors import NotFoundError, UserError
from freight.storage.objectstore import ObjectStore


def test_put_get_list_delete(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path.as_uri())
    store.put_bytes("a/b/c.txt", b"hello")
    store.put_bytes("a/d.txt", b"x")
    assert store.get_bytes("a/b/c.txt") == b"hello"
    assert list(store.list("a")) == ["a/b/c.txt", "a/d.txt"]
    assert store.exists("a/d.txt")
    store.delete("a", recursive=True)
    assert not store.exists("a/d.txt")


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path.as_uri())
    store.put_bytes("k", b"one")
    store.put_bytes("k", b"two")
    assert store.get_bytes("k") == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


def test_missing_and_bad_keys(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path.as_uri())
    with pytest.raises(NotFoundError):
        store.get_bytes("nope")
    with pytest.raises(UserError):
        store.put_bytes("../escape", b"")
