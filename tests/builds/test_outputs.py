"""Output files: the manifest check that lets a cache hit skip restoring outputs already in place."""

from __future__ import annotations

import os
from pathlib import Path

from freight.builds.outputs import OutputsState, find_outputs, output_manifest

GLOBS = ["dist/**"]


def built(pkg: Path) -> list[str]:
    (pkg / "dist" / "assets").mkdir(parents=True, exist_ok=True)
    (pkg / "dist" / "index.html").write_text("<html>v1</html>")
    (pkg / "dist" / "assets" / "main-ABCD1234.js").write_text("console.log(1)")
    return find_outputs(pkg, GLOBS)


def test_outputs_recorded_by_freight_are_in_place(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    files = built(pkg)
    manifest = output_manifest(pkg, files)
    state = OutputsState(tmp_path / "state.json")
    state.record(pkg, "app#build", "h1", files)
    state.flush()
    assert OutputsState(tmp_path / "state.json").in_place(pkg, "app#build", "h1", GLOBS, manifest)
    # without the recorded stats (another FREIGHT_HOME, a lost file) the content decides
    other = OutputsState(tmp_path / "other.json")
    assert other.in_place(pkg, "app#build", "h1", GLOBS, manifest)
    other.flush()
    assert (tmp_path / "other.json").exists()  # ... and is recorded for next time


def test_a_changed_missing_extra_or_linked_file_is_not_in_place(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    files = built(pkg)
    manifest = output_manifest(pkg, files)
    state = OutputsState(tmp_path / "state.json")
    state.record(pkg, "app#build", "h1", files)
    index = pkg / "dist" / "index.html"

    # same size and mtime, other content: the ctime (and then the content) tells
    before = index.stat()
    index.write_text("<html>v2</html>")
    os.utime(index, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert not state.in_place(pkg, "app#build", "h1", GLOBS, manifest)
    index.write_text("<html>v1</html>")
    assert state.in_place(pkg, "app#build", "h1", GLOBS, manifest)

    stale = pkg / "dist" / "assets" / "main-OLD00001.js"
    stale.write_text("an earlier build")
    assert not state.in_place(pkg, "app#build", "h1", GLOBS, manifest)
    stale.unlink()

    index.unlink()
    assert not state.in_place(pkg, "app#build", "h1", GLOBS, manifest)
    (tmp_path / "elsewhere.html").write_text("<html>v1</html>")
    index.symlink_to(tmp_path / "elsewhere.html")
    assert not state.in_place(pkg, "app#build", "h1", GLOBS, manifest)
    index.unlink()
    index.write_text("<html>v1</html>")
    index.chmod(0o755)
    assert not state.in_place(pkg, "app#build", "h1", GLOBS, manifest)
    index.chmod(0o644)
    assert state.in_place(pkg, "app#build", "h1", GLOBS, manifest)
    # the stats of another task hash are not trusted: the content is read again
    assert state.in_place(pkg, "app#build", "h2", GLOBS, manifest)


def test_a_link_or_an_unlisted_file_in_an_output_folder_is_not_in_place(tmp_path: Path) -> None:
    """A restore clears the output folder whole: anything else there (a dangling link, a link to a
    folder, a file no glob lists) means the outputs are not what a restore would leave."""
    pkg = tmp_path / "pkg"
    files = built(pkg)
    manifest = output_manifest(pkg, files)
    state = OutputsState(tmp_path / "state.json")
    state.record(pkg, "app#build", "h1", files)
    js_only = ["dist/**/*.js", "dist/index.html"]
    assert state.in_place(pkg, "app#build", "h1", js_only, manifest)
    for make in (
        lambda p: p.symlink_to(tmp_path / "nowhere"),
        lambda p: p.symlink_to(tmp_path, target_is_directory=True),
        lambda p: p.write_text("not an output the globs list"),
    ):
        extra = pkg / "dist" / "extra.txt"
        make(extra)
        assert not state.in_place(pkg, "app#build", "h1", js_only, manifest)
        extra.unlink()
    assert state.in_place(pkg, "app#build", "h1", js_only, manifest)
