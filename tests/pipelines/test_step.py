"""What a step process reports when it fails: one line, secrets redacted."""

from __future__ import annotations

import duckdb
import pytest

from freight.pipelines.step import describe


def test_a_database_error_with_context_lines_is_one_line() -> None:
    with pytest.raises(duckdb.Error) as err:
        duckdb.connect().execute("SELEC 1")
    assert "\n" in str(err.value)  # DuckDB adds `LINE 1: …` and a caret
    assert (
        describe(err.value)
        == 'ParserException: Parser Error: syntax error at or near "SELEC"; LINE 1: SELEC 1'
    )
