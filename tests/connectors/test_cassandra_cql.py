"""CQL generation for the Cassandra sink (no Cassandra server here: generation only)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from freight.connectors.cassandra_cql import create_table, insert
from freight.errors import UserError

SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("day", pa.date32()),
        ("n", pa.int32()),
        ("score", pa.float64()),
        ("x", pa.string()),
    ]
)


def test_create_table_maps_types_and_keys() -> None:
    assert create_table("ks", "daily", SCHEMA, ["user_id"], ["day"]) == (
        'CREATE TABLE IF NOT EXISTS "ks"."daily" ("user_id" bigint, "day" date, "n" int, "score" double, '
        '"x" text, PRIMARY KEY (("user_id"), "day"))'
    )


def test_insert_is_prepared_with_an_optional_ttl() -> None:
    assert insert("ks", "t", ["a", 'q"uote'], ttl=3600) == (
        'INSERT INTO "ks"."t" ("a", "q""uote") VALUES (?, ?) USING TTL 3600'
    )


def test_a_missing_key_or_an_unmapped_type_is_bad_input() -> None:
    with pytest.raises(UserError, match="'nope'"):
        create_table("ks", "t", SCHEMA, ["nope"])
    with pytest.raises(UserError, match="list"):
        create_table("ks", "t", pa.schema([("k", pa.int64()), ("l", pa.list_(pa.int64()))]), ["k"])
