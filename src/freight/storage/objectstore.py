"""ObjectStore: a thin, atomic layer over fsspec.

`file://` under FREIGHT_HOME is the embedded default; `s3://` (with the [s3] extra) in production.
Keys are '/'-separated paths relative to the store's root. Writes are atomic: a reader sees the old
object or the new one, never half of one (temp file + rename locally; a single PUT on S3).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from freight.errors import NotFoundError, UserError
from freight.storage.localfiles import atomic_local_write

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


class ObjectStore:
    def __init__(self, url: str, **options: Any) -> None:
        self.url = url.rstrip("/")
        self._fs: AbstractFileSystem | None = None
        if self.url.startswith("file:///") and not options:
            # the embedded default: fsspec (~45 ms to import) loads only for what plain files can't
            # do; writes and hard links, the hot paths (logs, caches), are os calls either way
            self.root, self.local = self.url.removeprefix("file://").rstrip("/") or "/", True
        else:
            import fsspec

            self._fs, root = fsspec.core.url_to_fs(self.url, **options)
            self.root = cast(str, root).rstrip("/")
            self.local = self._fs.protocol in ("file", ("file", "local")) or "file" in self._fs.protocol
        if self.local:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    @property
    def fs(self) -> AbstractFileSystem:
        if self._fs is None:
            import fsspec

            self._fs = fsspec.filesystem("file")
        return self._fs

    def _path(self, key: str) -> str:
        key = key.strip("/")
        if not key or any(part in ("", ".", "..") for part in key.split("/")):
            raise UserError(f"object key {key!r} is not a clean relative path")
        return f"{self.root}/{key}"

    def local_path(self, key: str) -> Path | None:
        """The file behind `key` when the store is on local disk (lets readers mmap / tail it)."""
        return Path(self._path(key)) if self.local else None

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if self.local:
            _atomic_local_write(Path(path), data)
        else:
            self.fs.pipe_file(path, data)

    def put_file(self, key: str, source: Path, *, link: bool = False) -> None:
        """Store a copy of `source`. With `link`, a local store on the same filesystem hard-links it
        instead of copying (no second copy on disk): only for a file nobody writes to any more."""
        path = self._path(key)
        if self.local:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            if link:
                try:
                    # a new name appears whole, so a first link needs no temp file (one syscall fewer)
                    if _hard_link(source, target):
                        return
                    link = False  # another filesystem: copy
                except FileExistsError:
                    pass  # replaced atomically below
            tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
            if not (link and _hard_link(source, tmp)):
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        else:
            self.fs.put_file(str(source), path)

    def get_bytes(self, key: str) -> bytes:
        try:
            if self.local:
                return Path(self._path(key)).read_bytes()
            return cast(bytes, self.fs.cat_file(self._path(key)))
        except FileNotFoundError:
            raise NotFoundError(f"no object {key!r} in {self.url}") from None

    def get_range(self, key: str, start: int, end: int | None = None) -> bytes:
        """Bytes [start, end) of an object (to the end when `end` is None); b"" from its end on, as a
        file read there gives."""
        path = self._path(key)
        try:
            if self.local:
                with open(path, "rb") as handle:
                    handle.seek(start)
                    return handle.read() if end is None else handle.read(max(0, end - start))
            if start >= self.fs.size(path):
                return b""  # S3 answers a range past the end with 416, not with no bytes
            return cast(bytes, self.fs.cat_file(path, start=start, end=end))
        except FileNotFoundError:
            raise NotFoundError(f"no object {key!r} in {self.url}") from None

    def get_file(self, key: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.local:
                shutil.copyfile(self._path(key), target)
                return
            self.fs.get_file(self._path(key), str(target))
        except FileNotFoundError:
            raise NotFoundError(f"no object {key!r} in {self.url}") from None

    def open(self, key: str, mode: str = "rb") -> IO[bytes]:
        if "w" in mode and self.local:
            raise UserError("write through put_bytes/put_file so writes stay atomic")
        if self.local:
            return cast(IO[bytes], open(self._path(key), mode))
        return cast(IO[bytes], self.fs.open(self._path(key), mode))

    def exists(self, key: str) -> bool:
        if self.local:
            return os.path.exists(self._path(key))
        return bool(self.fs.exists(self._path(key)))

    def size(self, key: str) -> int:
        if self.local:
            return os.path.getsize(self._path(key))
        return int(self.fs.size(self._path(key)))

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key under `prefix`, recursively, sorted."""
        base = self._path(prefix) if prefix.strip("/") else self.root
        if not self.fs.exists(base):
            return
        for path in sorted(self.fs.find(base)):
            rel = str(path)[len(self.root) + 1 :] if str(path).startswith(self.root) else str(path)
            if not rel.rsplit("/", 1)[-1].startswith("."):
                yield rel

    def delete(self, key: str, recursive: bool = False) -> None:
        path = self._path(key)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=recursive)

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete these objects; missing ones are fine. On S3, one request per 1,000 keys."""
        paths = [self._path(key) for key in keys]
        if self.local:
            for path in paths:
                Path(path).unlink(missing_ok=True)
        elif paths:
            try:
                self.fs.rm(paths)  # S3: one DeleteObjects per 1,000 keys, missing ones included
            except FileNotFoundError:  # a filesystem that stops at a missing one: one at a time
                for path in paths:
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.rm(path)


def _hard_link(source: Path, target: Path) -> bool:
    """Hard-link `source` as `target`; False when they are on different filesystems (or the
    filesystem has no hard links), so the caller copies instead."""
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            return False
        raise
    return True


_atomic_local_write = atomic_local_write
