"""SQL identifiers quoted for each dialect: one helper for every source and warehouse.

Standard SQL (PostgreSQL, Redshift, DuckDB) doubles `"`; MariaDB/MySQL doubles a backtick. A dotted
name is `schema.table`, each part quoted on its own."""

from __future__ import annotations

_BACKTICK_DIALECTS = frozenset({"mariadb", "mysql"})


def quote_ident(name: str, dialect: str = "postgres") -> str:
    if dialect in _BACKTICK_DIALECTS:
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def quote_table(name: str, dialect: str = "postgres") -> str:
    """`schema.table` → each part quoted for the dialect."""
    return ".".join(quote_ident(part, dialect) for part in name.split("."))


def qi(name: str) -> str:
    """A standard-SQL identifier (the warehouses' shorthand)."""
    return quote_ident(name)


def qt(name: str) -> str:
    """A standard-SQL `schema.table` (the warehouses' shorthand)."""
    return quote_table(name)
