"""JobSpec refuses, with one clear line, what the launcher could not hand to the kernel."""

from __future__ import annotations

import json

import pytest

from freight.errors import UserError
from freight.jobs.spec import STORED, JobSpec, parse_spec


@pytest.mark.parametrize(
    ("fields", "where", "what"),
    [
        ({"env": {"A=B": "x"}}, "spec: env", "cannot hold '='"),
        ({"env": {"": "x"}}, "spec: env", "cannot be empty"),
        ({"env": {"A\x00": "x"}}, "spec: (root)", "NUL"),
        ({"env": {"A": "x\x00"}}, "spec: (root)", "NUL"),
        ({"cwd": "/tmp\x00"}, "spec: (root)", "NUL"),
        ({"command": ["true", "a\x00b"]}, "spec: (root)", "NUL"),
    ],
)
def test_fields_the_launcher_cannot_encode_are_refused(
    fields: dict[str, object], where: str, what: str
) -> None:
    data: dict[str, object] = {"command": ["true"], **fields}
    with pytest.raises(UserError) as caught:
        parse_spec(data)
    assert caught.value.where == where
    assert what in caught.value.message


def test_a_spec_read_back_from_the_store_loads_even_if_it_no_longer_passes() -> None:
    text = json.dumps({"command": ["true"], "env": {"A=B": "x"}})
    spec = JobSpec.model_validate_json(text, context=STORED)
    assert spec.env == {"A=B": "x"}


@pytest.mark.parametrize("name", ["\n", "a\nb", "\x1b[31m"])
def test_an_unknown_field_with_an_unprintable_name_is_named_on_one_line(name: str) -> None:
    """Found by the input fuzz test: an unknown key "\\n" gave a two-line error."""
    with pytest.raises(UserError) as caught:
        parse_spec({"command": ["true"], name: 1})
    text = str(caught.value)
    assert "\n" not in text and "\x1b" not in text
    assert repr(name) in caught.value.message
