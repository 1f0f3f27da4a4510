"""Alembic environment: runs against the Engine freight hands in (config.attributes['engine'])."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from freight.db.schema import metadata

engine: Engine = context.config.attributes["engine"]

with engine.connect().execution_options(writes=True) as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
