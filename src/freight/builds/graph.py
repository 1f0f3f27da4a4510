"""The task graph: one node per (package, task), edges from `depends_on` (`^build` = deps' build).

A package without the script still gets a node (a no-op): its files feed its dependents' hashes, so a
change in a source-only shared package rebuilds the apps that bundle it.
"""

from __future__ import annotations

import graphlib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from freight.builds.config import TaskConfig
from freight.builds.results import longest_chain
from freight.builds.workspace import Package, Workspace
from freight.errors import UserError
from freight.toposort import stable_order


@dataclass(frozen=True)
class Task:
    id: str
    package: Package
    name: str
    #: The package.json script, or None when the package has none (a no-op node).
    script: str | None
    config: TaskConfig
    deps: tuple[str, ...]

    @property
    def runnable(self) -> bool:
        return self.script is not None


def task_id(package: str, task: str) -> str:
    return f"{package}#{task}"


class TaskGraph:
    def __init__(self, tasks: Mapping[str, Task]) -> None:
        self.tasks = dict(tasks)
        self._order = self._toposort()

    def order(self) -> list[str]:
        """Every task after its dependencies; ties broken by id so the order is stable."""
        return list(self._order)

    def dependents(self) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {tid: set() for tid in self.tasks}
        for task in self.tasks.values():
            for dep in task.deps:
                result[dep].add(task.id)
        return result

    def closure(self, ids: Iterable[str]) -> set[str]:
        """The tasks plus everything they depend on, transitively."""
        seen: set[str] = set()
        stack = list(ids)
        while stack:
            tid = stack.pop()
            if tid not in seen:
                seen.add(tid)
                stack.extend(self.tasks[tid].deps)
        return seen

    def upstream_of(self, ids: Iterable[str]) -> set[str]:
        """The tasks plus everything that depends on them, transitively."""
        dependents = self.dependents()
        seen: set[str] = set()
        stack = list(ids)
        while stack:
            tid = stack.pop()
            if tid not in seen:
                seen.add(tid)
                stack.extend(dependents[tid])
        return seen

    def subgraph(self, ids: Iterable[str]) -> TaskGraph:
        keep = self.closure(ids)
        return TaskGraph({tid: t for tid, t in self.tasks.items() if tid in keep})

    def critical_path(self, durations: Mapping[str, float]) -> tuple[list[str], float]:
        """The chain of dependent tasks with the largest total duration."""
        return longest_chain(self._order, {tid: t.deps for tid, t in self.tasks.items()}, durations)

    def _toposort(self) -> list[str]:
        try:
            return stable_order(sorted(self.tasks), {tid: t.deps for tid, t in self.tasks.items()})
        except graphlib.CycleError as exc:
            raise self._cycle_error(set(exc.args[1])) from None

    def _cycle_error(self, on_cycle: set[str]) -> UserError:
        cycle = self._find_cycle(on_cycle)
        text = "the task graph has a cycle: " + " -> ".join(cycle)
        steps = [(self.tasks[a], self.tasks[b]) for a, b in itertools.pairwise(cycle)]
        within = next((a for a, b in steps if a.package.name == b.package.name), None)
        if within is not None:  # an edge between two tasks of one package: freight.toml made it
            return UserError(
                text,
                where=f"freight.toml: tasks.{within.name}.depends_on",
                hint="tasks must not depend on each other in a circle",
            )
        return UserError(
            text,
            where="package.json dependencies",
            hint="internal packages must not depend on each other in a circle",
        )

    def _find_cycle(self, remaining: set[str]) -> list[str]:
        start = min(remaining)
        path = [start]
        seen = {start}
        while True:
            nxt = min(d for d in self.tasks[path[-1]].deps if d in remaining)
            if nxt in seen:
                return [*path[path.index(nxt) :], nxt]
            path.append(nxt)
            seen.add(nxt)


def build_graph(ws: Workspace, task_names: Iterable[str] = ("build",)) -> TaskGraph:
    tasks: dict[str, Task] = {}
    pending = [(pkg, name) for name in task_names for pkg in sorted(ws.packages)]
    while pending:
        pkg_name, name = pending.pop()
        tid = task_id(pkg_name, name)
        if tid in tasks:
            continue
        package = ws.packages[pkg_name]
        config = ws.config.task(name)
        deps: list[str] = []
        for dep in config.depends_on:
            targets = [(d, dep[1:]) for d in package.internal] if dep.startswith("^") else [(pkg_name, dep)]
            for target in targets:
                deps.append(task_id(*target))
                pending.append(target)
        tasks[tid] = Task(
            id=tid,
            package=package,
            name=name,
            script=package.scripts.get(name),
            config=config,
            deps=tuple(sorted(set(deps) - {tid})),
        )
    return TaskGraph(tasks)
