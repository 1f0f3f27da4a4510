"""The Redshift warehouse: generated SQL and manifest checked as text; the staging and merge path run
on the real PostgreSQL with PostgreSQL's COPY standing in for COPY FROM S3 (no Redshift here)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from freight.connectors.connections import load_connections
from freight.connectors.postgres_warehouse import PostgresWarehouse
from freight.connectors.redshift_warehouse import (
    STAGE,
    RedshiftWarehouse,
    Staged,
    copy_sql,
    load_errors_message,
    merge_sql,
    stage_files,
    stage_table_sql,
)
from freight.errors import UserError
from freight.storage.objectstore import ObjectStore

ROLE = "arn:aws:iam::123456789012:role/freight-load"


def test_copy_names_the_manifest_and_the_role() -> None:
    assert copy_sql("public.orders", "s3://b/stage/orders/x/manifest.json", ROLE) == (
        'COPY "public"."orders" FROM \'s3://b/stage/orders/x/manifest.json\' '
        f"IAM_ROLE '{ROLE}' FORMAT AS PARQUET MANIFEST"
    )


def test_merge_deletes_staged_keys_and_inserts_the_last_row_per_key() -> None:
    assert merge_sql("t", ["id", "v"], "upsert", ["id"]) == [
        f'DELETE FROM "t" USING {STAGE} WHERE "t"."id" = {STAGE}."id"',
        f'INSERT INTO "t" ("id", "v") SELECT "id", "v" FROM (SELECT "id", "v", ROW_NUMBER() OVER '
        f'(PARTITION BY "id" ORDER BY freight_seq DESC) AS freight_rn FROM {STAGE}) latest '
        "WHERE freight_rn = 1",
    ]
    assert merge_sql("t", ["id"], "replace", []) == [
        'DELETE FROM "t"',
        f'INSERT INTO "t" ("id") SELECT "id" FROM {STAGE}',
    ]
    schema = pa.schema([("note", pa.string()), ("n", pa.int64())])
    assert stage_table_sql(schema) == f'CREATE TEMP TABLE {STAGE} ("note" VARCHAR(65535), "n" bigint)'


def test_the_manifest_names_every_part_with_its_size(tmp_path: Path) -> None:
    table = pa.table({"id": list(range(10))})
    store = ObjectStore(f"file://{tmp_path}/stage")
    staged = stage_files(table.to_reader(max_chunksize=3), store, rows_per_file=4)
    assert staged.rows == 10 and len(staged.files) == 2  # a new file once 4 rows are in one
    manifest = json.loads(store.get_bytes("manifest.json"))
    assert manifest == staged.manifest
    for entry in manifest["entries"]:
        path = Path(entry["url"].removeprefix("file://"))
        assert entry["mandatory"] is True and entry["meta"]["content_length"] == path.stat().st_size


def test_stl_load_errors_rows_make_the_error() -> None:
    rows = [
        {
            "filename": "s3://b/p/part-00000.parquet",
            "line_number": 0,
            "colname": "amount",
            "err_reason": "Invalid digit",
            "raw_field_value": "x1",
        }
    ]
    assert load_errors_message("orders", rows) == (
        "COPY into orders failed at s3://b/p/part-00000.parquet: s3://b/p/part-00000.parquet line 0 "
        "column amount: Invalid digit (value 'x1')"
    )


def pg_copy(wh: PostgresWarehouse, staged: Staged, schema: pa.Schema) -> None:
    """PostgreSQL's COPY of exactly the files the manifest names, in place of COPY FROM S3."""
    batches = (
        b
        for url in json.loads(Path(staged.manifest_url.removeprefix("file://")).read_text())["entries"]
        for b in pq.ParquetFile(url["url"].removeprefix("file://")).iter_batches()
    )
    wh._copy(STAGE, schema.names, batches)


def test_the_load_path_runs_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    wh = RedshiftWarehouse(pg_url, s3_staging=f"file://{tmp_path}/stage", iam_role=ROLE, copy=pg_copy)
    awkward = ["", None, "tab\there", "cr\r\nlf", "back\\slash", "NULL"]
    first = pa.table(
        {"id": [1, 2, 3, 4, 5, 6], "note": awkward, "x": [0.1, 1e300, None, 1 / 3, 5e-324, -0.0]}
    )
    try:
        assert wh.load("orders", first.to_reader()).rows == 6
        again = pa.table({"id": [2, 2, 7], "note": ["old", "new", "seven"], "x": [1.0, 2.0, 3.0]})
        wh.load("orders", again.to_reader(), mode="upsert", primary_key=["id"])
    finally:
        wh.close()
    with psycopg.connect(pg_url) as conn:
        got = conn.execute("SELECT id, note, x FROM orders ORDER BY id").fetchall()
        kinds = conn.execute(
            "SELECT data_type, character_maximum_length FROM information_schema.columns "
            "WHERE table_name = 'orders' AND column_name = 'note'"
        ).fetchone()
    assert got == [
        (1, "", 0.1),
        (2, "new", 2.0),
        (3, "tab\there", None),
        (4, "cr\r\nlf", 1 / 3),
        (5, "back\\slash", 5e-324),
        (6, "NULL", -0.0),
        (7, "seven", 3.0),
    ]
    assert kinds == ("character varying", 65535)


def test_a_redshift_connection_needs_its_staging_prefix_and_role(tmp_path: Path) -> None:
    config = tmp_path / "freight.toml"
    config.write_text('[connections.rs]\nkind = "redshift"\nurl = "redshift://u:${RS_PW}@h:5439/db"\n')
    with pytest.raises(UserError, match="needs `s3_staging`"):
        load_connections(config, home=tmp_path)
    config.write_text(config.read_text() + f's3_staging = "s3://bucket/freight"\niam_role = "{ROLE}"\n')
    conn = load_connections(config, home=tmp_path).warehouse("rs")
    assert conn.option("iam_role") == ROLE and conn.is_warehouse
