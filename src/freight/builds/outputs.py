"""A task's output files: find them after a build, clear them before a build or a restore.

Clearing first matters: a stale bundle from an earlier build must never ship next to a fresh one.

Only regular files inside the package folder are outputs. A symlink (to the store's database, to
/etc/passwd), a device, a FIFO, or anything reached through a symlinked folder is never cached,
restored or published: `scan_outputs` names them so the caller can refuse, `read_regular` opens a
file without following a link, and `write_inside` writes a restored file only where no link leads out.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

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


def write_inside(base: Path, rel: str, data: bytes, mode: int) -> None:
    """Write `base/rel`, refusing to go through a symlink on the way (a link the repository holds could
    otherwise send a restored file anywhere) and replacing whatever non-folder sits at the target."""
    target = base / rel
    for parent in reversed(target.relative_to(base).parents[:-1]):
        folder = base / parent
        if folder.is_symlink():
            raise UserError(f"{folder} is a symlink", hint="outputs are restored inside their folder only")
        folder.mkdir(exist_ok=True)
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
