"""The PostgreSQL warehouse: every load is COPY ... FROM STDIN (FORMAT csv), never row INSERTs.

Arrow's C++ CSV writer encodes each batch (doubles in shortest round-trip form, every string quoted,
NULL as an unquoted empty field), which is exactly PostgreSQL's CSV dialect: '' stays '', NULL stays
NULL, tabs, CR/LF, backslashes and the text 'NULL' pass through unchanged. A helper thread encodes the
next batch while the connection sends the current one.

Loads cannot duplicate: every load into a table first takes a transaction-scoped advisory lock keyed by
the database and the table, so overlapping loads (a rerun while a killed runner's load still runs) take
turns instead of interleaving; an upsert target freight creates gets the primary key the step declares,
and an existing table with no primary key or unique index on it is refused. A database error leaves as
one sentence (`load_error`).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from freight.connectors.connections import redact
from freight.connectors.identifiers import qi, qt
from freight.connectors.warehouse import (
    SEQ_COLUMN,
    LoadMode,
    LoadResult,
    check_load_args,
    constraint_error,
    with_sequence,
)
from freight.errors import FreightError, TerminalError, TransientError, UserError

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa


class PostgresWarehouse:
    kind = "postgres"

    def __init__(self, url: str) -> None:
        import psycopg

        try:
            self.conn: psycopg.Connection[Any] = psycopg.connect(_libpq_url(url), autocommit=True)
        except psycopg.Error as exc:
            raise TerminalError(f"cannot connect to PostgreSQL: {redact(str(exc)).strip()}") from None

    def close(self) -> None:
        self.conn.close()

    def columns(self, table: str) -> list[str] | None:
        schema, name = table.rsplit(".", 1) if "." in table else (None, table)
        rows = self.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "AND table_schema = coalesce(%s, current_schema()) ORDER BY ordinal_position",
            (name, schema),
        ).fetchall()
        return [r[0] for r in rows] or None

    def query(self, sql: str) -> pa.Table:
        import pyarrow as pa

        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(sql)
            names = [d.name for d in cur.description or []]
            rows = cur.fetchall()
        return (
            pa.table({n: pa.array([r[i] for r in rows]) for i, n in enumerate(names)})
            if names
            else pa.table({})
        )

    def execute(self, sql: str) -> None:
        with self.conn.transaction():
            self.conn.execute(sql.encode())  # bytes: run as a simple-protocol script

    def load(
        self,
        table: str,
        batches: pa.RecordBatchReader,
        *,
        mode: LoadMode = "append",
        primary_key: list[str] | None = None,
        create_sql: str | None = None,
    ) -> LoadResult:
        schema = batches.schema
        check_load_args(mode, primary_key, schema)
        for field in schema:
            pg_type(field.type, field.name)  # reject unsupported types before any change
        import psycopg

        try:
            with self.conn.transaction():
                self.lock_table(table)
                key = primary_key if mode == "upsert" else None
                created = self._ensure_table(table, schema, create_sql, key)
                if key:
                    self._check_key(table, key)
                added = self._add_columns(table, schema)
                names = ", ".join(qi(n) for n in schema.names)
                if mode == "append" or (mode == "replace" and created):
                    rows = self._copy(table, schema.names, batches)
                elif mode == "replace":
                    rows = self._replace(table, schema.names, batches)
                else:
                    rows = self._upsert(table, batches, primary_key or [], names)
        except psycopg.Error as exc:
            raise load_error(exc, table, mode) from None
        return LoadResult(table, mode, rows, created, tuple(added))

    def lock_table(self, table: str) -> None:
        """Wait for any other load into this table (in any process) to commit or roll back."""
        schema_name, name = table.rsplit(".", 1) if "." in table else (None, table)
        row = self.conn.execute(
            "SELECT current_database(), coalesce(%s, current_schema())", (schema_name,)
        ).fetchone()
        assert row is not None
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (load_lock_key(f"{row[0]}/{row[1]}.{name}"),))

    def _check_key(self, table: str, key: list[str]) -> None:
        """An upsert's delete-then-insert relies on the key being unique: without a primary key or a
        unique index on exactly these columns, a concurrent writer could leave every row twice."""
        found = self.conn.execute(
            "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indpred IS NULL "
            "GROUP BY i.indexrelid",
            (qt(table),),
        ).fetchall()
        if any(sorted(row[0]) == sorted(key) for row in found):
            return
        columns = ", ".join(key)
        raise UserError(
            f"table {table!r} has no primary key or unique index on ({columns}), so an upsert into it "
            "could leave rows twice",
            hint=f"add one: ALTER TABLE {table} ADD PRIMARY KEY ({columns})",
        )

    def _replace(self, table: str, columns: list[str], batches: pa.RecordBatchReader) -> int:
        schema_name, name = table.rsplit(".", 1) if "." in table else (None, table)
        new, old = f"{name}__freight_new", f"{name}__freight_old"
        prefix = f"{qi(schema_name)}." if schema_name else ""
        self.conn.execute(f"DROP TABLE IF EXISTS {prefix}{qi(new)}")
        self.conn.execute(f"CREATE TABLE {prefix}{qi(new)} (LIKE {qt(table)} INCLUDING ALL)")
        rows = self._copy(f"{schema_name}.{new}" if schema_name else new, columns, batches)
        # The swap takes the exclusive lock only here, at the end of the transaction.
        self.conn.execute(f"ALTER TABLE {qt(table)} RENAME TO {qi(old)}")
        self.conn.execute(f"ALTER TABLE {prefix}{qi(new)} RENAME TO {qi(name)}")
        self.conn.execute(f"DROP TABLE {prefix}{qi(old)}")
        return rows

    def _upsert(self, table: str, batches: pa.RecordBatchReader, key: list[str], names: str) -> int:
        import pyarrow as pa

        stage = "__freight_stage"
        self.conn.execute(f"CREATE TEMP TABLE {stage} (LIKE {qt(table)}) ON COMMIT DROP")
        self.conn.execute(f"ALTER TABLE {stage} ADD COLUMN {SEQ_COLUMN} bigint")
        seq_schema = batches.schema.append(pa.field(SEQ_COLUMN, pa.int64()))
        self._copy(
            stage, seq_schema.names, pa.RecordBatchReader.from_batches(seq_schema, with_sequence(batches))
        )
        keys = ", ".join(qi(k) for k in key)
        match = " AND ".join(f"t.{qi(k)} = s.{qi(k)}" for k in key)
        self.conn.execute(
            f"DELETE FROM {qt(table)} AS t USING (SELECT DISTINCT {keys} FROM {stage}) AS s WHERE {match}"
        )
        cur = self.conn.execute(
            f"INSERT INTO {qt(table)} ({names}) SELECT DISTINCT ON ({keys}) {names} FROM {stage} "
            f"ORDER BY {keys}, {SEQ_COLUMN} DESC"
        )
        return cur.rowcount

    def _copy(self, table: str, columns: list[str], batches: Iterable[pa.RecordBatch]) -> int:
        cols = ", ".join(qi(c) for c in columns)
        rows = 0
        with (
            self.conn.cursor() as cur,
            cur.copy(f"COPY {qt(table)} ({cols}) FROM STDIN (FORMAT csv)") as copy,
        ):
            for chunk, count in _encode_ahead(batches):
                copy.write(chunk)
                rows += count
        return rows

    def _ensure_table(
        self, table: str, schema: pa.Schema, create_sql: str | None, key: list[str] | None = None
    ) -> bool:
        if self.columns(table) is not None:
            return False
        if "." in table:
            self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {qi(table.rsplit('.', 1)[0])}")
        if create_sql:
            self.conn.execute(create_sql.encode())
            if self.columns(table) is None:
                raise UserError(f"the CREATE TABLE file did not create table {table!r}")
            return True
        cols = ", ".join(f"{qi(f.name)} {pg_type(f.type, f.name)}" for f in schema)
        if key:
            cols += f", PRIMARY KEY ({', '.join(qi(k) for k in key)})"
        self.conn.execute(f"CREATE TABLE {qt(table)} ({cols})")
        return True

    def _add_columns(self, table: str, schema: pa.Schema) -> list[str]:
        have = set(self.columns(table) or [])
        added = [f for f in schema if f.name not in have]
        for f in added:
            self.conn.execute(f"ALTER TABLE {qt(table)} ADD COLUMN {qi(f.name)} {pg_type(f.type, f.name)}")
        return [f.name for f in added]


def load_lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for "database/schema.table"."""
    return int.from_bytes(hashlib.sha256(f"freight-load:{name}".encode()).digest()[:8], "big", signed=True)


