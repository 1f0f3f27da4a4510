"""A task's output files: find them after a build, clear them before a build or a restore.

Clearing first matters: a stale bundle from an earlier build must never ship next to a fresh one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from freight.builds.globs import match_any, static_root

_NEVER = {"node_modules", ".git"}


def _walk(base: Path, start: Path) -> list[str]:
    found: list[str] = []
    if start.is_file() or start.is_symlink():
        return [start.relative_to(base).as_posix()]
    for dirpath, dirnames, filenames in os.walk(start):
        dirnames[:] = sorted(d for d in dirnames if d not in _NEVER)
        for name in filenames:
            found.append((Path(dirpath) / name).relative_to(base).as_posix())
    return found


def find_outputs(package_dir: Path, globs: list[str]) -> list[str]:
    """Package-relative paths of regular files matching the output globs, sorted."""
    positive = [g for g in globs if not g.startswith("!")]
    roots = {static_root(g) for g in positive}
    candidates: set[str] = set()
    for root in roots:
        start = package_dir / root if root else package_dir
        if start.exists():
            candidates.update(_walk(package_dir, start))
    return sorted(p for p in candidates if match_any(p, globs) and (package_dir / p).is_file())


def clear_outputs(package_dir: Path, globs: list[str]) -> None:
    """Remove what earlier runs left: whole output folders, or matching files when a glob has no folder."""
    for glob in (g for g in globs if not g.startswith("!")):
        root = static_root(glob)
        if root:
            target = package_dir / root
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
        else:
            for rel in find_outputs(package_dir, [glob]):
                (package_dir / rel).unlink(missing_ok=True)
