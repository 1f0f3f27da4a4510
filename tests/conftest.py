"""Shared fixtures: a fresh FREIGHT_HOME per test, and stores on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from freight.config import Settings, load_settings

PG_ADMIN = os.environ.get("FREIGHT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def tmp_path(tmp_path: Path) -> Path:
    """pytest's tmp_path, open to the job user (jobs run as freight-job when the tests run as root):
    jobs of a test write their files here, as they would into a folder their owner gave them. The
    folders above it are only passable; FREIGHT_HOME under it is closed again (mode 0700)."""
    if os.geteuid() == 0:
        for parent in (tmp_path.parent, tmp_path.parent.parent):
            parent.chmod(parent.stat().st_mode | 0o011)
        tmp_path.chmod(0o1777)
    return tmp_path


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
    from freight.runtime.slots import SlotPool

    with contextlib.suppress(CgroupUnavailable):
        SlotPool(open_cgroups(CGROUP_PARENT)).destroy()


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
