"""One definition per table: the tables in freight.db.schema are exactly what the migrations build, on
SQLite and on PostgreSQL (a column, index or type added to one and not the other fails here)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Integer
from sqlalchemy.types import TypeEngine

from freight.config import Settings
from freight.db.engine import open_engine
from freight.db.schema import metadata


def _compare_type(
    context: MigrationContext,
    _col: Any,
    _meta_col: Any,
    inspected: TypeEngine[Any],
    declared: TypeEngine[Any],
) -> bool | None:
    """SQLite stores every integer in up to 8 bytes: INTEGER and BIGINT are the same column there
    (migration 0004 widens them on PostgreSQL only). Everything else: Alembic's own comparison."""
    both_int = isinstance(inspected, Integer) and isinstance(declared, Integer)
    if context.dialect.name == "sqlite" and both_int:
        return False
    return None


def test_the_schema_module_and_the_migrations_agree(store_settings: Settings) -> None:
    engine = open_engine(store_settings.database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": _compare_type})
            diff = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    # alembic_version is Alembic's own table; it is not in the metadata.
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name == "alembic_version")]
    assert diff == []


def test_every_table_is_declared_once() -> None:
    from freight.builds import store as builds_store
    from freight.pipelines import store as pipelines_store

    assert builds_store.build_runs is metadata.tables["build_runs"]
    assert pipelines_store.runs is metadata.tables["pipeline_runs"]
