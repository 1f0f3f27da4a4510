"""Fixtures for runtime tests: real cgroups under a parent unique to this test session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from freight.config import Settings, load_settings
from freight.runtime import create_runtime
from freight.runtime.cgroups import open_cgroups
from freight.runtime.notices import forget_warnings
from freight.runtime.process import ShimRuntime
from freight.runtime.slots import SlotPool
from tests.runtime.helpers import CGROUP_PARENT

MAKE_SETTINGS = Callable[..., Settings]


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One FREIGHT_HOME per session (the C shim is compiled once); the cgroups go at the end."""
    home = tmp_path_factory.mktemp("home")
    yield home
    SlotPool(open_cgroups(CGROUP_PARENT)).destroy()


@pytest.fixture
def make_settings(home: Path) -> MAKE_SETTINGS:
    def make(isolation: str = "cgroups", **env: str) -> Settings:
        values = {
            "FREIGHT_HOME": str(home),
            "FREIGHT_CGROUP_PARENT": CGROUP_PARENT,
            "FREIGHT_ISOLATION": isolation,
        }
        return load_settings({**values, **env})

    return make


@pytest.fixture
def settings(make_settings: MAKE_SETTINGS) -> Settings:
    return make_settings()


@pytest.fixture
def runtime(settings: Settings) -> Iterator[ShimRuntime]:
    forget_warnings()
    runtime = create_runtime(settings)
    yield runtime
    runtime.close()


@pytest.fixture
def rlimits_runtime(make_settings: MAKE_SETTINGS) -> Iterator[ShimRuntime]:
    forget_warnings()
    runtime = create_runtime(make_settings("rlimits"))
    yield runtime
    runtime.close()
