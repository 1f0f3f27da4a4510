"""The warehouse port: load Arrow batches into a table, run SQL in a transaction, answer queries.

Load modes
- `append`: insert the rows.
- `replace`: load into a fresh table beside the target, then swap the two in one short transaction,
  so readers see the old rows or the new ones, never an empty or half-filled table.
- `upsert`: load into a staging table, then in one transaction delete the target rows whose key is in
  the staging table and insert the staged rows, keeping only the last row for each key.

Every mode creates a missing table (from the data's schema, or from a CREATE TABLE file) and adds the
columns the data has and the table lacks. Columns the table has and the data lacks stay NULL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from freight.connectors.connections import Connection
from freight.errors import UserError

if TYPE_CHECKING:
    import pyarrow as pa

LoadMode = Literal["append", "replace", "upsert"]
LOAD_MODES: tuple[LoadMode, ...] = ("append", "replace", "upsert")
SEQ_COLUMN = "__freight_seq"


@dataclass(frozen=True)
class LoadResult:
    table: str
    mode: str
    rows: int
    created: bool
    added_columns: tuple[str, ...] = ()


class Warehouse(Protocol):
    kind: str

    def load(
        self,
        table: str,
        batches: pa.RecordBatchReader,
        *,
        mode: LoadMode = "append",
        primary_key: list[str] | None = None,
        create_sql: str | None = None,
    ) -> LoadResult: ...

    def execute(self, sql: str) -> None:
        """Run a statement or a script (statements separated by ';') in one transaction."""
        ...

    def query(self, sql: str) -> pa.Table: ...

    def columns(self, table: str) -> list[str] | None:
        """The table's column names, or None when it does not exist."""
        ...

    def close(self) -> None: ...


def open_warehouse(conn: Connection) -> Warehouse:
    if conn.kind == "duckdb":
        from freight.connectors.duckdb_warehouse import DuckDBWarehouse

        return DuckDBWarehouse(conn.path or ":memory:")
    if conn.kind == "postgres":
        from freight.connectors.postgres_warehouse import PostgresWarehouse

        return PostgresWarehouse(conn.resolved_url())
    if conn.kind == "redshift":
        from freight.connectors.redshift_warehouse import RedshiftWarehouse

        return RedshiftWarehouse(
            conn.resolved_url(), s3_staging=conn.option("s3_staging"), iam_role=conn.option("iam_role")
        )
    raise UserError(
        f"connection {conn.name!r} ({conn.kind}) is not a warehouse", hint="use duckdb, postgres or redshift"
    )


def check_load_args(mode: str, primary_key: list[str] | None, schema: pa.Schema) -> None:
    if mode not in LOAD_MODES:
        raise UserError(f"unknown load mode {mode!r}", hint="use append, replace or upsert")
    if mode == "upsert" and not primary_key:
        raise UserError("mode upsert needs primary_key", hint="name the key column(s): primary_key: [id]")
    missing = [c for c in primary_key or [] if c not in schema.names]
    if missing:
        raise UserError(
            f"primary key column {missing[0]!r} is not in the data", hint=f"columns: {schema.names}"
        )


def with_sequence(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """Number the rows so an upsert can keep the last row of each key, whatever order the DB scans."""
    import pyarrow as pa

    start = 0
    for batch in reader:
        seq = pa.array(range(start, start + batch.num_rows), pa.int64())
        start += batch.num_rows
        yield pa.RecordBatch.from_arrays([*batch.columns, seq], names=[*batch.schema.names, SEQ_COLUMN])


def split_table(name: str) -> tuple[str | None, str]:
    if "." in name:
        schema, table = name.rsplit(".", 1)
        return schema, table
    return None, name


def constraint_error(first_line: str, table: str, mode: LoadMode) -> UserError:
    """A load whose rows break a constraint of the table (a NULL, a duplicate key), one sentence;
    an append of rows already there says how to load the same rows again."""
    hint = None
    if mode == "append" and ("uplicate" in first_line or "unique" in first_line.lower()):
        hint = (
            "an append load adds every row again, as Dataduct's create-load-redshift does; "
            "to load rows that are already there use mode upsert with a primary_key, or mode replace"
        )
    return UserError(f"the load into {table!r} breaks a constraint: {first_line}", hint=hint)
