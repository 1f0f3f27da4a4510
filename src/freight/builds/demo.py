"""The builds demo (`make run`): build, cache, release, deploy, serve and roll back a small workspace.

Uses examples/workspace (three esbuild apps over a shared package) copied into FREIGHT_HOME, so the
repository stays clean. Every step goes through the real platform: the dependency install and each
app's build are jobs; the gateway answers real HTTP requests.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from freight.builds.api import Builds
from freight.builds.gateway import serving
from freight.builds.progress import PlainReporter
from freight.builds.sample import generate, git_commit, git_init
from freight.config import Settings
from freight.jobs.client import JobClient
from freight.units import format_duration

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "workspace"


@dataclass
class DemoResult:
    cold: dict[str, Any] = field(default_factory=dict)
    cached: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, Any] = field(default_factory=dict)
    clone: dict[str, Any] = field(default_factory=dict)
    pages: dict[str, str] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)


def prepare_workspace(target: Path) -> Path:
    """A fresh git checkout of the example workspace (or a generated one if examples/ is absent)."""
    if target.exists():
        shutil.rmtree(target)
    if EXAMPLE.is_dir():
        shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("node_modules", "dist"))
    else:
        generate(target, 3, esbuild_version="0.28.2")
    git_init(target)
    return target


@contextlib.contextmanager
def _platform(settings: Settings, client: JobClient | None) -> Iterator[JobClient]:
    if client is not None:
        yield client
        return
    from freight.jobs.service import JobService

    with JobService.open(settings) as svc, svc.running():
        yield svc


def run_demo(settings: Settings, *, client: JobClient | None = None, echo: bool = True) -> DemoResult:
    console = Console(quiet=not echo, highlight=False, soft_wrap=True)
    result = DemoResult()
    base = settings.home / "builds-demo"
    ws = prepare_workspace(base / "workspace")
    reporter = PlainReporter(sys.stdout, logs=False, live=False) if echo else None
    with _platform(settings, client) as jobs, Builds.open(settings) as builds:
        console.print(f"[bold]1. cold build[/] of {ws} (dependencies install as a job, then 3 app builds)")
        cold = builds.build(jobs, ws, reporter=reporter)
        console.print(cold.table())
        result.cold = cold.to_dict()

        console.print("\n[bold]2. again[/]: every app is a cache hit, outputs restored, logs replayed")
        cached = builds.build(jobs, ws)
        result.cached = cached.to_dict()
        console.print(
            f"{cached.count('cached')} cached in {format_duration(cached.ended_at - cached.started_at)}; "
            f"saved {format_duration(cached.totals()['saved_seconds'])} of build time"
        )

        for app in ("shop", "blog", "admin"):
            builds.deploy(app, env="prod", actor="demo")
        with serving(builds.gateway(ttl=0)) as url, httpx.Client(base_url=url) as http:
            page = http.get("/shop/")
            asset = re.search(r'src="(/shop/assets/[^"]+)"', page.text)
            js = http.get(asset.group(1)) if asset else None
            result.pages["v1"] = page.text
            result.headers["html"] = dict(page.headers)
            result.headers["asset"] = dict(js.headers) if js else {}
            console.print(f"\n[bold]3. deployed[/]; gateway at {url}")
            console.print(f"GET /shop/ -> {page.status_code}, cache-control: {page.headers['cache-control']}")
            if js is not None and asset is not None:
                console.print(
                    f"GET {asset.group(1)} -> {js.status_code}, "
                    f"cache-control: {js.headers['cache-control']}, "
                    f"content-encoding: {js.headers.get('content-encoding', '-')}"
                )
                again = http.get(asset.group(1), headers={"if-none-match": js.headers["etag"]})
                console.print(f"  again with If-None-Match -> {again.status_code}")

            console.print("\n[bold]4. change the shop[/]: only the shop rebuilds; deploy it, then roll back")
            main = ws / "apps/shop/src/main.js"
            main.write_text(main.read_text().replace('const banner = "Shop"', 'const banner = "Shop: sale!"'))
            git_commit(ws, "shop: sale banner")
            changed = builds.build(jobs, ws)
            result.changed = changed.to_dict()
            console.print(
                f"built {changed.count('built')}, cached {changed.count('cached')}: "
                + ", ".join(f"{r.task} {r.status}" for r in changed.results.values() if r.status != "noop")
            )
            release_id, _ = builds.deploy("shop", env="prod", actor="demo")
            result.pages["v2"] = http.get("/shop/").text
            old_asset = http.get(asset.group(1)).status_code if asset else None
            console.print(f"deployed {release_id}; the previous bundle still answers {old_asset}")
            back = builds.rollback("shop", env="prod", actor="demo")
            result.pages["rolled_back"] = http.get("/shop/").text
            restored = result.pages["rolled_back"] == page.text
            console.print(f"rolled back to {back.release_id}: the first page is back = {restored}")

        console.print(
            "\n[bold]5. a clean clone[/] (a new build machine): dependencies come from the snapshot"
        )
        clone = base / "clone"
        if clone.exists():
            shutil.rmtree(clone)
        subprocess.run(["git", "clone", "-q", str(ws), str(clone)], check=True)
        (clone / "apps/blog/src/main.js").open("a").write("// touched on the new machine\n")
        fresh = builds.build(jobs, clone)
        result.clone = fresh.to_dict()
        deps = fresh.deps or {}
        console.print(
            f"dependencies {deps.get('status')} in {format_duration(deps.get('seconds'))} "
            f"(install took {format_duration(deps.get('install_seconds'))}); "
            f"{fresh.count('cached')} apps from the cache, {fresh.count('built')} built"
        )
        console.print("try: [bold]freight releases shop --history[/], [bold]freight serve[/] and open /shop/")
    return result
