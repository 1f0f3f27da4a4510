from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pymysql
import pytest

from freight.config import Settings, load_settings
from freight.pipelines.runner import PipelineRunner
from freight.pipelines.store import RunStore
from tests.pipelines.jobclient_double import LocalJobClient

# One row per awkward value: '' vs NULL, tabs, CR/LF, backslashes, the text 'NULL', doubles that
# rounding would change, and a quote.
EDGE_ROWS = [
    (1, "plain", 0.1, "2024-01-02 03:04:05", 10),
    (2, "", 1e300, "2024-02-29 00:00:00", 20),
    (3, None, 3.141592653589793, None, None),
    (4, "tab\there", 1 / 3, "2024-03-01 12:00:00", 40),
    (5, "cr\r\nlf", 5e-324, "2024-03-02 12:00:00", 50),
    (6, "back\\slash", -0.0, "2024-03-03 12:00:00", 60),
    (7, "NULL", 123456789.123456789, "2024-03-04 12:00:00", 70),
    (8, 'quo"te, comma', 2.5, "2024-03-05 12:00:00", 80),
]


@pytest.fixture(scope="session")
def mariadb_db() -> Iterator[str]:
    name = f"freight_t_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
        cur.execute(f"USE {name}")
        cur.execute(
            "CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(100) NULL, amount DOUBLE NULL, "
            "placed DATETIME NULL, qty INT NULL)"
        )
        cur.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s)", EDGE_ROWS)
    try:
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {name}")
        conn.close()


@pytest.fixture(scope="session")
def pg_db() -> Iterator[str]:
    name = f"freight_t_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@dataclass
class Env:
    settings: Settings
    config: Path
    root: Path
    pg_url: str
    pg_schema: str
    mariadb: str

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def pg(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.pg_url, autocommit=True)


@pytest.fixture
def env(tmp_path: Path, mariadb_db: str, pg_db: str, monkeypatch: pytest.MonkeyPatch) -> Env:
    settings = load_settings({"FREIGHT_HOME": str(tmp_path / "home")})
    settings.home.mkdir(parents=True)
    schema = f"s_{uuid.uuid4().hex[:8]}"  # one PostgreSQL schema per test keeps tests apart
    pg_url = f"postgresql://postgres@127.0.0.1:5432/{pg_db}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    monkeypatch.setenv("FREIGHT_TEST_PG_OPTIONS", f"-csearch_path%3D{schema}")
    config = tmp_path / "freight.toml"
    config.write_text(
        f"""
[connections.shop]
kind = "mariadb"
url = "mysql://root@127.0.0.1:3306/{mariadb_db}"

[connections.pgsrc]
kind = "postgres"
url = "postgresql://postgres@127.0.0.1:5432/{pg_db}"

[connections.pgwh]
kind = "postgres"
url = "postgresql://postgres@127.0.0.1:5432/{pg_db}?options=${{FREIGHT_TEST_PG_OPTIONS}}"
"""
    )
    return Env(settings, config, tmp_path, f"{pg_url}?options=-csearch_path%3D{schema}", schema, mariadb_db)


@pytest.fixture
def local_runner(env: Env) -> Iterator[PipelineRunner]:
    """The runner over the in-process JobClient double."""
    store = RunStore.open(env.settings.database_url)
    yield PipelineRunner(LocalJobClient(), store, env.settings, config_path=env.config)
    store.close()


@pytest.fixture
def runner(env: Env) -> Iterator[PipelineRunner]:
    """The runner over the real platform: the embedded JobService and its scheduler."""
    from freight.jobs.service import JobService

    svc = JobService.open(env.settings)
    store = RunStore.open(env.settings.database_url)
    try:
        with svc.running():
            yield PipelineRunner(svc, store, env.settings, config_path=env.config)
    finally:
        store.close()
        svc.close()
