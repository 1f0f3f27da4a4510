"""CQL for a Cassandra sink: the table a schema maps to, and the prepared INSERT that writes it.

Only the generation is here (and unit-tested): no Cassandra server runs on this machine, so the
driver side (cassandra-driver's execute_concurrent with this prepared statement) is not shipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from freight.connectors.identifiers import quote_ident
from freight.errors import UserError

if TYPE_CHECKING:
    import pyarrow as pa


def cql_ident(name: str) -> str:
    return quote_ident(name)  # CQL quotes as standard SQL does


def cql_type(t: pa.DataType, column: str) -> str:
    import pyarrow as pa
    import pyarrow.types as pt

    if pt.is_dictionary(t):
        return cql_type(t.value_type, column)
    table: list[tuple[bool, str]] = [
        (pt.is_boolean(t), "boolean"),
        (t in (pa.int8(),), "tinyint"),
        (t in (pa.int16(), pa.uint8()), "smallint"),
        (t in (pa.int32(), pa.uint16()), "int"),
        (t in (pa.int64(), pa.uint32()), "bigint"),
        (t == pa.uint64(), "varint"),
        (t in (pa.float16(), pa.float32()), "float"),
        (pt.is_float64(t), "double"),
        (pt.is_string(t) or pt.is_large_string(t), "text"),
        (pt.is_binary(t) or pt.is_large_binary(t), "blob"),
        (pt.is_date(t), "date"),
        (pt.is_time(t), "time"),
        (pt.is_timestamp(t), "timestamp"),
        (pt.is_decimal(t), "decimal"),
    ]
    for ok, name in table:
        if ok:
            return name
    raise UserError(f"column {column!r} has type {t}, which the Cassandra sink does not take")


def create_table(
    keyspace: str,
    table: str,
    schema: pa.Schema,
    partition_key: list[str],
    clustering: list[str] | None = None,
) -> str:
    clustering = clustering or []
    missing = [c for c in [*partition_key, *clustering] if c not in schema.names]
    if not partition_key or missing:
        raise UserError(
            f"key column {missing[0]!r} is not in the data" if missing else "a Cassandra table needs a key",
            hint=f"columns: {schema.names}",
        )
    cols = ", ".join(f"{cql_ident(f.name)} {cql_type(f.type, f.name)}" for f in schema)
    part = ", ".join(cql_ident(c) for c in partition_key)
    key = f"({part})" + "".join(f", {cql_ident(c)}" for c in clustering)
    return (
        f"CREATE TABLE IF NOT EXISTS {cql_ident(keyspace)}.{cql_ident(table)} ({cols}, PRIMARY KEY ({key}))"
    )


def insert(keyspace: str, table: str, columns: list[str], *, ttl: int | None = None) -> str:
    """A prepared INSERT (`?` markers). Cassandra's INSERT is an upsert; NULL markers write tombstones,
    so the driver should bind UNSET for NULLs of a fresh row."""
    cols = ", ".join(cql_ident(c) for c in columns)
    marks = ", ".join("?" for _ in columns)
    using = f" USING TTL {int(ttl)}" if ttl else ""
    return f"INSERT INTO {cql_ident(keyspace)}.{cql_ident(table)} ({cols}) VALUES ({marks}){using}"
