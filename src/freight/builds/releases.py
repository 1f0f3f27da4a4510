"""Releases: an app's build output published as content-addressed files plus a manifest.

Blobs live once per content (`builds/blobs/<sha256>`), shared by every release and app that has the
same bytes, with a gzip twin for text. A manifest (`builds/releases/<app>/<id>.json`) maps each URL
path to its blob; the release id is derived from that mapping, so publishing the same output twice
yields the same release and a release never changes once written.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import mimetypes
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freight.builds.globs import match_any
from freight.builds.outputs import read_regular, scan_outputs
from freight.builds.store import BuildStore, Release
from freight.errors import NotFoundError, UserError
from freight.storage.objectstore import ObjectStore

BLOBS = "builds/blobs"
RELEASES = "builds/releases"
#: The token before the extension that may be a content hash: `main-5FQKX2ZT.js`, `app.3f9a1c2b.css`.
_HASH_TOKEN = re.compile(r"[.-]([A-Za-z0-9_]{8,32})\.[A-Za-z0-9]+(?:\.map)?$")
_HEX = re.compile(r"^[0-9a-f]+$")
_ESBUILD = re.compile(r"^[A-Z2-7]{8}$")
_TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml", "application/xml")
_EXTRA_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".map": "application/json",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".woff2": "font/woff2",
    ".webmanifest": "application/manifest+json",
}


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int
    content_type: str
    immutable: bool
    gzip_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Manifest:
    app: str
    id: str
    files: dict[str, FileEntry]
    task_hash: str | None
    commit: str | None
    created_at: float

    def to_json(self) -> bytes:
        body = {
            "app": self.app,
            "id": self.id,
            "files": {p: f.to_dict() for p, f in sorted(self.files.items())},
            "task_hash": self.task_hash,
            "commit": self.commit,
            "created_at": self.created_at,
        }
        return json.dumps(body, sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        return cls(
            app=raw["app"],
            id=raw["id"],
            files={p: FileEntry(**f) for p, f in raw["files"].items()},
            task_hash=raw.get("task_hash"),
            commit=raw.get("commit"),
            created_at=float(raw["created_at"]),
        )


def content_type(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext in _EXTRA_TYPES:
        return _EXTRA_TYPES[ext]
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def is_text(ctype: str) -> bool:
    return ctype.startswith(_TEXT_TYPES)


def is_immutable(path: str, ctype: str, patterns: Sequence[str] = ()) -> bool:
    """A hashed asset, safe to cache for a year: its name carries a content hash, or it matches one of
    the app's `immutable` globs. Recognised hashes: esbuild's (8 of A-Z2-7: `main-DNIJQKAV.js`),
    webpack/rollup hex (`app.3f9a1c2b.css`) and mixed-case base62 with a digit (`index-Bq4pZ0mX.js`).
    `my-component12.js` is not one (lower case, not hex), so it keeps being revalidated.
    """
    if ctype == "text/html":
        return False
    if patterns and match_any(path, patterns):
        return True
    match = _HASH_TOKEN.search(path.rsplit("/", 1)[-1])
    if not match:
        return False
    token = match.group(1)
    if _ESBUILD.match(token):
        return True
    has_digit = any(c.isdigit() for c in token)
    return has_digit and (bool(_HEX.match(token)) or any(c.isupper() for c in token))


def blob_key(sha256: str, gz: bool = False) -> str:
    return f"{BLOBS}/{sha256[:2]}/{sha256}{'.gz' if gz else ''}"


def manifest_key(app: str, release_id: str) -> str:
    return f"{RELEASES}/{app}/{release_id}.json"


def release_id_for(files: dict[str, FileEntry]) -> str:
    body = json.dumps({p: f.sha256 for p, f in sorted(files.items())}, separators=(",", ":"))
    return "r" + hashlib.sha256(body.encode()).hexdigest()[:12]


def _upload(objects: ObjectStore, data: bytes, sha: str, ctype: str) -> int | None:
    """Store the blob (and its gzip twin) unless present; returns the gzip size if there is one."""
    if not objects.exists(blob_key(sha)):
        objects.put_bytes(blob_key(sha), data)
    if not is_text(ctype) or len(data) < 256:
        return None
    if objects.exists(blob_key(sha, gz=True)):
        return objects.size(blob_key(sha, gz=True))
    # mtime=0 keeps the gzip bytes (and so their ETag) the same on every machine.
    packed = gzip.compress(data, compresslevel=9, mtime=0)
    if len(packed) > len(data) * 0.9:
        return None
    objects.put_bytes(blob_key(sha, gz=True), packed)
    return len(packed)


def publish(
    objects: ObjectStore,
    store: BuildStore,
    app: str,
    source: Path,
    *,
    task_hash: str | None = None,
    commit: str | None = None,
    immutable: Sequence[str] = (),
) -> tuple[Release, bool]:
    """Publish every file under `source` as a release of `app`; (release, True when it is new)."""
    if not source.is_dir():
        raise UserError(
            f"nothing to publish for {app}: {source} is not a folder",
            where=str(source),
            hint="set `publish` in [apps.<app>] to the folder the build writes",
        )
    if source.is_symlink():
        raise UserError(
            f"not publishing {app}: {source} is a symlink", hint="publish a real folder the build writes"
        )
    regular, other = scan_outputs(source, ["**"])
    if other:
        raise UserError(
            f"not publishing {app}: {source / other[0]} is not a regular file (a symlink, device or "
            f"linked folder{f'; {len(other) - 1} more' if len(other) > 1 else ''})",
            hint="a release holds regular files only; copy what a link points to into the folder",
        )
    files: dict[str, FileEntry] = {}
    for rel in regular:
        data = read_regular(source / rel)
        ctype = content_type(rel)
        entry = FileEntry(
            hashlib.sha256(data).hexdigest(), len(data), ctype, is_immutable(rel, ctype, immutable)
        )
        files[rel] = entry
    if not files:
        raise UserError(f"nothing to publish for {app}: {source} is empty", where=str(source))
    release_id = release_id_for(files)
    key = manifest_key(app, release_id)
    if not objects.exists(key):
        for rel, entry in list(files.items()):
            data = read_regular(source / rel)  # read again, still never through a link
            if hashlib.sha256(data).hexdigest() != entry.sha256:
                raise UserError(f"not publishing {app}: {source / rel} changed while it was published")
            gz = _upload(objects, data, entry.sha256, entry.content_type)
            files[rel] = FileEntry(entry.sha256, entry.size, entry.content_type, entry.immutable, gz)
        manifest = Manifest(app, release_id, files, task_hash, commit, store.now())
        # The manifest goes last: once it exists, every blob it names exists too.
        objects.put_bytes(key, manifest.to_json())
    else:
        manifest = load_manifest(objects, app, release_id)
    release = Release(
        app=app,
        id=release_id,
        created_at=manifest.created_at,
        manifest_key=key,
        task_hash=manifest.task_hash,
        commit=manifest.commit,
        files=len(manifest.files),
        bytes=sum(f.size for f in manifest.files.values()),
    )
    return release, store.add_release(release)


def load_manifest(objects: ObjectStore, app: str, release_id: str) -> Manifest:
    try:
        return Manifest.from_json(objects.get_bytes(manifest_key(app, release_id)))
    except NotFoundError:
        raise NotFoundError(f"release {release_id} of {app} has no manifest in {objects.url}") from None
