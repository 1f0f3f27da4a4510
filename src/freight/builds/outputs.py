"""A task's output files: find them after a build, clear them before a build or a restore.

Clearing first matters: a stale bundle from an earlier build must never ship next to a fresh one.

Only regular files inside the package folder are outputs. A symlink (to the store's database, to
/etc/passwd), a device, a FIFO, or anything reached through a symlinked folder is never cached,
restored or published: `scan_outputs` names them so the caller can refuse, `read_regular` opens a
file without following a link, and `write_inside` writes a restored file only where no link leads out.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import threading
from pathlib import Path
from typing import Any

from freight.builds.globs import match_any, static_root
from freight.errors import UserError

_NEVER = {"node_modules", ".git"}
_REGULAR_ONLY = "only regular files are published or cached"


def _walk(base: Path, start: Path) -> tuple[list[str], list[str]]:
    """(regular files, everything else) under `start`, package-relative; symlinked folders are not
    entered (they are listed with the rest)."""
    files: list[str] = []
    other: list[str] = []
    if _through_link(base, start):
        return [], [start.relative_to(base).as_posix()]
    info = start.lstat()
    if not stat.S_ISDIR(info.st_mode):
        (files if stat.S_ISREG(info.st_mode) else other).append(start.relative_to(base).as_posix())
        return files, other
    for dirpath, dirnames, filenames in os.walk(start):  # followlinks=False: a linked folder stays put
        here = Path(dirpath)
        for name in list(dirnames):
            if (here / name).is_symlink():
                dirnames.remove(name)
                other.append((here / name).relative_to(base).as_posix())
        dirnames[:] = sorted(d for d in dirnames if d not in _NEVER)
        for name in filenames:
            mode = (here / name).lstat().st_mode
            (files if stat.S_ISREG(mode) else other).append((here / name).relative_to(base).as_posix())
    return files, other


def _through_link(base: Path, path: Path) -> bool:
    """Whether `path` or a folder between `base` and it is a symlink."""
    current = base
    for part in path.relative_to(base).parts:
        current = current / part
        if current.is_symlink():
            return True
    return False


def scan_outputs(package_dir: Path, globs: list[str]) -> tuple[list[str], list[str]]:
    """(regular files matching the output globs, matching paths that are not regular files: symlinks,
    devices, FIFOs, linked folders), package-relative and sorted."""
    positive = [g for g in globs if not g.startswith("!")]
    roots = {static_root(g) for g in positive}
    files: set[str] = set()
    other: set[str] = set()
    for root in roots:
        start = package_dir / root if root else package_dir
        if start.exists() or start.is_symlink():
            found, odd = _walk(package_dir, start)
            files.update(found)
            other.update(odd)
    matched = sorted(p for p in files if match_any(p, globs))
    return matched, sorted(p for p in other if match_any(p, globs) or p in {r for r in roots if r})


def find_outputs(package_dir: Path, globs: list[str]) -> list[str]:
    """Package-relative paths of regular files matching the output globs, sorted."""
    return scan_outputs(package_dir, globs)[0]


def read_regular(path: Path) -> bytes:
    """A regular file's bytes, opened without following a symlink (refused with a UserError)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(
                f"{path} is a symlink", hint="only regular files are published or cached"
            ) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise UserError(
                f"{path} is not a regular file", hint="only regular files are published or cached"
            )
        return handle.read()


def write_inside(base: Path, rel: str, data: bytes, mode: int, folders: set[str] | None = None) -> None:
    """Write `base/rel`, refusing to go through a symlink on the way (a link the repository holds could
    otherwise send a restored file anywhere) and replacing whatever non-folder sits at the target.

    `folders`: the folders (relative) already checked and made by earlier calls of one restore, which
    are not checked again (a restore writes many files into few folders)."""
    target = base / rel
    for parent in reversed(target.relative_to(base).parents[:-1]):
        key = parent.as_posix()
        if folders is not None and key in folders:
            continue
        folder = base / parent
        if folder.is_symlink():
            raise UserError(f"{folder} is a symlink", hint="outputs are restored inside their folder only")
        folder.mkdir(exist_ok=True)
        if folders is not None:
            folders.add(key)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        target.unlink()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o777)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(target, mode & 0o777)


def clear_outputs(package_dir: Path, globs: list[str]) -> None:
    """Remove what earlier runs left: whole output folders, or matching files when a glob has no folder."""
    for glob in (g for g in globs if not g.startswith("!")):
        root = static_root(glob)
        if root:
            target = package_dir / root
            if _through_link(package_dir, target.parent):
                raise UserError(
                    f"{target.parent} is a symlink",
                    hint="an output folder must be a real folder in the package",
                )
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
        else:
            for rel in find_outputs(package_dir, [glob]):
                (package_dir / rel).unlink(missing_ok=True)


