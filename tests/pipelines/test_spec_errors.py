"""Bad pipeline files give one clear line: file:line, the field, what is wrong, and a hint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from freight.errors import UserError
from freight.pipelines.api import PipelineBuilder
from freight.pipelines.loader import load_pipeline, parse_pipeline
from freight.pipelines.spec import json_schema

HEAD = "name: p\nsteps:\n"
EXTRACT = "  - name: a\n    type: extract-sql\n    connection: shop\n    table: orders\n"

CASES = [
    (
        HEAD + "  - name: a\n    type: extract-sqll\n    connection: shop\n",
        "p.yaml:4: steps.a.type: unknown step type 'extract-sqll' (did you mean `extract-sql`?)",
    ),
    (
        HEAD + EXTRACT + "    batchsize: 10\n",
        "p.yaml:7: steps.a.batchsize: unknown field `batchsize` (did you mean `batch_size`?)",
    ),
    (
        HEAD + "  - name: b\n    type: load\n    inputs: [a]\n",
        "p.yaml:3: steps.b.table: `table` is required",
    ),
    (
        HEAD
        + "  - name: f\n    type: extract-files\n    path: a.csv\n    columns: {id: int64, qty: integer}\n",
        "p.yaml:6: steps.f.columns.qty: 'integer' is not an Arrow type (did you mean `int64`?)",
    ),
    (HEAD + "  -\n" + EXTRACT, "p.yaml:3: steps[0]: should be a mapping of fields"),
    (
        HEAD + EXTRACT + "    mode: upsert\n",  # a field of other step types
        "p.yaml:7: steps.a.mode: unknown field `mode` (extract-sql steps do not take it)",
    ),
    (
        "name: my pipe\nsteps: []\n",
        "p.yaml:1: name: 'my pipe' is not a valid name (use letters, digits, . _ and -",
    ),
    (HEAD + "  - <<: 3\n    name: a\n", "p.yaml:3: `<<` merges a mapping, or a list of mappings"),
    # YAML that parses but is not plain data: each was a traceback
    (
        HEAD + EXTRACT + "    query: !custom x\n",
        "p.yaml:7: not valid YAML here: could not determine a constructor",
    ),
    ("name: p\n? [a, b]\n: y\n", "p.yaml:2: a key must be plain text"),
    ("name: p\nsteps: &s\n  - *s\n", "p.yaml:2: an alias refers to a node that contains it"),
    (HEAD + EXTRACT + "    timeout: .inf\n", "p.yaml:7: steps.a.timeout: inf is not a finite number"),
    (
        HEAD + EXTRACT + "    resources: {memory: .nan}\n",
        "p.yaml:7: steps.a.resources.memory: nan is not a finite",
    ),
    (  # a misspelt required field is named as misspelt, not as missing
        HEAD + "  - name: a\n    type: extract-sql\n    conection: shop\n    table: orders\n",
        "p.yaml:5: steps.a.conection: unknown field `conection` (did you mean `connection`?)",
    ),
    (
        HEAD + EXTRACT + "  - name: b\n    type: load\n    inputs: [nope]\n    table: t\n",
        "p.yaml:9: steps.b.inputs: no step named 'nope' (steps: a, b)",
    ),
    (
        HEAD
        + "  - name: a\n    type: transform-sql\n    sql: select 1\n    inputs: [b]\n"
        + "  - name: b\n    type: transform-sql\n    sql: select 1\n    inputs: [a]\n",
        "p.yaml:6: steps.a.inputs: cycle a → b → a (a pipeline is a DAG; remove one of these dependencies)",
    ),
    (
        HEAD + EXTRACT + "  - name: b\n    type: load\n    inputs: [a]\n    table: t\n    mode: mrege\n",
        "p.yaml:11: steps.b.mode: Input should be 'append', 'replace', 'upsert', 'merge' or 'delete_insert'",
    ),
    (
        HEAD + EXTRACT + "  - name: b\n    type: load\n    inputs: [a]\n    table: t\n    mode: upsert\n",
        "p.yaml:7: steps.b: mode upsert needs `primary_key`",
    ),
    (
        HEAD + EXTRACT + "    resources: {memory: lots}\n",
        "p.yaml:7: steps.a.resources.memory: 'lots' is not a size; write it like 512M, 2G or 1048576",
    ),
    (
        HEAD + "  - name: a\n    type: extract-sql\n    connection: shop\n",
        "p.yaml:3: steps.a: give exactly one of `table` or `query`",
    ),
    (
        HEAD + EXTRACT + "  - name: a\n    type: sql\n    sql: select 1\n",
        "p.yaml:7: steps.a: duplicate step name (the first one is at p.yaml:3)",
    ),
    (
        HEAD + EXTRACT + "  - name: b\n    type: load\n    table: t\n",
        "p.yaml:7: steps.b.inputs: load takes exactly 1 input, got 0",
    ),
    (
        HEAD
        + "  - name: s\n    type: sql\n    sql: select 1\n"
        + "  - name: t\n    type: transform-sql\n    sql: select 1\n    inputs: [s]\n",
        "p.yaml:9: steps.t.inputs: step 's' (sql) writes no dataset (list it in depends_on to wait for it)",
    ),
    (
        HEAD + "  - name: t\n    type: transform-sql\n    file: missing.sql\n",
        "p.yaml:5: steps.t.file: no such file 'missing.sql'",
    ),
    (
        "name: p\nsteps:\n  - name: a\n   type: x\n",
        "p.yaml:4: not valid YAML: expected <block end>, but found '<block mapping start>'",
    ),
    ("name: p\nname: q\n", "p.yaml:2: duplicate key 'name' (it is already set at line 1)"),
    ("", "p.yaml:1: the file is empty (a pipeline needs `name` and `steps`)"),
    ("- just\n- a list\n", "p.yaml:1: a pipeline is a mapping with `name` and `steps`"),
    ("name: p\nsteps: []\n", "p.yaml:2: steps: List should have at least 1 item after validation, not 0"),
    (
        HEAD + "  - name: 9bad\n    type: sql\n    sql: select 1\n",
        "p.yaml:3: steps.9bad.name: '9bad' is not a valid name",
    ),
]


@pytest.mark.parametrize(("text", "message"), CASES)
def test_bad_pipeline_files(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        parse_pipeline(text, source="p.yaml", base_dir=tmp_path)
    assert str(err.value).startswith(message), str(err.value)


def test_yaml_merge_keys_share_fields_and_the_step_own_fields_win(tmp_path: Path) -> None:
    text = (
        "name: p\ndefaults: &d\n  retries: 1\nsteps:\n"
        "  - &base\n    name: a\n    type: sql\n    sql: select 1\n"
        "  - <<: [*base, *d]\n    name: b\n    retries: 3\n"
        "  - <<: *base\n    name: c\n    sql: select 2\n"
    )
    steps = parse_pipeline(text, source="p.yaml", base_dir=tmp_path).spec.steps
    assert [(s.name, s.type, s.sql, s.retries) for s in steps] == [  # type: ignore[union-attr]
        ("a", "sql", "select 1", None),
        ("b", "sql", "select 1", 3),
        ("c", "sql", "select 2", None),
    ]
    with pytest.raises(UserError) as err:  # a merged field's error points at the `<<` line
        parse_pipeline(text + "  - <<: *base\n    name: d\n    type: load\n    inputs: [a]\n    table: t\n")
    assert str(err.value) == "pipeline.yaml:15: steps.d.sql: unknown field `sql` (load steps do not take it)"


def test_missing_file_and_good_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no pipeline file"):
        load_pipeline(tmp_path / "nope.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\x00\xff\xfe")
    with pytest.raises(UserError, match="the pipeline file is not UTF-8 text"):
        load_pipeline(tmp_path / "bin.yaml")
    (tmp_path / "q.sql").write_text("select 1 as x")
    path = tmp_path / "ok.yaml"
    path.write_text(
        HEAD + EXTRACT + "  - name: t\n    type: transform-sql\n    inputs: [a]\n    file: q.sql\n"
    )
    pipeline = load_pipeline(path)
    assert pipeline.dag.order() == ["a", "t"] and pipeline.base_dir == tmp_path.resolve()


def test_python_api_builds_the_same_pipeline_as_yaml(tmp_path: Path) -> None:
    yaml_text = (
        HEAD + EXTRACT + "  - name: b\n    type: load\n    inputs: [a]\n    table: t\n    mode: upsert\n"
        "    primary_key: [id]\n"
    )
    from_yaml = parse_pipeline(yaml_text, source="p.yaml", base_dir=tmp_path)
    p = PipelineBuilder("p", base_dir=tmp_path)
    a = p.extract_sql("a", connection="shop", table="orders")
    p.load("b", input=a, table="t", mode="upsert", primary_key=["id"])
    assert p.build().spec == from_yaml.spec
    bad = PipelineBuilder("p")
    bad.load("b", input="nope", table="t")
    with pytest.raises(UserError) as err:
        bad.build()
    assert str(err.value) == "pipeline p: steps.b.inputs: no step named 'nope' (steps: b)"


def test_json_schema_lists_every_step_type() -> None:
    schema = json_schema()
    text = json.dumps(schema)
    for step_type in ("extract-sql", "extract-files", "transform-sql", "transform-python", "load", "sql"):
        assert f'"{step_type}"' in text
    assert schema["title"] == "freight pipeline" and "steps" in schema["properties"]
