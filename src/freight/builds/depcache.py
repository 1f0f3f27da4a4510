"""Installed dependencies (every node_modules folder) snapshotted per lockfile into the object store.

This is the pre-warmed build image: a fresh clone restores a snapshot (one archive, unpacked by tar)
instead of running the package manager. A snapshot's key covers what decides the install: the package
manager, the lockfile, every package.json's dependency sections, the node version and the platform.
Snapshots are signed like cache entries; a bad one is reported and the install runs instead.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from freight.builds.hashing import node_version
from freight.builds.signing import sign, verify
from freight.builds.workspace import DEP_SECTIONS, LOCKFILES, Workspace, read_json
from freight.errors import FreightError, NotFoundError
from freight.storage.objectstore import ObjectStore

PREFIX = "builds/deps"
MARKER = ".freight-deps.json"
INSTALL = {
    "npm": "npm ci --no-audit --no-fund --prefer-offline",
    "yarn": "yarn install --frozen-lockfile",
    "pnpm": "pnpm install --frozen-lockfile",
}
INSTALL_NO_LOCK = {"npm": "npm install --no-audit --no-fund", "yarn": "yarn install", "pnpm": "pnpm install"}

#: Runs the install command in the workspace root (as a platform job); returns (ok, seconds, log).
Installer = Callable[[str, Path], tuple[bool, float, bytes]]


@dataclass
class DepReport:
    #: "warm" (already installed), "restored" (from a snapshot) or "installed".
    status: str
    key: str
    seconds: float
    install_seconds: float | None = None
    saved_seconds: float | None = None
    snapshot_bytes: int | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def dependency_key(ws: Workspace) -> str:
    parts: dict[str, object] = {
        "manager": ws.manager,
        "lockfile": hashlib.sha256((ws.root / ws.lockfile).read_bytes()).hexdigest() if ws.lockfile else None,
        "node": node_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
        "root": {s: ws.root_manifest.get(s) for s in DEP_SECTIONS},
        "packages": {
            p.dir: {s: read_json(ws.root / p.dir / "package.json").get(s) for s in DEP_SECTIONS}
            for p in sorted(ws.packages.values(), key=lambda p: p.dir)
        },
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def mark_installed(ws: Workspace) -> str:
    """Record that node_modules matches the current dependency key (after an install done elsewhere)."""
    key = dependency_key(ws)
    folder = ws.root / "node_modules"
    folder.mkdir(exist_ok=True)
    (folder / MARKER).write_text(json.dumps({"key": key}))
    return key


def _module_dirs(ws: Workspace) -> list[str]:
    dirs = ["node_modules"] if (ws.root / "node_modules").is_dir() else []
    for pkg in sorted(ws.packages.values(), key=lambda p: p.dir):
        if (ws.root / pkg.dir / "node_modules").is_dir():
            dirs.append(f"{pkg.dir}/node_modules")
    return dirs


def _compression() -> list[str]:
    return ["--zstd"] if shutil.which("zstd") else ["--gzip"]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DependencyCache:
    def __init__(
        self, store: ObjectStore | None, key: bytes, *, now: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.key = key
        self.now = now

    def _marker(self, ws: Workspace) -> str | None:
        path = ws.root / "node_modules" / MARKER
        try:
            return str(json.loads(path.read_text()).get("key"))
        except (OSError, json.JSONDecodeError, AttributeError):
            return None

    def _write_marker(self, ws: Workspace, key: str) -> None:
        folder = ws.root / "node_modules"
        folder.mkdir(exist_ok=True)
        (folder / MARKER).write_text(json.dumps({"key": key}))

    def ensure(self, ws: Workspace, install: Installer) -> DepReport:
        """Make node_modules match the lockfile: keep it, restore a snapshot, or install and snapshot."""
        key = dependency_key(ws)
        started = time.monotonic()
        if self._marker(ws) == key:
            return DepReport("warm", key, time.monotonic() - started)
        warnings: list[str] = []
        if self.store is not None:
            try:
                restored = self._restore(ws, key)
            except Exception as exc:
                warnings.append(f"dependency snapshot {key} unusable ({exc}); installing instead")
                restored = None
            if restored is not None:
                earlier, snapshot_size = restored
                seconds = time.monotonic() - started
                self._write_marker(ws, key)
                return DepReport(
                    "restored",
                    key,
                    seconds,
                    earlier,
                    max(0.0, earlier - seconds),
                    snapshot_size,
                    warnings,
                )
        command = ws.config.workspace.install or (INSTALL if ws.lockfile else INSTALL_NO_LOCK)[ws.manager]
        ok, install_seconds, log = install(command, ws.root)
        if not ok:
            tail = log.decode(errors="replace").strip().splitlines()[-15:]
            raise FreightError(f"`{command}` failed in {ws.root}:\n" + "\n".join(tail))
        if ws.lockfile is None and (ws.root / LOCKFILES[ws.manager]).exists():
            ws.lockfile = LOCKFILES[ws.manager]  # an install without a lockfile just wrote one
            key = dependency_key(ws)
        size: int | None = None
        if self.store is not None:
            try:
                size = self._snapshot(ws, key, install_seconds)
            except Exception as exc:
                warnings.append(f"could not store the dependency snapshot {key}: {exc}")
        self._write_marker(ws, key)
        return DepReport("installed", key, time.monotonic() - started, install_seconds, 0.0, size, warnings)

    def _snapshot(self, ws: Workspace, key: str, install_seconds: float) -> int:
        dirs = _module_dirs(ws)
        with tempfile.TemporaryDirectory(prefix="freight-deps-") as tmp:
            archive = Path(tmp) / "deps.tar"
            subprocess.run(
                ["tar", *_compression(), "-cf", str(archive), "--exclude", f"node_modules/{MARKER}", *dirs],
                cwd=ws.root,
                check=True,
                capture_output=True,
            )
            meta: dict[str, object] = {
                "key": key,
                "dirs": dirs,
                "compression": _compression()[0],
                "install_seconds": install_seconds,
                "created_at": self.now(),
                "archive_sha256": _file_sha256(archive),
                "archive_size": archive.stat().st_size,
            }
            meta["signature"] = sign(self.key, meta)
            assert self.store is not None
            self.store.put_file(f"{PREFIX}/{key}.tar", archive)
            self.store.put_bytes(f"{PREFIX}/{key}.json", json.dumps(meta, sort_keys=True).encode())
            return archive.stat().st_size

    def _restore(self, ws: Workspace, key: str) -> tuple[float, int] | None:
        assert self.store is not None
        try:
            meta = json.loads(self.store.get_bytes(f"{PREFIX}/{key}.json"))
        except NotFoundError:
            return None
        if not verify(self.key, meta):
            raise FreightError("its signature does not match")
        with tempfile.TemporaryDirectory(prefix="freight-deps-") as tmp:
            local = self.store.local_path(f"{PREFIX}/{key}.tar")
            if local is None:
                local = Path(tmp) / "deps.tar"
                self.store.get_file(f"{PREFIX}/{key}.tar", local)
            if _file_sha256(local) != meta["archive_sha256"]:
                raise FreightError("its archive does not match the signed digest")
            for rel in _module_dirs(ws):
                shutil.rmtree(ws.root / rel)
            subprocess.run(
                ["tar", meta.get("compression", "--zstd"), "-xf", str(local)],
                cwd=ws.root,
                check=True,
                capture_output=True,
            )
        return float(meta["install_seconds"]), int(meta["archive_size"])
