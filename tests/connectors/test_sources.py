from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from freight.connectors.connections import Connection, expand
from freight.connectors.files import FileSource
from freight.connectors.sql_source import SqlSource
from freight.errors import TerminalError, UserError
from tests.pipelines.conftest import EDGE_ROWS


def test_mariadb_table_streams_in_batches_with_exact_values(mariadb_db: str) -> None:
    conn = Connection("shop", "mariadb", url=f"mysql://root@127.0.0.1:3306/{mariadb_db}")
    reader = SqlSource(conn, table="orders", batch_size=3).open()
    batches = list(reader)
    assert max(b.num_rows for b in batches) <= 3
    got = pa.Table.from_batches(batches).sort_by("id").to_pylist()
    assert [(r["id"], r["note"], r["amount"]) for r in got] == [(r[0], r[1], r[2]) for r in EDGE_ROWS]


def test_mariadb_split_by_key_ranges_reads_every_row_once(mariadb_db: str) -> None:
    conn = Connection("shop", "mariadb", url=f"mysql://root@127.0.0.1:3306/{mariadb_db}")
    source = SqlSource(conn, query="SELECT id, note FROM orders", split_column="id", split_parts=3)
    ids = sorted(pa.Table.from_batches(list(source.open())).column("id").to_pylist())
    assert ids == [r[0] for r in EDGE_ROWS]
    for column, says in (("nope", "Unknown column"), ("note", "only be done on int columns")):
        bad = SqlSource(conn, table="orders", split_column=column, split_parts=2)
        with pytest.raises(UserError) as err:
            bad.open()
        assert str(err.value).startswith(f"split.column: cannot split on {column!r}: "), str(err.value)
        assert says in str(err.value) and str(err.value).endswith(
            "(split on an integer column of the table or query)"
        )


def test_postgres_query_source(pg_db: str) -> None:
    url = f"postgresql://postgres@127.0.0.1:5432/{pg_db}"
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("CREATE TABLE src_edge (id int, t text, d float8)")
        pg.execute("INSERT INTO src_edge VALUES (1, '', 0.1), (2, NULL, 1e300), (3, 'NULL', 5e-324)")
    conn = Connection("pg", "postgres", url=url)
    got = SqlSource(conn, query="SELECT * FROM src_edge ORDER BY id").open().read_all().to_pylist()
    assert got == [
        {"id": 1, "t": "", "d": 0.1},
        {"id": 2, "t": None, "d": 1e300},
        {"id": 3, "t": "NULL", "d": 5e-324},
    ]


def test_source_errors_never_show_a_secret(mariadb_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FREIGHT_TEST_SECRET", "sup3r_s3cret")
    expand("${FREIGHT_TEST_SECRET}")  # as resolving a connection URL does
    conn = Connection("shop", "mariadb", url=f"mysql://root@127.0.0.1:3306/{mariadb_db}")
    with pytest.raises(TerminalError) as err:
        SqlSource(conn, query="SELECT sup3r_s3cret FROM orders").open()  # the server echoes the name
    assert "sup3r_s3cret" not in str(err.value)
    assert str(err.value).startswith("reading from 'shop' failed:") and "***" in str(err.value)


def test_a_refused_login_is_bad_input_at_once(mariadb_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # connectorx alone retried the login for 30 s, then failed as a read that a retry might mend
    monkeypatch.setenv("FREIGHT_TEST_PW", "n0t-the-pw")
    for url, says in (
        ("mysql://root:${FREIGHT_TEST_PW}@127.0.0.1:3306/" + mariadb_db, "Access denied for user 'root'"),
        ("mysql://root@127.0.0.1:3306/no_such_db_here", "Unknown database"),
    ):
        with pytest.raises(UserError) as err:
            SqlSource(Connection("shop", "mariadb", url=url), table="orders").open()
        assert str(err.value).startswith("connections.shop.url: 'shop' refused the login: "), str(err.value)
        assert says in str(err.value) and "n0t-the-pw" not in str(err.value)


def test_files_csv_tsv_jsonl_parquet_by_glob(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text('id,note\n1,""\n2,"tab\there"\n3,NULL\n')
    (tmp_path / "b.csv").write_text('id,note\n4,"multi\nline"\n')
    (tmp_path / "c.tsv").write_text("id\tnote\n5\tx\n")
    (tmp_path / "d.jsonl").write_text(
        json.dumps({"id": 6, "note": None}) + "\n" + json.dumps({"id": 7, "note": ""})
    )
    pq.write_table(pa.table({"id": [8], "note": ["p"]}), tmp_path / "e.parquet")
    csv = pa.Table.from_batches(list(FileSource(str(tmp_path / "*.csv")).batches())).to_pylist()
    assert csv == [
        {"id": 1, "note": ""},
        {"id": 2, "note": "tab\there"},
        {"id": 3, "note": "NULL"},
        {"id": 4, "note": "multi\nline"},
    ]
    assert [b.to_pylist() for b in FileSource(str(tmp_path / "c.tsv")).batches()] == [
        [{"id": 5, "note": "x"}]
    ]
    rows = pa.Table.from_batches(list(FileSource(str(tmp_path / "d.jsonl")).batches())).to_pylist()
    assert rows == [{"id": 6, "note": None}, {"id": 7, "note": ""}]
    parquet = FileSource(tmp_path.as_uri() + "/*.parquet")
    assert [b.to_pylist() for b in parquet.batches()] == [[{"id": 8, "note": "p"}]]
    with pytest.raises(UserError, match="no files match"):
        FileSource(str(tmp_path / "*.xml")).files()


def test_a_file_that_does_not_fit_its_types_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,qty\n1,2\n2,abc\n")
    with pytest.raises(UserError) as err:
        list(FileSource(str(bad), column_types={"qty": "int64"}).batches())
    assert str(err.value).startswith(
        f"cannot read {str(bad)!r} as csv: In CSV column #1: CSV conversion error"
    )
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(UserError, match=r"x\.parquet' as parquet: Parquet magic bytes not found"):
        list(FileSource(str(tmp_path / "x.parquet")).batches())
