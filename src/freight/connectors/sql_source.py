"""Read a table or a query from MariaDB/MySQL or PostgreSQL as a stream of Arrow record batches.

connectorx reads with a native (Rust) client straight into Arrow and hands the batches over as they
fill, so memory stays bounded by `batch_size`, not by the table. With `split`, connectorx reads key
ranges in parallel (one connection per part) — worth it when the server, not the client, is the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from freight.connectors.connections import Connection, redact
from freight.connectors.identifiers import quote_table
from freight.errors import TerminalError, UserError

if TYPE_CHECKING:
    import pyarrow as pa

SOURCE_KINDS = ("mariadb", "mysql", "postgres")


#: How connectorx says a split column is missing (its range query's alias) or not an integer.
_SPLIT_ERRORS = ("CXTMPTAB_RANGE", "Partition can only be done on int columns")


@dataclass(frozen=True)
class SqlSource:
    connection: Connection
    table: str | None = None
    query: str | None = None
    batch_size: int = 65_536
    split_column: str | None = None
    split_parts: int = 1

    def sql(self) -> str:
        if self.query:
            return self.query.strip().rstrip(";")
        assert self.table is not None
        return f"SELECT * FROM {quote_table(self.table, self.connection.kind)}"

    def open(self) -> pa.RecordBatchReader:
        import connectorx as cx

        read_sql: Any = cx.read_sql  # its stubs lack the arrow_stream overload

        if self.connection.kind not in SOURCE_KINDS:
            raise UserError(
                f"connection {self.connection.name!r} is {self.connection.kind}; extract-sql reads "
                "mariadb, mysql or postgres",
                where=f"connections.{self.connection.name}",
            )
        url = cx_url(self.connection)
        check_login(self.connection, url)
        options: dict[str, object] = {}
        if self.split_column and self.split_parts > 1:
            options = {"partition_on": self.split_column, "partition_num": self.split_parts}
        try:
            reader = read_sql(
                url, self.sql(), return_type="arrow_stream", batch_size=self.batch_size, **options
            )
        except BaseException as exc:  # connectorx raises plain RuntimeError/PanicException
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            text = redact(str(exc))
            if options and any(mark in text for mark in _SPLIT_ERRORS):
                raise UserError(
                    f"cannot split on {self.split_column!r}: {text}",
                    where="split.column",
                    hint="split on an integer column of the table or query",
                ) from None
            raise TerminalError(f"reading from {self.connection.name!r} failed: {text}") from None
        return reader


#: MariaDB/MySQL errors that no retry mends: access denied (to a database, for a user), no such database.
_LOGIN_REFUSED = (1044, 1045, 1049)


def check_login(conn: Connection, url: str) -> None:
    """connectorx's pool retries a refused login for 30 s before it gives up, and a step with retries
    then tries again: log in once first (~30 ms), so a wrong password or database fails at once, as
    bad input. Anything else the check meets is left for connectorx to report."""
    if conn.kind not in ("mariadb", "mysql"):
        return
    from urllib.parse import unquote, urlsplit

    import pymysql

    parts = urlsplit(url)
    try:
        pymysql.connect(
            host=parts.hostname or "localhost",
            port=parts.port or 3306,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            database=unquote(parts.path.lstrip("/")) or None,
            connect_timeout=10,
        ).close()
    except pymysql.err.OperationalError as exc:
        if exc.args and exc.args[0] in _LOGIN_REFUSED:
            raise UserError(
                f"{conn.name!r} refused the login: {redact(str(exc.args[-1]))}",
                where=f"connections.{conn.name}.url",
                hint="check the user, the password (the ${VAR} it names) and the database",
            ) from None
    except Exception:  # not ours to report: connectorx reads next and says what is wrong
        return


def cx_url(conn: Connection) -> str:
    url = conn.resolved_url()
    scheme, rest = url.split("://", 1)
    if conn.kind in ("mariadb", "mysql"):
        return f"mysql://{rest}"
    if scheme in ("postgres", "postgresql+psycopg", "postgresql"):
        return f"postgresql://{rest}"
    return url
