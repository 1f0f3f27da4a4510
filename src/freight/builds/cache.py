"""The task cache: outputs plus the task's log, keyed by task hash, local first and then shared.

An entry is two objects: `<hash>.tgz` (the log and the output files) and `<hash>.json` (its metadata:
the archive's sha256 and an HMAC over the metadata). The archive is written first and the metadata
last, each atomically, so a reader never trusts an entry that is half written. On read, a bad signature
or a wrong archive digest is a miss that is reported, never a silent one; so is any failure of the
shared store (a warning on every lookup and write, then the task builds as if nothing were cached).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from freight.builds.outputs import (
    Manifest,
    OutputsState,
    clear_outputs,
    output_manifest,
    read_regular,
    write_inside,
)
from freight.builds.results import TaskResult
from freight.builds.signing import sign, verify
from freight.errors import NotFoundError, UserError

PREFIX = "builds/cache"
_LOG = "log"
_OUT = "out/"
#: Logs up to this size also ride in the metadata, so a hit whose outputs are in place reads no archive.
_LOG_IN_META = 64 * 1024


@dataclass(frozen=True)
class Entry:
    hash: str
    task: str
    files: list[str]
    duration: float
    log: bytes
    created_at: float
    #: The outputs manifest the entry was saved with (None for entries older than manifests).
    manifest: Manifest | None = None


@dataclass
class Lookup:
    entry: Entry | None = None
    #: "local" or "shared" on a hit.
    source: str | None = None
    #: Loud problems met on the way (a failed signature check, an unreachable shared store).
    warnings: list[str] = field(default_factory=list)
    #: The outputs on disk already matched the entry's manifest: nothing was restored.
    in_place: bool = False

    @property
    def hit(self) -> bool:
        return self.entry is not None

    def result(self, task: str, package: str, hash: str, start: float, end: float) -> TaskResult:
        """The run's record of this hit (one shape for the fast path and the runner)."""
        assert self.entry is not None, "only a hit has a result"
        return TaskResult(
            task,
            package,
            hash,
            "cached",
            cache=self.source,
            duration=end - start,
            saved=self.entry.duration,
            start=start,
            end=end,
            outputs=len(self.entry.files),
            log=self.entry.log,
        )


class CacheCheckFailed(Exception):
    """An entry exists but cannot be trusted."""


def _keys(task_hash: str) -> tuple[str, str]:
    base = f"{PREFIX}/{task_hash[:2]}/{task_hash}"
    return f"{base}.tgz", f"{base}.json"


