"""Builds ship images: an app with `image = { containerfile = ... }` in freight.toml gets an image with
its build output, tagged by the build hash in the real registry, beside its static release; the image
runs as a job and serves the built file; a cached build reuses the same image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from freight.builds.appimage import image_name
from freight.builds.config import AppImage
from freight.builds.depcache import mark_installed
from freight.builds.sample import git_init
from freight.builds.store import BuildStore
from freight.builds.workspace import load_workspace
from freight.config import load_settings
from freight.runtime.registry import RegistryClient
from tests.containers import BuiltImage

CONTAINERFILE = "FROM scratch\nCOPY busybox /bin/busybox\nCOPY dist /www\n"


def workspace(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "package.json").write_text(
        json.dumps({"name": "shop", "private": True, "workspaces": ["apps/*"]})
    )
    (root / "freight.toml").write_text(
        '[tasks.build]\ncpus = 0.5\nmemory = "64M"\noutputs = ["dist/**"]\n\n'
        '[apps.web]\nimage = { containerfile = "Containerfile" }\n'
    )
    app = root / "apps" / "web"
    app.mkdir(parents=True)
    script = "mkdir -p dist && echo built-page > dist/index.html"
    (app / "package.json").write_text(json.dumps({"name": "web", "scripts": {"build": script}}))
    (app / "Containerfile").write_text(CONTAINERFILE)
    (app / ".host-files").write_text("/bin/busybox\n")
    (app / "node_modules").mkdir()
    (app / "node_modules" / "big").write_bytes(b"x" * 1024)  # never part of the image's context
    git_init(root)
    mark_installed(load_workspace(root))
    return root


def freight(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "freight.cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )


def test_a_build_ships_its_app_as_an_image(
    tmp_path: Path, cgroup_parent: str, test_image: BuiltImage
) -> None:
    ws = workspace(tmp_path / "ws")
    env = {
        "FREIGHT_HOME": str(tmp_path / "home"),
        "FREIGHT_CGROUP_PARENT": cgroup_parent,
        "FREIGHT_CPUS": "2",
        "FREIGHT_REGISTRY": test_image.registry.address,
    }
    first = freight(env, "build", "--cwd", str(ws), "--json")
    assert first.returncode == 0, first.stderr
    releases = json.loads(first.stdout)["releases"]
    assert len(releases) == 1 and releases[0]["app"] == "web"
    pinned = releases[0]["image"]
    assert pinned.startswith(f"{test_image.registry.address}/web@sha256:")

    # tagged by the build hash in the registry; recorded beside the release
    tags = RegistryClient(test_image.registry.address).tags("web")
    assert len(tags) == 1 and len(tags[0]) == 16
    store = BuildStore.open(load_settings(env))
    try:
        assert [r.image for r in store.releases("web")] == [pinned]
    finally:
        store.close()

    # the image holds the build output
    out = freight(env, "run", "--image", pinned, "--", "/bin/busybox", "cat", "/www/index.html")
    assert out.returncode == 0 and "built-page" in out.stdout, out.stderr

    again = freight(env, "build", "--cwd", str(ws))
    assert again.returncode == 0, again.stderr
    assert f"image web {pinned}" in again.stdout  # the same outputs: the same image, not rebuilt
    listed = freight(env, "releases", "web")
    assert f"image {pinned}" in listed.stdout, listed.stderr


def test_the_containerfile_must_be_inside_the_package() -> None:
    assert image_name("Shop Web!") == "shop-web"
    with pytest.raises(ValueError, match="inside the package"):
        AppImage(containerfile="../Containerfile")
