"""The standing fault suite, input side: Hypothesis mutates the example pipelines and feeds the YAML
loader and the job spec odd documents. Every outcome is a valid result or one UserError of one line;
never another exception, a hang or a blow-up (the loader's size, depth and alias caps bound each
case). Derandomized, so every run is the same and bounded (~700 cases)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freight.errors import UserError
from freight.jobs.spec import parse_spec
from freight.pipelines.loader import parse_pipeline
from freight.yamlfile import parse_yaml

DEEP = "FREIGHT_FUZZ_EXAMPLES" in os.environ
SCALE = int(os.environ.get("FREIGHT_FUZZ_EXAMPLES", "8"))
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pipelines"
PIPELINES = [p.read_text() for p in sorted(EXAMPLES.glob("*.yaml"))]

FUZZ = settings(
    max_examples=SCALE * 25,
    derandomize=not DEEP,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)

#: what makes YAML interesting: structure, anchors, aliases, tags, escapes, controls, deep nesting
PIECES = st.sampled_from(
    ["\n", "  ", "- ", ": ", "&a ", "*a", "<<: *a\n", "[", "]", "{", "}", "!!python/object ", "'", '"',
     "\\ud800", "\x00", "\x01", "\t", "\ufeff", "#", "|\n", ">-\n", "[" * 80, "?", "%YAML 1.1\n", "---\n"]
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(PIPELINES))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(PIECES | st.text(max_size=3))
        if kind == "insert":
            text = text[:at] + piece + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        else:
            text = text[:at] + piece + text[at + len(piece) :]
    return text


def _one_line(exc: UserError) -> None:
    assert "\n" not in str(exc), str(exc)


@FUZZ
@given(text=mutated())
def test_a_mutated_pipeline_is_valid_or_one_error_line(text: str) -> None:
    try:
        parse_pipeline(text, source="p.yaml", base_dir=EXAMPLES)
    except UserError as exc:
        _one_line(exc)
        assert str(exc).startswith("p.yaml") or str(exc).startswith("steps."), str(exc)


@FUZZ
@given(text=mutated() | st.text(max_size=200))
def test_the_yaml_loader_answers_anything_with_data_or_one_error_line(text: str) -> None:
    try:
        parse_yaml(text, "x.yaml")
    except UserError as exc:
        _one_line(exc)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(exclude_categories=())),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = ["command", "shell", "env", "cwd", "resources", "timeout", "retry", "queue", "labels", "depends_on",
          "image", "priority", "grace", "name", "idempotency_key", "inherit_env"]  # fmt: skip


@FUZZ
@given(spec=st.dictionaries(st.sampled_from(FIELDS), JSONISH, max_size=5))
def test_a_job_spec_is_storable_or_one_error_line(spec: dict[str, Any]) -> None:
    try:
        checked = parse_spec(spec)
    except UserError as exc:
        _one_line(exc)
        return
    json.loads(checked.model_dump_json())  # whatever validates can be written to the store
