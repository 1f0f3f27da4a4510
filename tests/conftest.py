"""Shared fixtures: a fresh FREIGHT_HOME per test, and stores on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from freight.config import Settings, load_settings

if TYPE_CHECKING:
    from tests.containers import BuiltImage

PG_ADMIN = os.environ.get("FREIGHT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


CGROUP_PARENT = f"freight-test-{os.getpid()}"


@pytest.fixture
def cgroup_parent() -> str:
    return CGROUP_PARENT


@pytest.fixture(scope="session", autouse=True)
def _remove_test_cgroups() -> Iterator[None]:
    """The session's cgroup slots (and any job left in them) go away when the tests end."""
    yield
    from freight.runtime.cgroups import CgroupUnavailable, open_cgroups
    from freight.runtime.container import remove_container_cgroups
    from freight.runtime.slots import SlotPool

    with contextlib.suppress(CgroupUnavailable):
        driver = open_cgroups(CGROUP_PARENT)
        remove_container_cgroups(driver)  # what image jobs leave beside and below the slots
        SlotPool(driver).destroy()


@pytest.fixture
def settings(home: Path, cgroup_parent: str) -> Settings:
    base = load_settings({"FREIGHT_HOME": str(home), "FREIGHT_CGROUP_PARENT": cgroup_parent})
    return base


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped afterwards."""
    yield from pg_database()


def pg_database() -> Iterator[str]:
    """Create a PostgreSQL database, yield its URL, drop it when resumed (for wider-scoped fixtures)."""
    name = f"freight_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The same test against both stores."""
    if request.param == "sqlite":
        return settings
    url = request.getfixturevalue("pg_url")
    from dataclasses import replace

    return replace(settings, database_url=url)


@pytest.fixture(scope="session")
def test_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    """An image built offline and pushed to a registry started for the session (container tests)."""
    from tests.containers import build_test_image

    image = build_test_image(tmp_path_factory.mktemp("image"))
    yield image
    image.registry.stop()
