"""The DuckDB-file warehouse: Arrow batches go in through DuckDB's Arrow scan, never row by row.

`replace` runs as one transaction that deletes the old rows and inserts the new ones. DuckDB is MVCC
and single-writer, so other readers keep seeing the old rows until the commit: the same guarantee as a
table swap, and the table keeps its constraints (DuckDB has no CREATE TABLE ... LIKE to copy them).

Loads cannot duplicate: DuckDB lets one process open the file for writing, and `_connect` waits its
turn, so loads into one file are serialised; an upsert target freight creates gets the declared primary
key, and an existing table with no primary key or unique constraint on it is refused.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from freight.connectors.identifiers import qi, qt
from freight.connectors.warehouse import (
    SEQ_COLUMN,
    LoadMode,
    LoadResult,
    check_load_args,
    constraint_error,
    with_sequence,
)
from freight.errors import UserError

if TYPE_CHECKING:
    import pyarrow as pa

_SRC = "__freight_src"


class DuckDBWarehouse:
    kind = "duckdb"

    def __init__(
        self,
        path: str,
        *,
        memory_limit: int | None = None,
        threads: int | None = None,
        lock_wait: float = 600.0,
    ) -> None:

        if path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {}
        if memory_limit:
            config["memory_limit"] = f"{max(64, memory_limit // 1024**2 * 3 // 4)}MB"
        if threads:
            config["threads"] = threads
        self.con = _connect(path, config, lock_wait)
        self.path = path

    def close(self) -> None:
        self.con.close()

    def columns(self, table: str) -> list[str] | None:
        schema, name = table.rsplit(".", 1) if "." in table else (None, table)
        sql = "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
        params: list[Any] = [name]
        if schema:
            sql += " AND table_schema = ?"
            params.append(schema)
        rows = self.con.execute(sql + " ORDER BY ordinal_position", params).fetchall()
        return [r[0] for r in rows] or None

    def query(self, sql: str) -> pa.Table:
        return self.con.sql(sql).to_arrow_table()

    def execute(self, sql: str) -> None:
        self.con.begin()
        try:
            self.con.execute(sql)
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise

    def load(
        self,
        table: str,
        batches: pa.RecordBatchReader,
        *,
        mode: LoadMode = "append",
        primary_key: list[str] | None = None,
        create_sql: str | None = None,
        parquet_files: list[str] | None = None,
    ) -> LoadResult:
        """With `parquet_files` (local paths holding the same rows as `batches`), append and replace
        let DuckDB read the files itself: same rows, about a third less memory than an Arrow scan."""
        import duckdb

        schema = batches.schema
        check_load_args(mode, primary_key, schema)
        self.con.begin()
        try:
            key = primary_key if mode == "upsert" else None
            created = self._ensure_table(table, schema, create_sql, key)
            if key:
                self._check_key(table, key)
            added = self._add_columns(table, schema)
            names = ", ".join(qi(n) for n in schema.names)
            if mode == "upsert":
                rows = self._upsert(table, batches, primary_key or [], names)
            else:
                if mode == "replace" and not created:
                    self.con.execute(f"DELETE FROM {qt(table)}")
                if parquet_files:
                    listing = ", ".join("'" + f.replace("'", "''") + "'" for f in parquet_files)
                    source = f"read_parquet([{listing}])"
                else:
                    self.con.register(_SRC, batches)
                    source = _SRC
                try:
                    self.con.execute(f"INSERT INTO {qt(table)} ({names}) SELECT {names} FROM {source}")
                    rows = _rowcount(self.con)
                finally:
                    if not parquet_files:
                        self._unregister()
            self.con.commit()
        except duckdb.ConstraintException as exc:
            self.con.rollback()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise constraint_error(first.removeprefix("Constraint Error: "), table, mode) from None
        except BaseException:
            self.con.rollback()
            raise
        return LoadResult(table, mode, rows, created, tuple(added))

    def _unregister(self) -> None:
        """Drop the Arrow source's view. After a failed statement DuckDB refuses even this ("Current
        transaction is aborted") and that would replace the error that matters; the view then goes
        with the connection, which a failed load closes."""
        import duckdb

        with contextlib.suppress(duckdb.TransactionException):
            self.con.unregister(_SRC)

    def _upsert(self, table: str, batches: pa.RecordBatchReader, key: list[str], names: str) -> int:
        import pyarrow as pa

        stage = "__freight_stage"
        seq_schema = batches.schema.append(pa.field(SEQ_COLUMN, pa.int64()))
        self.con.register(_SRC, pa.RecordBatchReader.from_batches(seq_schema, with_sequence(batches)))
        try:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {stage} AS SELECT * FROM {_SRC}")
        finally:
            self._unregister()
        match = " AND ".join(f"t.{qi(k)} = s.{qi(k)}" for k in key)
        self.con.execute(f"DELETE FROM {qt(table)} AS t USING {stage} AS s WHERE {match}")
        partition = ", ".join(qi(k) for k in key)
        self.con.execute(
            f"INSERT INTO {qt(table)} ({names}) SELECT {names} FROM {stage} "
            f"QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {SEQ_COLUMN} DESC) = 1"
        )
        rows = _rowcount(self.con)
        self.con.execute(f"DROP TABLE {stage}")
        return rows

    def _check_key(self, table: str, key: list[str]) -> None:
        schema_name, name = table.rsplit(".", 1) if "." in table else (None, table)
        found = self.con.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() WHERE table_name = ? "
            "AND schema_name = coalesce(?, current_schema()) "
            "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')",
            [name, schema_name],
        ).fetchall()
        if any(sorted(c.lower() for c in row[0]) == sorted(k.lower() for k in key) for row in found):
            return
        columns = ", ".join(key)
        raise UserError(
            f"table {table!r} has no primary key or unique constraint on ({columns}), so an upsert into it "
            "could leave rows twice",
            hint=f"create it with PRIMARY KEY ({columns}), or let freight create it",
        )

    def _ensure_table(
        self, table: str, schema: pa.Schema, create_sql: str | None, key: list[str] | None = None
    ) -> bool:
        if self.columns(table) is not None:
            return False
        if "." in table:
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {qi(table.rsplit('.', 1)[0])}")
        if create_sql:
            self.con.execute(create_sql)
            if self.columns(table) is None:
                raise UserError(f"the CREATE TABLE file did not create table {table!r}")
            return True
        cols = ", ".join(
            f"{qi(n)} {t}" for n, t in zip(schema.names, duck_types(self.con, schema), strict=True)
        )
        if key:
            cols += f", PRIMARY KEY ({', '.join(qi(k) for k in key)})"
        self.con.execute(f"CREATE TABLE {qt(table)} ({cols})")
        return True

    def _add_columns(self, table: str, schema: pa.Schema) -> list[str]:
        have = {c.lower() for c in self.columns(table) or []}
        types = dict(zip(schema.names, duck_types(self.con, schema), strict=True))
        added = [n for n in schema.names if n.lower() not in have]
        for name in added:
            self.con.execute(f"ALTER TABLE {qt(table)} ADD COLUMN {qi(name)} {types[name]}")
        return added


def _connect(path: str, config: dict[str, Any], lock_wait: float) -> Any:
    """Open the file, waiting while another process holds it: DuckDB allows one writer process, and
    parallel load steps into one warehouse file take turns instead of failing."""
    import duckdb

    deadline = time.monotonic() + lock_wait
    pause = 0.02
    while True:
        try:
            return duckdb.connect(path, config=config)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(0.5, pause * 1.5)


def duck_types(con: Any, schema: pa.Schema) -> list[str]:
    return [str(t) for t in con.from_arrow(schema.empty_table()).types]


def _rowcount(con: Any) -> int:
    row = con.fetchone()
    return int(row[0]) if row and row[0] is not None else 0
