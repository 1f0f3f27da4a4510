"""The Redshift warehouse: loads go through S3, never through the leader node's INSERTs.

A load writes the batches as Parquet (or CSV) part files under the connection's `s3_staging`
prefix, then a manifest naming exactly those files (with their sizes, which COPY needs for Parquet),
then, in ONE transaction: a temp staging table LIKE the target, `COPY staging FROM 's3://…/manifest'
IAM_ROLE '…' FORMAT AS PARQUET MANIFEST`, and the mode's statements (append: insert; replace: delete
then insert — TRUNCATE would commit; upsert/merge: delete the staged keys, insert the last row per
key). A failed COPY is reported with the rows Redshift wrote to `stl_load_errors` for it.

Redshift speaks PostgreSQL's protocol, so the connection, the table checks and the DDL are the
PostgreSQL warehouse's. What is verified where (see docs/pipelines.md): the SQL and the manifest by
unit tests, the staging and merge statements by running them on PostgreSQL with the COPY replaced by
PostgreSQL's own; the COPY FROM S3 and stl_load_errors only against a real Redshift, which is not
reachable here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from freight.connectors.connections import redact
from freight.connectors.identifiers import qi, qt
from freight.connectors.postgres_warehouse import PostgresWarehouse, pg_type
from freight.connectors.warehouse import LoadMode, LoadResult, check_load_args
from freight.errors import TerminalError, UserError

if TYPE_CHECKING:
    import pyarrow as pa

    from freight.storage.objectstore import ObjectStore

STAGE = "freight_stage"
SEQ = "freight_seq"

LOAD_ERRORS_SQL = (
    "SELECT TRIM(filename) AS filename, line_number, TRIM(colname) AS colname, "
    "TRIM(err_reason) AS err_reason, TRIM(raw_field_value) AS raw_field_value "
    "FROM stl_load_errors WHERE query = pg_last_copy_id() ORDER BY starttime DESC LIMIT 5"
)


@dataclass(frozen=True)
class Staged:
    manifest_url: str
    files: list[str]
    rows: int
    manifest: dict[str, Any]


def stage_files(
    batches: pa.RecordBatchReader, store: ObjectStore, *, fmt: str = "parquet", rows_per_file: int = 1_000_000
) -> Staged:
    """Write the batches as part files in `store` and a manifest naming them (COPY reads only those)."""
    from freight.pipelines.datasets import DatasetWriter  # lazy: a connector does not need pipelines

    if fmt != "parquet":
        raise UserError(f"Redshift staging format {fmt!r} is not supported yet", hint="use parquet")
    writer = DatasetWriter(store, rows_per_file=rows_per_file)
    rows = writer.write_all(batches, batches.schema)
    entries = [
        {"url": f"{store.url}/{key}", "mandatory": True, "meta": {"content_length": store.size(key)}}
        for key in writer.files
    ]
    manifest = {"entries": entries}
    store.put_bytes("manifest.json", json.dumps(manifest, indent=1).encode())
    return Staged(f"{store.url}/manifest.json", [f"{store.url}/{k}" for k in writer.files], rows, manifest)


def copy_sql(table: str, manifest_url: str, iam_role: str, *, fmt: str = "parquet") -> str:
    form = "FORMAT AS PARQUET" if fmt == "parquet" else "FORMAT AS CSV"
    return f"COPY {qt(table)} FROM {_lit(manifest_url)} IAM_ROLE {_lit(iam_role)} {form} MANIFEST"


def merge_sql(table: str, columns: list[str], mode: str, key: list[str]) -> list[str]:
    """The statements after COPY into the staging table (which has a `freight_seq` row number)."""
    cols = ", ".join(qi(c) for c in columns)
    insert = f"INSERT INTO {qt(table)} ({cols}) SELECT {cols} FROM {STAGE}"
    if mode == "append":
        return [insert]
    if mode == "replace":
        return [f"DELETE FROM {qt(table)}", insert]
    keys = ", ".join(qi(k) for k in key)
    match = " AND ".join(f"{qt(table)}.{qi(k)} = {STAGE}.{qi(k)}" for k in key)
    return [
        f"DELETE FROM {qt(table)} USING {STAGE} WHERE {match}",
        f"INSERT INTO {qt(table)} ({cols}) SELECT {cols} FROM (SELECT {cols}, ROW_NUMBER() OVER "
        f"(PARTITION BY {keys} ORDER BY {SEQ} DESC) AS freight_rn FROM {STAGE}) latest WHERE freight_rn = 1",
    ]


def load_errors_message(table: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"COPY into {table} failed (stl_load_errors has no rows for it)"
    first = rows[0]
    shown = "; ".join(
        f"{r.get('filename')} line {r.get('line_number')} column {r.get('colname')}: {r.get('err_reason')}"
        f" (value {r.get('raw_field_value')!r})"
        for r in rows[:3]
    )
    return f"COPY into {table} failed at {first.get('filename')}: {shown}"


def rs_type(t: pa.DataType, column: str = "?") -> str:
    """PostgreSQL's type for the Arrow type, with Redshift's limits: its TEXT is VARCHAR(256)."""
    pg = pg_type(t, column)
    return {"text": "VARCHAR(65535)", "bytea": "VARBYTE(1024000)"}.get(pg, pg)


def stage_table_sql(schema: pa.Schema) -> str:
    """The staging table, its columns in the files' order (COPY maps Parquet columns by position)."""
    cols = ", ".join(f"{qi(f.name)} {rs_type(f.type, f.name)}" for f in schema)
    return f"CREATE TEMP TABLE {STAGE} ({cols})"


