"""db.revisions finds the head Alembic finds, without importing Alembic."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from freight.db.revisions import MIGRATIONS, head_revisions


def test_head_is_alembics() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head_revisions() == frozenset(ScriptDirectory.from_config(config).get_heads())
