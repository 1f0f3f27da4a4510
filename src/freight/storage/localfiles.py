"""The local-disk object store's layout without fsspec: a key is the file `root/key`.

`ObjectStore` on a `file://` URL stores each object there, written atomically (temp + rename).
`LocalBlobs` reads and writes the same files with the standard library, for callers that must start
fast (the fast path of a cached build) and only ever touch a local store.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from freight.errors import NotFoundError, UserError


def atomic_local_write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def local_root(url: str) -> Path | None:
    """The folder of a `file://` store URL (or a plain path); None for any other scheme."""
    if "://" not in url:
        return Path(url)
    scheme, rest = url.split("://", 1)
    host, slash, path = rest.partition("/")
    if scheme.lower() != "file" or host not in ("", "localhost") or not slash:
        return None
    if "%" in path or "?" in path or "#" in path:
        return None  # quoted or with a query: leave it to fsspec's parsing (the full path)
    return Path("/" + path)


class LocalBlobs:
    """get_bytes / put_bytes / exists on a local store's folder, as `ObjectStore` lays it out."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        key = key.strip("/")
        if not key or any(part in ("", ".", "..") for part in key.split("/")):
            raise UserError(f"object key {key!r} is not a clean relative path")
        return self.root / key

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"no object {key!r} in {self.root}") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        atomic_local_write(self._path(key), data)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()