class RedshiftWarehouse(PostgresWarehouse):
    kind = "redshift"

    def __init__(
        self,
        url: str,
        *,
        s3_staging: str,
        iam_role: str,
        copy: Callable[[PostgresWarehouse, Staged, pa.Schema], None] | None = None,
    ) -> None:
        super().__init__(url)
        self.s3_staging = s3_staging.rstrip("/")
        self.iam_role = iam_role
        #: How the staged files reach the staging table: COPY FROM S3 on Redshift. A test passes
        #: PostgreSQL's COPY of the same files, to run the rest of the path for real.
        self.copy = copy

    def load(
        self,
        table: str,
        batches: pa.RecordBatchReader,
        *,
        mode: LoadMode = "append",
        primary_key: list[str] | None = None,
        create_sql: str | None = None,
    ) -> LoadResult:
        import psycopg
        import pyarrow as pa

        from freight.connectors.warehouse import with_sequence
        from freight.storage.objectstore import ObjectStore

        schema = batches.schema
        check_load_args(mode, primary_key, schema)
        for field in schema:
            rs_type(field.type, field.name)  # reject unsupported types before any change
        seq_schema = schema.append(pa.field(SEQ, pa.int64()))
        store = ObjectStore(f"{self.s3_staging}/{table}/{uuid.uuid4().hex}")
        staged = stage_files(pa.RecordBatchReader.from_batches(seq_schema, with_sequence(batches)), store)
        phase = "prepare"
        try:
            with self.conn.transaction():
                created = self._ensure_table(table, schema, create_sql)
                added = self._add_columns(table, schema)
                self.conn.execute(stage_table_sql(seq_schema).encode())
                phase = "copy"
                if self.copy is not None:
                    self.copy(self, staged, seq_schema)
                else:
                    self.conn.execute(copy_sql(STAGE, staged.manifest_url, self.iam_role).encode())
                phase = "merge"
                for statement in merge_sql(table, schema.names, mode, primary_key or []):
                    self.conn.execute(statement.encode())
                self.conn.execute(f"DROP TABLE {STAGE}")
        except psycopg.Error as exc:
            if phase == "copy" and self.copy is None:
                raise TerminalError(self._load_errors(table, redact(str(exc)))) from None
            raise
        return LoadResult(table, mode, staged.rows, created, tuple(added))

    def _load_errors(self, table: str, error: str) -> str:
        """What stl_load_errors holds for the COPY that just failed (its transaction is rolled back;
        pg_last_copy_id() still names it in this session)."""
        try:
            cur = self.conn.execute(LOAD_ERRORS_SQL)
            names = [d.name for d in cur.description or []]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        except psycopg_error() as exc:
            return f"COPY into {table} failed: {error.strip()} (stl_load_errors unreadable: {exc})"
        return load_errors_message(table, rows) + f" [{error.strip()}]"

    def _ensure_table(
        self, table: str, schema: pa.Schema, create_sql: str | None, key: list[str] | None = None
    ) -> bool:
        if self.columns(table) is not None or create_sql:
            return super()._ensure_table(table, schema, create_sql, key)
        if "." in table:
            self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {qi(table.rsplit('.', 1)[0])}")
        cols = ", ".join(f"{qi(f.name)} {rs_type(f.type, f.name)}" for f in schema)
        self.conn.execute(f"CREATE TABLE {qt(table)} ({cols})")
        return True

    def _add_columns(self, table: str, schema: pa.Schema) -> list[str]:
        have = set(self.columns(table) or [])
        added = [f for f in schema if f.name not in have]
        for f in added:
            self.conn.execute(f"ALTER TABLE {qt(table)} ADD COLUMN {qi(f.name)} {rs_type(f.type, f.name)}")
        return [f.name for f in added]


def psycopg_error() -> type[Exception]:
    import psycopg

    return psycopg.Error


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
