"""Each loader, on the real servers: values round-trip exactly, and every load mode behaves."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterator

import psycopg
import pyarrow as pa
import pytest

from freight.connectors.duckdb_warehouse import DuckDBWarehouse
from freight.connectors.postgres_warehouse import PostgresWarehouse
from freight.connectors.warehouse import Warehouse

TEXTS = ["", None, "NULL", "tab\there", "cr\r\nlf", "back\\slash", 'quo"te, comma', "\\N", "ünï"]
DOUBLES = [0.1, None, 1e300, 1 / 3, 5e-324, -0.0, 123456789.123456789, 2.5, float("inf")]


def edge_table() -> pa.Table:
    n = len(TEXTS)
    return pa.table(
        {
            "id": pa.array(range(1, n + 1), pa.int64()),
            "text": pa.array(TEXTS, pa.string()),
            "dbl": pa.array(DOUBLES, pa.float64()),
            "ts": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 123456)] * (n - 1) + [None], pa.timestamp("us")),
            "day": pa.array([dt.date(2024, 2, 29)] * n, pa.date32()),
            "amount": pa.array([decimal.Decimal("12.34")] * n, pa.decimal128(12, 2)),
            "flag": pa.array([True, False, None] * (n // 3), pa.bool_()),
            "blob": pa.array([b"\x00\x01\xff"] * n, pa.binary()),
        }
    )


def reader(table: pa.Table) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=4))


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, pg_db: str, tmp_path: object) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        wh: Warehouse = DuckDBWarehouse(f"{tmp_path}/wh.duckdb")
    else:
        schema = f"s_{uuid.uuid4().hex[:8]}"
        url = f"postgresql://postgres@127.0.0.1:5432/{pg_db}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        wh = PostgresWarehouse(f"{url}?options=-csearch_path%3D{schema}")
    yield wh
    wh.close()


def rows(wh: Warehouse, table: str = "t") -> list[dict[str, object]]:
    out = wh.query(f"SELECT * FROM {table} ORDER BY id").to_pylist()
    for row in out:
        if isinstance(row.get("blob"), memoryview):
            row["blob"] = bytes(row["blob"])
    return out


def test_values_round_trip_exactly(warehouse: Warehouse) -> None:
    table = edge_table()
    result = warehouse.load("t", reader(table), mode="append")
    assert (result.rows, result.created) == (len(TEXTS), True)
    got = rows(warehouse)
    assert [r["text"] for r in got] == TEXTS  # '' is not NULL, 'NULL' is text, \t \r\n \\ survive
    assert [r["dbl"] for r in got] == DOUBLES  # doubles stay doubles, bit for bit
    assert [repr(r["dbl"]) for r in got] == [repr(v) for v in DOUBLES]  # even -0.0
    assert [r["ts"] for r in got] == table.column("ts").to_pylist()
    assert [r["amount"] for r in got] == table.column("amount").to_pylist()
    assert [r["flag"] for r in got] == table.column("flag").to_pylist()
    assert [r["blob"] for r in got] == table.column("blob").to_pylist()


def test_upsert_twice_leaves_no_duplicates_and_keeps_the_last_row(warehouse: Warehouse) -> None:
    first = pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]})
    warehouse.load("t", reader(first), mode="upsert", primary_key=["id"])
    again = pa.table({"id": [2, 3, 3, 4], "v": ["B", "x", "C", "D"]})  # 3 twice: the last one wins
    warehouse.load("t", reader(again), mode="upsert", primary_key=["id"])
    warehouse.load("t", reader(again), mode="upsert", primary_key=["id"])
    assert [(r["id"], r["v"]) for r in rows(warehouse)] == [(1, "a"), (2, "B"), (3, "C"), (4, "D")]


def test_replace_swaps_the_whole_table(warehouse: Warehouse) -> None:
    warehouse.load("t", reader(pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]})), mode="append")
    result = warehouse.load("t", reader(pa.table({"id": [9], "v": ["z"]})), mode="replace")
    assert result.rows == 1
    assert [(r["id"], r["v"]) for r in rows(warehouse)] == [(9, "z")]
    assert warehouse.columns("t__freight_new") is None and warehouse.columns("t__freight_old") is None


def test_new_source_columns_are_added(warehouse: Warehouse) -> None:
    warehouse.load("t", reader(pa.table({"id": [1], "v": ["a"]})), mode="append")
    result = warehouse.load("t", reader(pa.table({"id": [2], "v": ["b"], "extra": [1.5]})), mode="append")
    assert result.added_columns == ("extra",)
    assert [(r["id"], r["v"], r["extra"]) for r in rows(warehouse)] == [(1, "a", None), (2, "b", 1.5)]


def test_create_table_from_a_ddl_file(warehouse: Warehouse) -> None:
    ddl = "CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(10) NOT NULL, note TEXT DEFAULT 'n/a')"
    result = warehouse.load("t", reader(pa.table({"id": [1], "v": ["a"]})), mode="append", create_sql=ddl)
    assert result.created
    assert rows(warehouse) == [{"id": 1, "v": "a", "note": "n/a"}]


def test_a_failed_load_changes_nothing(warehouse: Warehouse) -> None:
    warehouse.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)")
    warehouse.load("t", reader(pa.table({"id": [1], "v": ["a"]})), mode="append")
    with pytest.raises(Exception):  # noqa: B017 - the driver's own error type
        warehouse.load("t", reader(pa.table({"id": [2, 2], "v": ["b", "c"]})), mode="append")
    assert [(r["id"], r["v"]) for r in rows(warehouse)] == [(1, "a")]


def test_sql_script_runs_in_one_transaction(warehouse: Warehouse) -> None:
    warehouse.execute("CREATE TABLE t (id BIGINT); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
    with pytest.raises(Exception):  # noqa: B017
        warehouse.execute("INSERT INTO t VALUES (3); SELECT * FROM no_such_table")
    assert [r["id"] for r in rows(warehouse)] == [1, 2]
