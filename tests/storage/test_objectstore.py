import subprocess
import sys
import uuid
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


def test_put_file_links_on_the_same_filesystem_and_replaces_atomically(tmp_path: Path) -> None:
    store = ObjectStore((tmp_path / "store").as_uri())
    source = tmp_path / "source.log"
    source.write_bytes(b"one")
    store.put_file("logs/a.log", source, link=True)
    target = store.local_path("logs/a.log")
    assert target is not None and target.stat().st_ino == source.stat().st_ino
    other = tmp_path / "other.log"
    other.write_bytes(b"two")
    store.put_file("logs/a.log", other, link=True)  # an existing key: replaced, no temp file left
    assert store.get_bytes("logs/a.log") == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.log"]
    store.put_file("logs/b.log", source)  # without link: a copy
    assert store.local_path("logs/b.log").stat().st_ino != source.stat().st_ino  # type: ignore[union-attr]


@pytest.mark.parametrize("where", ["local", "memory"])
def test_get_range_and_delete_many(tmp_path: Path, where: str) -> None:
    """Also on fsspec's in-memory filesystem, which takes the path S3 takes (not local)."""
    url = tmp_path.as_uri() if where == "local" else f"memory://freight-test-{uuid.uuid4().hex}"
    store = ObjectStore(url)
    assert store.local is (where == "local")
    store.put_bytes("logs/k", b"0123456789")
    assert store.get_range("logs/k", 3) == b"3456789"
    assert store.get_range("logs/k", 3, 5) == b"34"
    assert store.get_range("logs/k", 10) == b""
    with pytest.raises(NotFoundError):
        store.get_range("nope", 0)
    store.put_bytes("logs/j", b"")
    store.delete_many(["never-there", "logs/k", "logs/j"])
    assert list(store.list()) == []


def test_a_local_store_reads_and_copies_without_fsspec(tmp_path: Path) -> None:
    """Reads, sizes, ranges, copies out and copies in on the embedded store are plain file calls:
    fsspec (~15-45 ms to import) is not on a local build's path."""
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from freight.storage.objectstore import ObjectStore\n"
        "root = Path(sys.argv[1])\n"
        "store = ObjectStore((root / 'store').as_uri())\n"
        "(root / 'src.txt').write_bytes(b'hello world')\n"
        "store.put_file('a/b.txt', root / 'src.txt')\n"
        "assert store.exists('a/b.txt') and not store.exists('a/none')\n"
        "assert store.size('a/b.txt') == 11 and store.get_bytes('a/b.txt') == b'hello world'\n"
        "assert store.get_range('a/b.txt', 6) == b'world' and store.get_range('a/b.txt', 0, 5) == b'hello'\n"
        "assert store.get_range('a/b.txt', 20) == b''\n"
        "store.get_file('a/b.txt', root / 'out' / 'b.txt')\n"
        "assert (root / 'out' / 'b.txt').read_bytes() == b'hello world'\n"
        "with store.open('a/b.txt') as handle:\n"
        "    assert handle.read() == b'hello world'\n"
        "assert 'fsspec' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
