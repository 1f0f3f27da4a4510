"""Read a pipeline file into a checked `Pipeline`, with every error pointing at file:line and a field.

PyYAML's `compose` gives the node tree with line numbers; the same tree is turned into plain data for
pydantic, and pydantic's error locations are walked back through the tree to the line that holds the
offending key. Only the first problem is reported, as one line: fixing it may fix the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from freight.errors import UserError, suggest
from freight.pipelines.graph import Dag, check_graph
from freight.pipelines.spec import STEP_TYPES, PipelineSpec
from freight.yamlfile import compose_checked

Path_ = tuple[str | int, ...]


@dataclass
class Locator:
    """Maps a path in the document (("steps", 2, "mode")) to the line where it was written."""

    source: str
    lines: dict[Path_, int] = field(default_factory=dict)
    data: Any = None

    def where(self, path: Path_) -> str:
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return f"{self.source}:{line}"
        return self.source

    def label(self, path: Path_) -> str:
        """steps[2].mode, written with the step's name when it has one: steps.load_orders.mode."""
        out = ""
        node = self.data
        for part in path:
            if isinstance(part, int):
                item = node[part] if _is_list(node) and _has(node, part) else None
                name = item.get("name") if isinstance(item, dict) else None
                out += f".{name}" if out == "steps" and isinstance(name, str) else f"[{part}]"
                node = node[part] if _is_list(node) and _has(node, part) else None
            else:
                out += f".{part}" if out else part
                node = node.get(part) if isinstance(node, dict) else None
        return out or "(top level)"


@dataclass
class Pipeline:
    """A validated spec, the folder its relative file paths start from, and where it came from."""

    spec: PipelineSpec
    base_dir: Path
    locator: Locator
    dag: Dag

    @property
    def name(self) -> str:
        return self.spec.name

    def file(self, relative: str) -> Path:
        return (self.base_dir / relative).resolve()


def load_pipeline(path: Path | str) -> Pipeline:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"no pipeline file {str(path)!r}", hint="check the path") from None
    except OSError as exc:
        raise UserError(f"cannot read the pipeline file: {exc.strerror}", where=str(path)) from None
    except UnicodeDecodeError:
        raise UserError(
            "the pipeline file is not UTF-8 text", where=str(path), hint="give a YAML file"
        ) from None
    return parse_pipeline(text, source=str(path), base_dir=path.resolve().parent)


def parse_pipeline(text: str, *, source: str = "pipeline.yaml", base_dir: Path | None = None) -> Pipeline:
    locator = Locator(source)
    node = compose_checked(text, source)  # size, depth and alias-expansion caps; one line each
    if node is None:
        raise UserError("the file is empty", where=f"{source}:1", hint="a pipeline needs `name` and `steps`")
    locator.data = _to_data(node, (), locator)
    from freight.pipelines import dataduct  # Dataduct's format: converted, then checked the same way

    if dataduct.looks_like(locator.data):
        base = base_dir or Path.cwd()
        converted = dataduct.convert(locator.data, source=source, lines=locator.lines, base_dir=base)
        return validate(converted.spec, Locator(source), base)
    return validate(locator.data, locator, base_dir or Path.cwd())


def validate(data: Any, locator: Locator, base_dir: Path) -> Pipeline:
    """Validate plain data (from YAML or the Python API) into a Pipeline, or raise one UserError."""
    if not isinstance(data, dict):
        raise UserError("a pipeline is a mapping with `name` and `steps`", where=locator.where(()))
    locator.data = data
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_error(exc, locator) from None
    dag = check_graph(spec, locator, base_dir)
    return Pipeline(spec, base_dir, locator, dag)


def _to_data(node: yaml.Node, path: Path_, locator: Locator, within: frozenset[int] = frozenset()) -> Any:
    locator.lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in within:  # `&a` ... `*a` inside the node `&a` marks
        raise UserError("an alias refers to a node that contains it", where=_at_line(locator, node))
    within = within | {id(node)}
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        merges: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:  # `<<: *defaults`, applied once the mapping's own keys are known
                merges.append((key_node, value_node))
                continue
            key = _construct(key_node, locator)
            if isinstance(key, list | dict | set):  # `? [a, b]`: not hashable, and no field name
                raise UserError("a key must be plain text", where=_at_line(locator, key_node))
            if key in out:
                raise UserError(
                    f"duplicate key {key!r}",
                    where=f"{locator.source}:{key_node.start_mark.line + 1}",
                    hint=f"it is already set at line {locator.lines[(*path, key)]}",
                )
            locator.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _to_data(value_node, (*path, key), locator, within)
        for key_node, value_node in merges:
            _merge(out, key_node, value_node, path, locator, within)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(item, (*path, i), locator, within) for i, item in enumerate(node.value)]
    return _construct(node, locator)


MERGE_TAG = "tag:yaml.org,2002:merge"


def _merge(
    out: dict[Any, Any],
    key_node: yaml.Node,
    value: yaml.Node,
    path: Path_,
    locator: Locator,
    within: frozenset[int],
) -> None:
    """YAML's merge key: the keys of a mapping (or of each mapping in a list, the first one winning)
    that the mapping does not set itself. Errors in merged keys point at the `<<` line."""
    line = key_node.start_mark.line + 1
    sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
    for source in sources:
        if not isinstance(source, yaml.MappingNode):
            raise UserError(
                "`<<` merges a mapping, or a list of mappings",
                where=f"{locator.source}:{line}",
                hint="write `<<: *name` where `&name` marks a mapping",
            )
        for key, item in _to_data(source, (*path, "<<"), Locator(locator.source), within).items():
            if key not in out:
                out[key] = item
                locator.lines[(*path, key)] = line


