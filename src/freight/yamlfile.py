"""Load YAML keeping line numbers, so errors can say file:line for a field path.

Every YAML freight reads from a user goes through `compose_checked`, which bounds what a small file can
cost: its size (`MAX_BYTES`), its nesting (`MAX_DEPTH`, checked on the parser's events before PyYAML's
recursive composer can overflow the stack) and the size of the tree once aliases are expanded
(`MAX_NODES`; a 300-byte "billion laughs" file names a tree of 10^9 nodes, and anything that walks it as
plain data — pydantic, json — would take minutes and gigabytes). Each refusal is one line at the real line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from freight.errors import UserError

MAX_BYTES = 1024 * 1024
#: libyaml's parser when PyYAML was built with it (10-50x faster than the pure-Python one)
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_DEPTH = 64
MAX_NODES = 200_000


class LocatedYaml:
    def __init__(self, path: Path, data: Any, root: yaml.Node | None) -> None:
        self.path = path
        self.data = data
        self.root = root

    def line_of(self, loc: tuple[str | int, ...]) -> int:
        """1-based line of the node at `loc` (or of its deepest existing parent)."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else 1
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            node = child
            line = node.start_mark.line + 1
        return line

    def where(self, loc: tuple[str | int, ...]) -> str:
        field = ".".join(str(p) for p in loc)
        return f"{self.path}:{self.line_of(loc)}" + (f": {field}" if field else "")


def _child(node: yaml.Node | None, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return value if isinstance(value, yaml.Node) else None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        child = node.value[part]
        return child if isinstance(child, yaml.Node) else None
    return None


def read_text(path: Path, *, what: str = "file") -> str:
    """The file's text, or one UserError: missing, unreadable, too big or not UTF-8."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"no such {what}: {path}", hint="check the path") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a {what}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise UserError(
            f"{path} is larger than {MAX_BYTES // (1024 * 1024)} MiB",
            hint="a YAML file this big is a mistake",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text", hint="give a YAML or JSON file") from None


def compose_checked(text: str, source: str) -> yaml.Node | None:
    """The node tree of a one-document YAML text, refused (one UserError at file:line) when it is too
    big, too deep, expands to too many nodes through aliases, or is not YAML."""
    if len(text) > MAX_BYTES:
        raise UserError(f"larger than {MAX_BYTES // (1024 * 1024)} MiB", where=source)
    _check_flow_depth(text, source)
    try:
        try:
            node = _compose(text, source, _LOADER)
        except yaml.YAMLError:
            if _LOADER is yaml.SafeLoader:
                raise
            # the pure-Python parser says what is wrong in the words (and at the line) people know
            node = _compose(text, source, yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise yaml_error(exc, source) from None
    except yaml.reader.ReaderError as exc:  # a control character, before any parsing
        line = text.count("\n", 0, exc.position) + 1
        raise UserError(f"not valid YAML: {exc.reason}", where=f"{source}:{line}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"not valid YAML: {str(exc).splitlines()[0]}", where=f"{source}:1") from None
    if node is not None:
        _check_expansion(node, source)
    return node


#: a flow collection or a quoted scalar starts a node: at a line's start or after one of these
_NODE_STARTS = frozenset("\n:-,?")


def _check_flow_depth(text: str, source: str) -> None:
    """Refuse deep `[[[…`/`{{{…` before a YAML parser sees them: the scanner treats each flow opener
    as a possible key and reads ahead until it is settled, so thousands of them cost seconds before
    the parser could say "too deep". This pass is linear and counts openers only where a flow
    collection can start (not inside quotes or comments, not in the middle of a plain scalar)."""
    depth = 0
    line = 1
    quote = ""
    sig = "\n"  # the last character that is not a space
    opened = False  # whether `sig` was an opener counted here
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                if quote == "'" and i + 1 < n and text[i + 1] == "'":
                    i += 1
                else:
                    quote = ""
            i += 1
            continue
        starts_node = sig in _NODE_STARTS or opened
        if c == "#" and (i == 0 or text[i - 1] in " \t\n"):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in " \t\r":
            i += 1
            continue
        opened = False
        if c in "\"'" and starts_node:
            quote = c
        elif c in "[{" and starts_node:
            depth += 1
            opened = True
            if depth > MAX_DEPTH:
                hint = "flatten the structure"
                raise UserError(f"nested deeper than {MAX_DEPTH} levels", where=f"{source}:{line}", hint=hint)
        elif c in "]}" and depth:
            depth -= 1
        sig = c
        i += 1


def _compose(text: str, source: str, loader_class: Any) -> yaml.Node | None:
    _check_depth(text, source, loader_class)
    loader = loader_class(text)
    try:
        node: yaml.Node | None = loader.get_single_node()
        return node
    finally:
        loader.dispose()


def _check_depth(text: str, source: str, loader_class: Any) -> None:
    """Walk the parser's events (iterative, no recursion) and refuse nesting deeper than MAX_DEPTH."""
    depth = 0
    for event in yaml.parse(text, Loader=loader_class):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark is not None else 1
                raise UserError(
                    f"nested deeper than {MAX_DEPTH} levels",
                    where=f"{source}:{line}",
                    hint="flatten the structure",
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_expansion(root: yaml.Node, source: str) -> None:
    """Refuse a tree that has more than MAX_NODES nodes once every alias is expanded. Sizes are
    memoised per node, so the cost is linear in the file, not in the expansion."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    # iterative post-order walk: (node, children pushed?)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if not expanded:
            if key in on_path:  # `&a [*a]`: a node that contains itself
                raise UserError(
                    "an alias refers to a node that contains it", where=f"{source}:{node.start_mark.line + 1}"
                )
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        on_path.discard(key)
        total = 1 + sum(sizes.get(id(child), 0) for child in children)
        if total > MAX_NODES:
            raise UserError(
                f"aliases expand to more than {MAX_NODES:,} values",
                where=f"{source}:{node.start_mark.line + 1}",
                hint="an alias repeated inside aliases multiplies; write the values out",
            )
        sizes[key] = total


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def yaml_error(exc: yaml.YAMLError, source: str) -> UserError:
    """One line for a PyYAML error, at the line where the problem is."""
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return UserError(f"not valid YAML: {problem}", where=f"{source}:{line}")


def construct(node: yaml.Node | None, source: str) -> Any:
    """Plain data from a checked node tree, as yaml.safe_load would build it."""
    if node is None:
        return None
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:  # a tag safe_load does not know (`!custom`, `!!python/object`)
        raise yaml_error(exc, source) from None
    except yaml.YAMLError as exc:
        raise UserError(f"not valid YAML: {str(exc).splitlines()[0]}", where=f"{source}:1") from None
    finally:
        loader.dispose()


def parse_yaml(text: str, source: str) -> Any:
    """Plain data from YAML text (an API body, a stored row), with every cap applied."""
    return construct(compose_checked(text, source), source)


def load_yaml(path: Path) -> LocatedYaml:
    text = read_text(path)
    root = compose_checked(text, str(path))
    return LocatedYaml(path, construct(root, str(path)), root)
