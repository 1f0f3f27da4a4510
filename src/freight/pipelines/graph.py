"""The step DAG: names resolved, cycles refused, topological order, and a text drawing.

`check_graph` reports the first problem with the line it was written on: an unknown name in
`inputs`/`depends_on`, an input from a step that writes no dataset, the wrong number of inputs for a
step type, a file that does not exist, or a cycle (drawn as a → b → a).
"""

from __future__ import annotations

import os.path
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from freight.errors import UserError
from freight.toposort import stable_order

if TYPE_CHECKING:
    from freight.pipelines.loader import Locator
    from freight.pipelines.spec import PipelineSpec


@dataclass(frozen=True)
class Dag:
    #: Step names in file order.
    names: tuple[str, ...]
    #: step → the steps it waits for (inputs first, then depends_on), without repeats.
    upstream: dict[str, tuple[str, ...]]

    def order(self) -> list[str]:
        """A topological order that keeps file order wherever the graph allows it."""
        return stable_order(self.names, self.upstream)

    def downstream(self, name: str) -> list[str]:
        return [n for n in self.names if name in self.upstream[n]]

    def closure_down(self, names: Iterable[str]) -> set[str]:
        """The given steps and everything that (transitively) waits for them."""
        todo = list(names)
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.downstream(name))
        return seen

    def levels(self) -> list[list[str]]:
        """Steps grouped by depth: everything in one level can run at the same time."""
        depth: dict[str, int] = {}
        for name in self.order():
            depth[name] = 1 + max((depth[u] for u in self.upstream[name]), default=-1)
        out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for name in self.names:
            out[depth[name]].append(name)
        return out

    def render(self, types: dict[str, str] | None = None) -> str:
        """A plain-text drawing: one line per step, in order, with what it waits for."""
        types = types or {}
        lines = []
        for level, names in enumerate(self.levels()):
            for name in names:
                ups = self.upstream[name]
                kind = f" [{types[name]}]" if name in types else ""
                arrow = f"  <- {', '.join(ups)}" if ups else ""
                lines.append(f"{level:>2}  {name}{kind}{arrow}")
        return "\n".join(lines)


def _inside(base_dir: Path, rel: str) -> bool:
    if os.path.isabs(rel) or "\x00" in rel:
        return False
    base = os.path.realpath(base_dir)
    return os.path.commonpath([base, os.path.realpath(os.path.join(base, rel))]) == base


def check_graph(spec: PipelineSpec, locator: Locator, base_dir: Path) -> Dag:
    steps = spec.steps
    first: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.name in first:
            raise UserError(
                f"steps.{step.name}: duplicate step name",
                where=locator.where(("steps", i, "name")),
                hint=f"the first one is at {locator.where(('steps', first[step.name], 'name'))}",
            )
        first[step.name] = i
    produces = {s.name: s.produces for s in steps}
    upstream: dict[str, tuple[str, ...]] = {}
    for i, step in enumerate(steps):
        for field in ("inputs", "depends_on"):
            for j, ref in enumerate(getattr(step, field)):
                if ref not in first:
                    raise UserError(
                        f"steps.{step.name}.{field}: no step named {ref!r}",
                        where=locator.where(("steps", i, field, j)),
                        hint="steps: " + ", ".join(first),
                    )
                if ref == step.name:
                    raise UserError(
                        f"steps.{step.name}.{field}: a step cannot wait for itself",
                        where=locator.where(("steps", i, field, j)),
                    )
                if field == "inputs" and not produces[ref]:
                    raise UserError(
                        f"steps.{step.name}.inputs: step {ref!r} ({steps[first[ref]].type}) "
                        "writes no dataset",
                        where=locator.where(("steps", i, field, j)),
                        hint="list it in depends_on to wait for it",
                    )
        least, most = step.input_range
        count = len(step.inputs)
        if count < least or (most is not None and count > most):
            raise UserError(
                f"steps.{step.name}.inputs: {step.type} takes {_range_text(least, most)}, got {count}",
                where=locator.where(("steps", i, "inputs") if step.inputs else ("steps", i)),
            )
        for field, rel in step.files().items():
            # checked before anything is opened: a path outside the pipeline's folder (`/root/x`,
            # `../../etc/passwd`) gets the same answer whether it exists or not, and is never read
            if not _inside(base_dir, rel):
                raise UserError(
                    f"steps.{step.name}.{field}: {rel!r} is not inside the pipeline's folder",
                    where=locator.where(("steps", i, field)),
                    hint=f"name a file under {base_dir}, relative to it",
                )
            if not (base_dir / rel).is_file():
                raise UserError(
                    f"steps.{step.name}.{field}: no such file {rel!r}",
                    where=locator.where(("steps", i, field)),
                    hint=f"paths start at {base_dir}",
                )
        upstream[step.name] = tuple(dict.fromkeys([*step.inputs, *step.depends_on]))
    dag = Dag(tuple(first), upstream)
    cycle = _find_cycle(dag)
    if cycle:
        i = first[cycle[0]]
        field = "depends_on" if cycle[-2] in steps[i].depends_on else "inputs"
        raise UserError(
            f"steps.{cycle[0]}.{field}: cycle " + " → ".join(cycle),
            where=locator.where(("steps", i, field)),
            hint="a pipeline is a DAG; remove one of these dependencies",
        )
    return dag


def _range_text(least: int, most: int | None) -> str:
    if most == least:
        return "no inputs" if least == 0 else f"exactly {least} input{'s' if least > 1 else ''}"
    if most is None:
        return f"at least {least} input{'s' if least != 1 else ''}"
    return f"{least} to {most} inputs"


def _find_cycle(dag: Dag) -> list[str] | None:
    """A cycle as a path that starts and ends at the same step, found by depth-first search."""
    state: dict[str, int] = {}  # 1 on the stack, 2 finished
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for up in dag.upstream[name]:
            if state.get(up) == 1:
                # reverse: show the cycle in the direction data flows (producer → consumer)
                loop = [*stack[stack.index(up) :], up]
                return loop[::-1]
            if up not in state:
                found = visit(up)
                if found:
                    return found
        stack.pop()
        state[name] = 2
        return None

    for name in dag.names:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None
