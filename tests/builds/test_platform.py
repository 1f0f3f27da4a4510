"""The embedded platform opens with the first task that must run: a fully cached build never starts it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from freight.builds.api import Builds
from freight.builds.plan import PlanOptions
from freight.builds.platform import LazyPlatform
from freight.config import Settings


def test_a_fully_cached_build_never_opens_the_platform(ws: Path, settings: Settings, builds: Builds) -> None:
    settings = replace(settings, cpus=2.0, memory=8 << 30)
    only = PlanOptions(only=("app-01",))
    with LazyPlatform(settings, builds.store.engine) as client:  # the build store's engine, migrated
        cold = builds.build(client, ws, only)
        assert cold.ok, cold.table()
        assert client.opened and cold.results["@sample/app-01#build"].status == "built"
    assert not client.opened  # closed: its scheduler stopped
    with LazyPlatform(settings) as client:
        warm = builds.build(client, ws, only)
        assert warm.ok and warm.results["@sample/app-01#build"].status == "cached"
        assert not client.opened
    # outputs left in place: their release is the one recorded, found without reading the files
    assert [(r["app"], r["release"], r["new"]) for r in warm.releases] == [
        ("app-01", cold.releases[0]["release"], False)
    ]
    assert builds.store.last_task(str(ws), "@sample/app-01#build") is not None  # still recorded
