"""Workspace files: hashing through git's index gives the same digests as reading every file."""

from __future__ import annotations

import os
from pathlib import Path

from freight.builds.files import _walk, list_files
from freight.builds.sample import git_commit, git_init


def small_repo(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "package.json").write_text('{"name": "x"}\n')
    (root / "src" / "main.js").write_text("export const a = 1;\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    os.symlink("main.js", root / "src" / "link.js")
    git_init(root)
    return root


def test_a_clean_tree_hashes_from_the_index_as_from_the_files(tmp_path: Path) -> None:
    root = small_repo(tmp_path / "repo")
    from_index = list_files(root)
    assert from_index == _walk(root) and len(from_index) == 4
    assert from_index["run.sh"].startswith("100755 ")
    assert from_index["src/link.js"].startswith("120000 ")


def test_a_dirty_tree_falls_back_to_hashing_the_changed_files(tmp_path: Path) -> None:
    root = small_repo(tmp_path / "repo")
    clean = list_files(root)
    (root / "src" / "main.js").write_text("export const a = 2;\n")  # modified
    (root / "src" / "new.js").write_text("export const b = 1;\n")  # untracked
    (root / "package.json").unlink()  # deleted
    (root / "run.sh").chmod(0o644)  # mode changed
    dirty = list_files(root)
    assert dirty == _walk(root)
    assert dirty["src/main.js"] != clean["src/main.js"] and "package.json" not in dirty
    assert dirty["run.sh"].startswith("100644 ")
    git_commit(root, "the same files, committed")
    assert list_files(root) == dirty  # committed or not, the same digests


def test_head_commit_outside_a_repository_before_and_after_the_first_commit(tmp_path: Path) -> None:
    import subprocess

    from freight.builds.files import head_commit

    plain = tmp_path / "plain"
    plain.mkdir()
    assert head_commit(plain) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=empty, check=True)
    assert head_commit(empty) is None
    repo = small_repo(tmp_path / "repo")
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
    assert head_commit(repo) == done.stdout.strip()


def test_a_handed_over_listing_is_used_once(tmp_path: Path) -> None:
    from freight.builds.files import hand_over

    repo = small_repo(tmp_path / "repo")
    real = list_files(repo)
    hand_over(repo, {"package.json": "100644 handed"})
    assert list_files(repo) == {"package.json": "100644 handed"}
    assert list_files(repo) == real
