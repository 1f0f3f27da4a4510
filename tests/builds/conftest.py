"""Fixtures for builds: real esbuild from npm, a generated 12-app workspace, the real job platform.

esbuild is installed by the tests themselves into `.cache/npm-esbuild/` of the repository (once; the
folder ignores itself in git). The session's template workspace is generated, `npm install`ed (which
writes its package-lock.json) and committed; each test gets its own copy, node_modules included.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from freight.builds.api import Builds
from freight.builds.depcache import mark_installed
from freight.builds.sample import generate, git_init
from freight.builds.workspace import load_workspace
from freight.config import Settings
from freight.jobs.service import JobService

REPO = Path(__file__).resolve().parents[2]
ESBUILD_DIR = REPO / ".cache" / "npm-esbuild"
ESBUILD_VERSION = "0.28.2"
APPS = 12


def _npm(args: list[str], cwd: Path) -> None:
    done = subprocess.run(["npm", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"npm {' '.join(args)} failed in {cwd}:\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def esbuild_version() -> str:
    return install_esbuild()


def install_esbuild() -> str:
    """esbuild from the npm registry, installed once under .cache/npm-esbuild/; its version."""
    ESBUILD_DIR.mkdir(parents=True, exist_ok=True)
    (ESBUILD_DIR / ".gitignore").write_text("*\n")
    with (ESBUILD_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = ESBUILD_DIR / "node_modules" / "esbuild" / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text())["version"] != ESBUILD_VERSION:
            (ESBUILD_DIR / "package.json").write_text('{"private": true}\n')
            _npm(["install", "--no-audit", "--no-fund", f"esbuild@{ESBUILD_VERSION}"], ESBUILD_DIR)
    binary = ESBUILD_DIR / "node_modules" / ".bin" / "esbuild"
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ESBUILD_VERSION
    return ESBUILD_VERSION


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory, esbuild_version: str) -> Path:
    """A committed 12-app workspace with its lockfile and installed node_modules."""
    return sample_workspace(tmp_path_factory.mktemp("template") / "ws", APPS, esbuild_version)


def sample_workspace(root: Path, apps: int, esbuild_version: str) -> Path:
    """The sample monorepo with `apps` apps at `root`, npm-installed and committed."""
    generate(root, apps, esbuild_version=esbuild_version)
    # The npm cache already holds esbuild (install_esbuild fetched it), so this stays local.
    _npm(["install", "--no-audit", "--no-fund", "--prefer-offline"], root)
    git_init(root)
    mark_installed(load_workspace(root))
    return root


def copy_workspace(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


@pytest.fixture
def ws(template: Path, tmp_path: Path) -> Path:
    return copy_workspace(template, tmp_path / "ws")


@pytest.fixture
def platform(settings: Settings) -> Iterator[JobService]:
    """The real embedded job platform with an in-process scheduler (2 cpus of capacity)."""
    svc = JobService.open(replace(settings, cpus=2.0, memory=8 << 30))
    svc.start_scheduler(poll_interval=0.2)
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture
def builds(settings: Settings) -> Iterator[Builds]:
    with Builds.open(settings) as opened:
        yield opened
