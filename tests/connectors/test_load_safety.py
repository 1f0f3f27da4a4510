"""Loads that cannot duplicate: keys on the tables freight creates, key-less upsert targets refused,
overlapping loads into one PostgreSQL table serialised, database errors as one sentence."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pyarrow as pa
import pytest

from freight.connectors.duckdb_warehouse import DuckDBWarehouse
from freight.connectors.postgres_warehouse import PostgresWarehouse
from freight.connectors.warehouse import Warehouse
from freight.errors import UserError
from tests.connectors.test_warehouses import reader, rows, warehouse

__all__ = ["warehouse"]

N = 2_000


def table(values: str = "v") -> pa.Table:
    return pa.table({"id": pa.array(range(N), pa.int64()), "v": [f"{values}{i}" for i in range(N)]})


def test_an_upsert_target_freight_creates_gets_its_primary_key(warehouse: Warehouse) -> None:
    warehouse.load("t", reader(table()), mode="upsert", primary_key=["id"])
    with pytest.raises(Exception):  # noqa: B017 - the driver's own error: the key is enforced
        warehouse.execute("INSERT INTO t (id, v) VALUES (1, 'again')")
    assert len(rows(warehouse)) == N


def test_an_existing_table_without_a_key_is_refused_for_upsert(warehouse: Warehouse) -> None:
    warehouse.execute("CREATE TABLE t (id BIGINT, v TEXT); INSERT INTO t VALUES (1, 'kept')")
    with pytest.raises(UserError) as err:
        warehouse.load("t", reader(table()), mode="upsert", primary_key=["id"])
    assert "has no primary key or unique" in str(err.value) and "(id)" in str(err.value)
    assert "\n" not in str(err.value)
    assert [(r["id"], r["v"]) for r in rows(warehouse)] == [(1, "kept")]  # nothing changed


def test_a_unique_index_on_the_key_will_do(warehouse: Warehouse) -> None:
    warehouse.execute("CREATE TABLE t (id BIGINT, v TEXT); CREATE UNIQUE INDEX t_id ON t (id)")
    if isinstance(warehouse, DuckDBWarehouse):  # DuckDB lists a unique index apart from constraints
        warehouse.execute("DROP INDEX t_id; DROP TABLE t; CREATE TABLE t (id BIGINT UNIQUE, v TEXT)")
    warehouse.load("t", reader(table()), mode="upsert", primary_key=["id"])
    assert len(rows(warehouse)) == N


def test_a_constraint_violation_is_one_sentence(pg_db: str) -> None:
    wh = PostgresWarehouse(f"postgresql://postgres@127.0.0.1:5432/{pg_db}")
    try:
        wh.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        bad = pa.table({"id": pa.array([1], pa.int64()), "v": pa.array([None], pa.string())})
        with pytest.raises(UserError) as err:
            wh.load("t", reader(bad), mode="append")
        assert str(err.value).startswith("the load into 't' breaks a constraint: ")
        assert "\n" not in str(err.value)
    finally:
        wh.close()


def test_appending_rows_already_there_says_how_to_load_them_again(warehouse: Warehouse) -> None:
    """Found by a user re-running the Dataduct example: DuckDB's own ConstraintException came out
    as it was, with no word of what to do."""
    warehouse.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)")
    warehouse.load("t", reader(table()), mode="append")
    with pytest.raises(UserError) as err:
        warehouse.load("t", reader(table()), mode="append")
    assert str(err.value).startswith("the load into 't' breaks a constraint: ")
    assert "\n" not in str(err.value)
    assert err.value.hint is not None and "mode upsert" in err.value.hint
    assert len(rows(warehouse)) == N  # the failed load changed nothing


@pytest.fixture
def pg_two(pg_db: str) -> Iterator[tuple[PostgresWarehouse, PostgresWarehouse, str]]:
    url = f"postgresql://postgres@127.0.0.1:5432/{pg_db}"
    first, second = PostgresWarehouse(url), PostgresWarehouse(url)
    yield first, second, url
    first.close()
    second.close()


def _held_batches(data: pa.Table, started: threading.Event, release: threading.Event) -> pa.RecordBatchReader:
    """The rows, but the stream stops after its first batch until `release` is set: a load that is
    inside its transaction, holding what it holds, for as long as the test wants."""

    def batches() -> Iterator[pa.RecordBatch]:
        chunks = data.to_batches(max_chunksize=500)
        yield chunks[0]
        started.set()
        assert release.wait(60)
        yield from chunks[1:]

    return pa.RecordBatchReader.from_batches(data.schema, batches())


def _waiting_for_advisory_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
    return bool(row and row[0])


def test_two_overlapping_upserts_leave_exactly_one_copy_of_every_row(
    pg_two: tuple[PostgresWarehouse, PostgresWarehouse, str],
) -> None:
    first, second, url = pg_two
    first.load("t", reader(table("old")), mode="upsert", primary_key=["id"])  # a table from an earlier run
    started, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def run(wh: PostgresWarehouse, data: pa.RecordBatchReader) -> None:
        try:
            wh.load("t", data, mode="upsert", primary_key=["id"])
        except BaseException as exc:
            errors.append(exc)

    a = threading.Thread(target=run, args=(first, _held_batches(table("a"), started, release)))
    a.start()
    assert started.wait(60)  # the first load is mid-COPY, inside its transaction
    b = threading.Thread(target=run, args=(second, reader(table("b"))))
    b.start()
    while not _waiting_for_advisory_lock(url):  # the second waits its turn rather than interleave
        assert b.is_alive(), errors
        time.sleep(0.01)
    release.set()
    a.join(60)
    b.join(60)
    assert errors == []
    with psycopg.connect(url) as conn:
        count, distinct, from_b = conn.execute(
            "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE v LIKE 'b%') FROM t"
        ).fetchone() or (0, 0, 0)
    assert (count, distinct, from_b) == (N, N, N)  # one copy of each row, the later load's
