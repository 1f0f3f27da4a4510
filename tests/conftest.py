"""Shared fixtures: a fresh FREIGHT_HOME per test, and stores on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
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


#: per-test folders a job may write into: pytest's own (/tmp/pytest-of-root) is private to the
#: tester, and any pytest session that starts makes it so again, so it cannot be opened up for good
JOB_TMP = Path(tempfile.gettempdir()) / "freight-tests"


@pytest.fixture
def tmp_path(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh folder per test, open to the job user (jobs run as freight-job when the tests run as
    root): jobs write their files here, as into a folder their owner gave them. FREIGHT_HOME under
    it is closed again (mode 0700) by freight itself. Removed after the test."""
    JOB_TMP.mkdir(exist_ok=True)
    JOB_TMP.chmod(0o711)
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:40]
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=JOB_TMP))
    path.chmod(0o1777 if os.geteuid() == 0 else 0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


CGROUP_PARENT = f"freight-test-{os.getpid()}"

#: every Ray cluster the tests start requires this token (Ray's token authentication), as freight
#: requires of the clusters it joins (runtime/ray_auth.py); set before any test starts Ray
RAY_TOKEN_DIR = Path(tempfile.mkdtemp(prefix="freight-test-ray-token-"))
os.environ["RAY_AUTH_MODE"] = "token"
os.environ["RAY_AUTH_TOKEN_PATH"] = str(RAY_TOKEN_DIR / "token")
(RAY_TOKEN_DIR / "token").write_text(uuid.uuid4().hex + uuid.uuid4().hex)
(RAY_TOKEN_DIR / "token").chmod(0o600)


@pytest.fixture
def cgroup_parent() -> str:
    return CGROUP_PARENT


@pytest.fixture(scope="session", autouse=True)
def _remove_test_cgroups() -> Iterator[None]:
    """The session's cgroup slots (and any job left in them) go away when the tests end."""
    yield
    shutil.rmtree(RAY_TOKEN_DIR, ignore_errors=True)
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
    image.remove()  # its names in podman's store: each session's registry port made one more
