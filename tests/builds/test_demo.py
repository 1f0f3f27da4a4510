"""`make run`'s builds part: the example workspace built, deployed, changed, rolled back, cloned."""

from __future__ import annotations

from freight.builds.demo import run_demo
from freight.builds.gateway import IMMUTABLE
from freight.config import Settings
from freight.jobs.service import JobService


def test_demo_on_the_example_workspace(
    settings: Settings, platform: JobService, esbuild_version: str
) -> None:
    result = run_demo(settings, client=platform, echo=False)
    assert result.cold["totals"]["built"] == 3 and result.cold["deps"]["status"] == "installed"
    assert result.cached["totals"]["cached"] == 3
    assert result.headers["html"]["cache-control"] == "no-cache"
    assert result.headers["asset"]["cache-control"] == IMMUTABLE
    changed = {t["task"]: t["status"] for t in result.changed["tasks"]}
    assert changed["@example/shop#build"] == "built"
    assert changed["@example/blog#build"] == changed["@example/admin#build"] == "cached"
    assert result.pages["v2"] != result.pages["v1"]  # the new bundle's name
    assert result.pages["rolled_back"] == result.pages["v1"]
    assert result.clone["deps"]["status"] == "restored"
    assert result.clone["totals"]["built"] == 1 and result.clone["totals"]["cached"] == 2
