"""Checks made against freight.toml before a run starts: every connection a step names exists, and
every warehouse is one. A typo is then one line naming the step's field, and no run is recorded.

Secrets are not checked here: `${VAR}` is expanded in the step jobs' environment, not the caller's.
"""

from __future__ import annotations

from collections.abc import Iterator

from freight.connectors.connections import Connections
from freight.errors import UserError
from freight.pipelines.loader import Path_, Pipeline
from freight.pipelines.spec import CheckBase, Load, SourceRef, Sql


def check_connections(pipeline: Pipeline, connections: Connections) -> None:
    """One UserError at the first step field that names an unknown connection (or a source where a
    warehouse belongs), with the file:line (or API field path) that names it."""
    for path, name, warehouse in _named(pipeline):
        try:
            if warehouse:
                connections.warehouse(name)
            else:
                connections.get(name)
        except UserError as exc:
            at = pipeline.locator
            raise UserError(f"{at.label(path)}: {exc.message}", where=at.where(path), hint=exc.hint) from None


def _named(pipeline: Pipeline) -> Iterator[tuple[Path_, str, bool]]:
    """(field path, connection name, whether it must be a warehouse) for every connection named."""
    spec = pipeline.spec
    for i, step in enumerate(spec.steps):
        connection = getattr(step, "connection", None)
        if isinstance(connection, str):
            yield ("steps", i, "connection"), connection, False
        incremental = getattr(step, "incremental", None)
        if incremental is not None and incremental.warehouse:
            yield ("steps", i, "incremental", "warehouse"), incremental.warehouse, True
        source = getattr(step, "source", None)
        if isinstance(source, SourceRef):
            yield ("steps", i, "source", "connection"), source.connection, False
        if isinstance(step, (Load, Sql, CheckBase)):
            if step.warehouse:
                yield ("steps", i, "warehouse"), step.warehouse, True
            else:
                yield ("defaults", "warehouse"), spec.defaults.warehouse, True