#: SQLSTATE classes worth a retry: serialization failure and deadlock (40xxx), lost connection (08xxx).
_TRANSIENT = ("40", "08")


def load_error(exc: Exception, table: str, mode: LoadMode = "append") -> FreightError:
    """A database error during a load, as one sentence (the first line of the server's message)."""
    state = getattr(exc, "sqlstate", None) or ""
    first = redact(str(exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if state == "40P01":
        return TransientError(
            f"the load into {table!r} hit a deadlock with another transaction; run it again"
        )
    if state.startswith(_TRANSIENT):
        return TransientError(f"the load into {table!r} failed and may succeed if run again: {first}")
    if state.startswith("23"):  # integrity: a NULL or duplicate key, a foreign key
        return constraint_error(first, table, mode)
    return TerminalError(f"the load into {table!r} failed: {first}")


def pg_type(t: pa.DataType, column: str = "?") -> str:
    import pyarrow as pa
    import pyarrow.types as pt

    if pt.is_dictionary(t):
        return pg_type(t.value_type, column)
    simple: list[tuple[Any, str]] = [
        (pt.is_boolean, "boolean"),
        (lambda x: x in (pa.int8(), pa.int16(), pa.uint8()), "smallint"),
        (lambda x: x in (pa.int32(), pa.uint16()), "integer"),
        (lambda x: x in (pa.int64(), pa.uint32()), "bigint"),
        (lambda x: x == pa.uint64(), "numeric(20,0)"),
        (lambda x: x in (pa.float16(), pa.float32()), "real"),
        (pt.is_float64, "double precision"),
        (lambda x: pt.is_string(x) or pt.is_large_string(x) or pt.is_string_view(x), "text"),
        (lambda x: pt.is_binary(x) or pt.is_large_binary(x) or pt.is_fixed_size_binary(x), "bytea"),
        (pt.is_date, "date"),
        (pt.is_time, "time"),
        (pt.is_null, "text"),
    ]
    for test, name in simple:
        if test(t):
            return name
    if pt.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pt.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    raise UserError(
        f"column {column!r} has type {t}, which the PostgreSQL loader does not take",
        hint="cast it to text or a scalar type in a transform-sql step",
    )


def _csv_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """bytea travels as \\x-hex text; dictionaries are decoded. Everything else goes as it is."""
    import pyarrow as pa
    import pyarrow.types as pt

    columns = []
    changed = False
    for col in batch.columns:
        if pt.is_dictionary(col.type):
            col = col.dictionary_decode()
            changed = True
        if pt.is_binary(col.type) or pt.is_large_binary(col.type) or pt.is_fixed_size_binary(col.type):
            col = pa.array([None if v is None else "\\x" + v.hex() for v in col.to_pylist()], pa.string())
            changed = True
        columns.append(col)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names) if changed else batch


def _encode(batch: pa.RecordBatch) -> bytes:
    import pyarrow as pa
    import pyarrow.csv as pc

    sink = pa.BufferOutputStream()
    pc.write_csv(_csv_ready(batch), sink, pc.WriteOptions(include_header=False, quoting_style="needed"))
    return bytes(sink.getvalue())


def _encode_ahead(batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[bytes, int]]:
    """Encode batches on a helper thread (Arrow drops the GIL) while the caller sends earlier ones."""
    done = object()
    q: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                if batch.num_rows:
                    q.put((_encode(batch), batch.num_rows))
            q.put(done)
        except BaseException as exc:  # handed to the consumer, re-raised there
            q.put(exc)

    worker = threading.Thread(target=produce, name="freight-csv", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.01)


def _libpq_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme in ("postgres", "postgresql+psycopg", "redshift") else url