# The outputs manifest ---------------------------------------------------------------------------------
#
# A cache entry's metadata lists every output file with its size, mode and sha256 (signed with the
# entry). Before restoring, the files already on disk are compared with it: when they are exactly
# those files with that content, nothing is restored. A local record of each file's stat (size,
# mtime, ctime, inode) as freight last wrote or checked it spares re-reading files that did not change,
# the way git's index spares re-hashing the work tree.

#: rel path -> [size, mode (0o755 or 0o644), sha256 hex]
Manifest = dict[str, list[Any]]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def output_manifest(package_dir: Path, files: list[str]) -> Manifest:
    manifest: Manifest = {}
    for rel in files:
        path = package_dir / rel
        info = path.stat()
        manifest[rel] = [info.st_size, 0o755 if info.st_mode & 0o100 else 0o644, _sha256(path)]
    return manifest


def _stat_key(info: os.stat_result) -> list[int]:
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_mode]


def _restorable_tree(package_dir: Path, globs: list[str]) -> set[str] | None:
    """What a restore would compare with: every file under the output folders (which a restore
    clears whole), plus the files matching globs without a folder; None when anything there is not a
    regular file or a real folder (a symlink, a device), which only a restore clears away."""
    found: set[str] = set()
    for glob in (g for g in globs if not g.startswith("!")):
        root = static_root(glob)
        if not root:
            found.update(find_outputs(package_dir, [glob]))
            continue
        start = package_dir / root
        try:
            info = start.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode):
            found.add(root)
            continue
        if not stat.S_ISDIR(info.st_mode):
            return None
        for dirpath, dirnames, filenames in os.walk(start):
            here = Path(dirpath)
            for name in dirnames:
                if (here / name).is_symlink():
                    return None
            for name in filenames:
                path = here / name
                if not stat.S_ISREG(path.lstat().st_mode):
                    return None
                found.add(path.relative_to(package_dir).as_posix())
    return found


class OutputsState:
    """What freight last left in the tasks' output folders: file stats per (package folder, task).

    One file under FREIGHT_HOME (never in the workspace), read once and written once per build
    (`flush`); losing it, or an update lost to a concurrent build, only costs re-hashing the files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, Any] | None = None
        self._dirty: dict[str, Any] = {}
        self._lock = threading.Lock()  # restores run in threads

    @staticmethod
    def _key(package_dir: Path, task: str) -> str:
        return f"{os.path.abspath(package_dir)}\0{task}"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _load(self, package_dir: Path, task: str) -> dict[str, Any]:
        with self._lock:
            if self._entries is None:
                self._entries = self._read()
            entry = self._entries.get(self._key(package_dir, task))
        return entry if isinstance(entry, dict) else {}

    def record(self, package_dir: Path, task: str, task_hash: str, files: list[str]) -> None:
        """Remember the stats of `files` as they are now (just written or checked)."""
        stats: dict[str, list[int]] = {}
        for rel in files:
            try:
                stats[rel] = _stat_key((package_dir / rel).lstat())
            except OSError:
                return  # gone already: record nothing, the next check hashes
        key = self._key(package_dir, task)
        with self._lock:
            if self._entries is None:
                self._entries = self._read()
            self._entries[key] = self._dirty[key] = {"hash": task_hash, "files": stats}

    def flush(self) -> None:
        """Write what changed since the last flush (merged into the file as it is now)."""
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        if not dirty:
            return
        entries = {**self._read(), **dirty}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(entries))
            tmp.replace(self.path)
        except OSError:
            pass  # a cache of a cache: without it the next check reads the files

    def in_place(
        self, package_dir: Path, task: str, task_hash: str, globs: list[str], manifest: Manifest
    ) -> bool:
        """True when the task's outputs on disk are exactly `manifest`'s files: no file missing, none
        extra (a stale bundle), none a symlink, each with the recorded size, mode and content."""
        on_disk = _restorable_tree(package_dir, globs)
        if on_disk is None or on_disk != set(manifest):
            return False
        known = self._load(package_dir, task)
        stats = known.get("files", {}) if known.get("hash") == task_hash else {}
        hashed = False
        for rel, (size, mode, sha) in manifest.items():
            path = package_dir / rel
            try:
                info = path.lstat()
            except OSError:
                return False
            if not stat.S_ISREG(info.st_mode) or info.st_size != size:
                return False
            if (0o755 if info.st_mode & 0o100 else 0o644) != mode:
                return False
            if stats.get(rel) == _stat_key(info):
                continue  # unchanged since freight wrote or checked it
            if _sha256(path) != sha:
                return False
            hashed = True
        if hashed or len(stats) != len(manifest):
            self.record(package_dir, task, task_hash, sorted(manifest))
        return True