def _construct(node: yaml.Node, locator: Locator) -> Any:
    """A scalar, constructed exactly as yaml.safe_load would (ints, bools, dates, nulls)."""
    try:
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except yaml.YAMLError as exc:  # a tag safe_load does not know (`!custom`, `!!python/object`)
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"not valid YAML here: {problem}", where=_at_line(locator, node)) from None


def _at_line(locator: Locator, node: yaml.Node) -> str:
    return f"{locator.source}:{node.start_mark.line + 1}"


_ALL_FIELDS = sorted(
    {"name", "description", "defaults", "steps", "type", "depends_on", "inputs", "resources", "retries"}
    | {"timeout", "connection", "table", "query", "batch_size", "split", "path", "format", "header"}
    | {"delimiter", "columns", "sql", "file", "function", "script", "warehouse", "mode", "primary_key"}
    | {"create", "on_fail", "source", "tolerance", "key", "sample", "expect", "cpus", "memory"}
    | {"schedule", "params", "wait_for", "preconditions", "notify", "cron", "frequency", "load_time"}
    | {"timezone", "start", "end", "catchup", "max_active_runs", "late_after", "same_interval"}
    | {"ok_to_fail", "on_failure", "on_success", "on_late", "webhook", "email", "secret_env"}
)


def _pydantic_error(exc: ValidationError, locator: Locator) -> UserError:
    err = _first(exc.errors())
    loc = _data_path(locator.data, tuple(err["loc"]))
    kind = err["type"]
    msg = str(err["msg"]).removeprefix("Value error, ")
    hint: str | None = None
    if kind == "union_tag_invalid":
        step_type = err.get("input", {}).get("type") if isinstance(err.get("input"), dict) else None
        loc = (*loc, "type")
        msg = f"unknown step type {step_type!r}"
        hint = _suggest(str(step_type), STEP_TYPES, "use one of " + ", ".join(STEP_TYPES))
    elif kind == "union_tag_not_found":
        msg = "a step needs a `type`"
        hint = "one of " + ", ".join(STEP_TYPES)
    elif kind == "missing":
        msg = f"`{loc[-1]}` is required" if loc else "a field is required"
        loc = loc[:-1]
        return _user_error(msg, locator, loc, hint, field_path=(*loc, err["loc"][-1]))
    elif kind == "extra_forbidden":
        msg = f"unknown field `{loc[-1]}`"
        hint = _suggest(str(loc[-1]), _ALL_FIELDS, "check its spelling")
        if loc[-1] in _ALL_FIELDS:  # a real field, of other step types (or of defaults)
            owner = _at(locator.data, loc[:-1])
            kind_of = owner.get("type") if isinstance(owner, dict) else None
            hint = f"{kind_of} steps do not take it" if kind_of else "it does not belong here"
    elif kind == "string_pattern_mismatch" and loc and loc[-1] == "name":
        msg = f"{err['input']!r} is not a valid name"
        hint = (
            "use letters, digits, . _ and - (and start with a letter or digit)"
            if loc == ("name",)
            else "use letters, digits and _ (and start with a letter or _)"
        )
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        msg = "should be a mapping of fields"
    return _user_error(msg, locator, loc, hint)


def _first(errors: list[Any]) -> Any:
    """The first error, except that a misspelt field beats the required field it was meant to be:
    `conection: shop` says "unknown field `conection` (did you mean `connection`?)", not that
    `connection` is required."""
    first = errors[0]
    if first["type"] == "missing":
        parent = tuple(first["loc"][:-1])
        for err in errors:
            if err["type"] == "extra_forbidden" and tuple(err["loc"][:-1]) == parent:
                return err
    return first


def _user_error(
    msg: str, locator: Locator, loc: Path_, hint: str | None, field_path: Path_ | None = None
) -> UserError:
    return UserError(f"{locator.label(field_path or loc)}: {msg}", where=locator.where(loc), hint=hint)


def _suggest(word: str, choices: Any, fallback: str) -> str:
    return suggest(word, choices, fallback)


def _data_path(data: Any, loc: tuple[Any, ...]) -> Path_:
    """Drop the parts of pydantic's location that are not in the document: the union tag (a step's
    `type` value) that pydantic puts right after the step's index."""
    out: list[str | int] = []
    node = data
    after_index = False
    for part in loc:
        if after_index and isinstance(node, dict) and part == node.get("type"):
            after_index = False
            continue
        after_index = isinstance(part, int)
        if (isinstance(node, dict) and part in node) or (
            _is_list(node) and isinstance(part, int) and _has(node, part)
        ):
            out.append(part)
            node = node[part]
        elif isinstance(part, str) and (isinstance(node, dict) or node is None):
            out.append(part)
            node = None
    return tuple(out)


def _at(data: Any, path: Path_) -> Any:
    """The value at `path` in the document, or None."""
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif _is_list(data) and isinstance(part, int) and _has(data, part):
            data = data[part]
        else:
            return None
    return data


def _is_list(node: Any) -> bool:
    return isinstance(node, list)


def _has(node: list[Any], index: int) -> bool:
    return 0 <= index < len(node)
