"""Load YAML keeping line numbers, so errors can say file:line for a field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from freight.errors import UserError


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


def load_yaml(path: Path) -> LocatedYaml:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"no such file: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text", hint="give a YAML or JSON file") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        raise UserError(f"not valid YAML: {exc.problem}", where=f"{path}:{line}") from None
    except yaml.reader.ReaderError as exc:  # a control character, before any parsing
        line = text.count("\n", 0, exc.position) + 1
        raise UserError(f"not valid YAML: {exc.reason}", where=f"{path}:{line}") from None
    return LocatedYaml(path, data, root)