def pack(package_dir: Path, files: list[str], log: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo(_LOG)
        info.size = len(log)
        tar.addfile(info, io.BytesIO(log))
        for rel in files:
            path = package_dir / rel
            data = read_regular(path)  # never a symlink's target
            info = tarfile.TarInfo(_OUT + rel)
            info.size = len(data)
            info.mode = 0o755 if path.lstat().st_mode & 0o100 else 0o644
            # Fixed mtimes keep archives of the same outputs byte-identical.
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack(archive: bytes, package_dir: Path, outputs: list[str]) -> bytes:
    """Clear the output folders, then write the archive's files; returns the log."""
    log = b""
    members: list[tuple[str, bytes, int]] = []
    try:
        # one C call for the whole archive: tarfile's own gzip reader reads in small pieces
        plain = zlib.decompress(archive, wbits=31)
    except zlib.error as exc:
        raise CacheCheckFailed(f"archive is not gzip data: {exc}") from None
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                raise CacheCheckFailed(f"archive holds a non-file member {member.name!r}")
            handle = tar.extractfile(member)
            data = handle.read() if handle else b""
            if member.name == _LOG:
                log = data
                continue
            rel = member.name.removeprefix(_OUT)
            parts = rel.split("/")
            if not member.name.startswith(_OUT) or any(p in ("", ".", "..") for p in parts):
                raise CacheCheckFailed(f"archive holds an unsafe path {member.name!r}")
            members.append((rel, data, member.mode))
    clear_outputs(package_dir, outputs)
    folders: set[str] = set()
    for rel, data, mode in members:
        try:
            write_inside(package_dir, rel, data, mode, folders)
        except UserError as exc:
            raise CacheCheckFailed(f"cannot restore {rel!r}: {exc}") from None
    return log


class Blobs(Protocol):
    """What a cache location needs of an object store (`ObjectStore`, or `LocalBlobs` on a fast path)."""

    def get_bytes(self, key: str) -> bytes: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def exists(self, key: str) -> bool: ...


class CacheStore:
    """One cache location (a local folder or the shared object store)."""

    def __init__(self, store: Blobs, key: bytes, name: str) -> None:
        self.store = store
        self.key = key
        self.name = name

    def read(self, task_hash: str) -> tuple[dict[str, Any], bytes] | None:
        """(metadata, archive), None when absent; CacheCheckFailed when present but untrustworthy."""
        meta = self.read_meta(task_hash)
        return None if meta is None else (meta, self.read_archive(task_hash, meta))

    def read_meta(self, task_hash: str) -> dict[str, Any] | None:
        """The entry's signed metadata, None when absent; CacheCheckFailed when untrustworthy."""
        _archive_key, meta_key = _keys(task_hash)
        try:
            raw = self.store.get_bytes(meta_key)
        except NotFoundError:
            return None
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError:
            raise CacheCheckFailed("its metadata is not JSON") from None
        if not isinstance(meta, dict) or not verify(self.key, meta):
            raise CacheCheckFailed("its signature does not match (tampered, or signed with another key)")
        if meta.get("hash") != task_hash:
            raise CacheCheckFailed("it was stored under the wrong hash")
        return meta

    def read_archive(self, task_hash: str, meta: dict[str, Any]) -> bytes:
        """The entry's archive, checked against the digest its signed metadata carries."""
        archive_key, _meta_key = _keys(task_hash)
        try:
            archive = self.store.get_bytes(archive_key)
        except NotFoundError:
            raise CacheCheckFailed("its archive is missing") from None
        if hashlib.sha256(archive).hexdigest() != meta.get("archive_sha256"):
            raise CacheCheckFailed("its archive does not match the signed digest (tampered or truncated)")
        return archive

    def write(self, meta: dict[str, Any], archive: bytes) -> None:
        archive_key, meta_key = _keys(meta["hash"])
        meta = {**meta, "archive_sha256": hashlib.sha256(archive).hexdigest(), "archive_size": len(archive)}
        meta["signature"] = sign(self.key, meta)
        self.store.put_bytes(archive_key, archive)
        self.store.put_bytes(meta_key, json.dumps(meta, sort_keys=True).encode())

    def has(self, task_hash: str) -> bool:
        return self.store.exists(_keys(task_hash)[1])


class TaskCache:
    """Local cache in front of an optional shared one."""

    def __init__(
        self,
        local: CacheStore | None,
        shared: CacheStore | None,
        *,
        now: Callable[[], float] = time.time,
        state: OutputsState | None = None,
    ) -> None:
        self.local = local
        self.shared = shared
        self.now = now
        #: Stats of the outputs freight last wrote; None: every hit restores (clearing first).
        self.state = state

    def lookup(self, task_hash: str, task: str, package_dir: Path, outputs: list[str]) -> Lookup:
        """Find an entry and restore it into `package_dir`."""
        result = Lookup()
        for store in (self.local, self.shared):
            if store is None:
                continue
            try:
                found = store.read_meta(task_hash)
            except CacheCheckFailed as exc:
                result.warnings.append(
                    f"{task}: {store.name} cache entry {task_hash} rejected: {exc}; rebuilding"
                )
                continue
            except Exception as exc:  # the shared store may fail in any way; say so loudly
                result.warnings.append(
                    f"{task}: {store.name} cache unavailable ({type(exc).__name__}: {exc})"
                )
                continue
            if found is None:
                continue
            meta = found
            in_place = self._in_place(task_hash, task, package_dir, outputs, meta)
            if in_place is not None:
                result.entry = _entry(task_hash, task, meta, in_place)
                result.source = store.name
                result.in_place = True
                return result
            try:
                archive = store.read_archive(task_hash, meta)
            except CacheCheckFailed as exc:
                result.warnings.append(
                    f"{task}: {store.name} cache entry {task_hash} rejected: {exc}; rebuilding"
                )
                continue
            except Exception as exc:
                result.warnings.append(
                    f"{task}: {store.name} cache unavailable ({type(exc).__name__}: {exc})"
                )
                continue
            try:
                log = unpack(archive, package_dir, outputs)
            except (CacheCheckFailed, tarfile.TarError, OSError) as exc:
                result.warnings.append(
                    f"{task}: {store.name} cache entry {task_hash} unusable: {exc}; rebuilding"
                )
                continue
            result.entry = _entry(task_hash, task, meta, log)
            result.source = store.name
            if self.state is not None:
                self.state.record(package_dir, task, task_hash, result.entry.files)
            if store is self.shared and self.local is not None:
                # Copy down so the next lookup stays on this machine.
                try:
                    self.local.write(_plain(meta), archive)
                except OSError as exc:
                    result.warnings.append(f"{task}: could not copy the entry into the local cache: {exc}")
            return result
        return result

    def save(
        self, task_hash: str, task: str, package_dir: Path, files: list[str], log: bytes, duration: float
    ) -> list[str]:
        """Store an entry in every cache; returns warnings (a shared write that failed)."""
        archive = pack(package_dir, files, log)
        meta: dict[str, Any] = {
            "hash": task_hash,
            "task": task,
            "files": files,
            "manifest": output_manifest(package_dir, files),
            "duration": duration,
            "created_at": self.now(),
        }
        if len(log) <= _LOG_IN_META:
            meta["log"] = base64.b64encode(log).decode()
        warnings: list[str] = []
        for store in (self.local, self.shared):
            if store is None:
                continue
            try:
                store.write(meta, archive)
            except Exception as exc:
                warnings.append(
                    f"{task}: could not write to the {store.name} cache ({type(exc).__name__}: {exc})"
                )
        if self.state is not None:
            self.state.record(package_dir, task, task_hash, files)
        return warnings

    def _in_place(
        self, task_hash: str, task: str, package_dir: Path, outputs: list[str], meta: dict[str, Any]
    ) -> bytes | None:
        """The entry's log when the outputs on disk already are the entry's (nothing to restore)."""
        manifest = meta.get("manifest")
        log = meta.get("log")
        if self.state is None or not isinstance(manifest, dict) or not isinstance(log, str):
            return None  # an entry from before manifests: restore it
        try:
            if not self.state.in_place(package_dir, task, task_hash, outputs, _manifest(manifest)):
                return None
            return base64.b64decode(log)
        except (OSError, ValueError, TypeError):
            return None


def _manifest(raw: dict[str, Any]) -> Manifest:
    manifest: Manifest = {}
    for rel, item in raw.items():
        if not (isinstance(item, list) and len(item) == 3):
            raise ValueError(f"bad manifest item for {rel!r}")
        manifest[str(rel)] = [int(item[0]), int(item[1]), str(item[2])]
    return manifest


def _entry(task_hash: str, task: str, meta: dict[str, Any], log: bytes) -> Entry:
    return Entry(
        hash=task_hash,
        task=task,
        files=list(meta.get("files", [])),
        duration=float(meta.get("duration", 0.0)),
        log=log,
        created_at=float(meta.get("created_at", 0.0)),
        manifest=_safe_manifest(meta.get("manifest")),
    )


def _safe_manifest(raw: object) -> Manifest | None:
    try:
        return _manifest(raw) if isinstance(raw, dict) else None
    except (ValueError, TypeError):
        return None


def _plain(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k not in ("signature", "archive_sha256", "archive_size")}


def local_cache_dir(home: Path) -> Path:
    return home / "cache" / "builds"
