"""A run whose steps name a connection freight.toml lacks (or a source as a warehouse) is refused
before it starts: one line at the step's field, no run recorded, no job submitted."""

from __future__ import annotations

import pytest

from freight.errors import UserError
from freight.pipelines.loader import load_pipeline
from freight.pipelines.runner import PipelineRunner
from tests.pipelines.conftest import Env

CASES = [
    (
        "  - name: e\n    type: extract-sql\n    connection: shopp\n    table: orders\n",
        "{path}:5: steps.e.connection: unknown connection 'shopp' (define [connections.shopp] in {config}; "
        "known: pgsrc, pgwh, shop, warehouse)",
    ),
    (
        "  - name: s\n    type: sql\n    warehouse: shop\n    sql: select 1\n",
        "{path}:5: steps.s.warehouse: connection 'shop' is a mariadb source, not a warehouse "
        "(warehouses are duckdb, postgres or redshift connections)",
    ),
    (
        "  - name: c\n    type: check-count\n    table: t\n    source: {connection: nope, table: t}\n",
        "{path}:6: steps.c.source.connection: unknown connection 'nope'",
    ),
]


@pytest.mark.parametrize(("steps", "message"), CASES)
def test_unknown_connections_stop_the_run_before_it_starts(
    env: Env, local_runner: PipelineRunner, steps: str, message: str
) -> None:
    path = env.write("p.yaml", "name: p\nsteps:\n" + steps)
    with pytest.raises(UserError) as err:
        local_runner.start(load_pipeline(path))
    assert str(err.value).startswith(message.format(path=path, config=env.config)), str(err.value)
    assert local_runner.store.list() == []
