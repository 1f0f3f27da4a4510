"""The files of a workspace as git sees them: path -> "mode blob-sha1", the working tree included.

Tracked files come from the index (`git ls-files -s`), so a clean checkout costs no reading at all.
Modified and untracked-but-not-ignored files are hashed the way git hashes blobs, so a file's digest
is the same whether it is committed or not, on any machine and in any clone.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

from freight.errors import UserError

_SKIP_DIRS = {"node_modules", ".git", ".freight", ".cache", ".turbo"}


def blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _file_digest(path: Path) -> str | None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return f"120000 {blob_sha(os.readlink(path).encode())}"
    if not stat.S_ISREG(info.st_mode):
        return None
    mode = "100755" if info.st_mode & stat.S_IXUSR else "100644"
    return f"{mode} {blob_sha(path.read_bytes())}"


def _git(root: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)
    except FileNotFoundError:
        raise UserError("git is not installed", hint="install git; builds hash git-tracked files") from None
    if done.returncode != 0:
        raise UserError(
            f"git {args[0]} failed: {done.stderr.decode(errors='replace').strip()}", where=str(root)
        )
    return done.stdout


def is_git_repo(root: Path) -> bool:
    done = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], cwd=root, capture_output=True, check=False
    )
    return done.returncode == 0 and done.stdout.strip() == b"true"


#: Listings the fast path of this process already made (root -> files), each used once by the full
#: path it hands over to, which then need not ask git again.
_handed: dict[Path, dict[str, str]] = {}


def hand_over(root: Path, files: dict[str, str]) -> None:
    _handed[root.resolve()] = files


def take_back(root: Path) -> None:
    """Forget a listing handed over and not used (a long-lived process must not plan from it later)."""
    _handed.pop(root.resolve(), None)


def list_files(root: Path) -> dict[str, str]:
    """Every input file under `root` (relative '/' paths) -> "mode sha1"."""
    handed = _handed.pop(root.resolve(), None)
    if handed is not None:
        return dict(handed)
    if not is_git_repo(root):
        return _walk(root)
    files: dict[str, str] = {}
    for record in _git(root, "ls-files", "-s", "-z").split(b"\0"):
        if not record:
            continue
        meta, raw_path = record.split(b"\t", 1)
        mode, sha, _stage = meta.decode().split(" ")
        # A submodule (mode 160000) is hashed by its commit, which is what the index holds.
        files[raw_path.decode()] = f"{mode} {sha}"
    changed = _git(root, "ls-files", "-z", "-t", "-m", "-d", "-o", "--exclude-standard")
    removed: set[str] = set()
    dirty: set[str] = set()
    for record in changed.split(b"\0"):
        if not record:
            continue
        tag, name = record[:1], record[2:].decode()
        if tag == b"R":
            removed.add(name)
        else:
            dirty.add(name)
    for path in dirty - removed:
        if any(part in _SKIP_DIRS for part in path.split("/")):
            continue
        digest = _file_digest(root / path)
        if digest is None:
            files.pop(path, None)
        else:
            files[path] = digest
    for path in removed:
        files.pop(path, None)
    return files


def _walk(root: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in filenames:
            path = Path(dirpath) / name
            digest = _file_digest(path)
            if digest is not None:
                files[path.relative_to(root).as_posix()] = digest
    return files


def changed_since(root: Path, ref: str) -> set[str]:
    """Files that differ between `ref` (its merge base with HEAD) and the working tree, untracked included."""
    if not is_git_repo(root):
        raise UserError("--affected-since needs a git repository", where=str(root))
    verify = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=root, capture_output=True
    )
    if verify.returncode != 0:
        raise UserError(
            f"unknown git ref {ref!r}", where="--affected-since", hint="give a branch, tag or commit"
        )
    base = subprocess.run(["git", "merge-base", ref, "HEAD"], cwd=root, capture_output=True)
    start = base.stdout.decode().strip() if base.returncode == 0 else ref
    paths = _git(root, "diff", "--name-only", "-z", "--relative", start).split(b"\0")
    untracked = _git(root, "ls-files", "-z", "-o", "--exclude-standard").split(b"\0")
    return {p.decode() for p in (*paths, *untracked) if p}


def head_commit(root: Path) -> str | None:
    """HEAD's commit; None outside a git repository or before its first commit (one git call: every
    build asks)."""
    try:
        done = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=root, capture_output=True)
    except FileNotFoundError:
        return None
    return done.stdout.decode().strip() if done.returncode == 0 else None
