"""A build plan: which tasks a `freight build` would run, in what order, and with which hashes."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freight.builds.files import changed_since, head_commit
from freight.builds.globs import match_any
from freight.builds.graph import TaskGraph, build_graph
from freight.builds.hashing import Hasher, TaskInputs, node_version
from freight.builds.recipe import Recipe, evaluate
from freight.builds.workspace import LOCKFILES, Workspace, load_workspace
from freight.errors import UserError

#: Files at the root whose change affects every package.
_ROOT_FILES = {"package.json", "freight.toml", "pnpm-workspace.yaml", *LOCKFILES.values()}


@dataclass
class PlanOptions:
    tasks: Sequence[str] = ("build",)
    #: Only these packages (names, slugs or folders) and what they need.
    only: Sequence[str] = ()
    affected_since: str | None = None
    environ: Mapping[str, str] | None = None


@dataclass
class Plan:
    ws: Workspace
    graph: TaskGraph
    inputs: dict[str, TaskInputs]
    hashes: dict[str, str]
    #: Tasks chosen by the filters; the graph also holds what they depend on.
    selected: set[str]
    commit: str | None
    environ: dict[str, str] = field(default_factory=dict)
    affected: list[str] | None = None
    #: How each task was hashed, and the files it was hashed over (what the plan memo keeps).
    recipes: list[Recipe] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    node: str = ""

    def to_dict(self, cache_status: Mapping[str, str] | None = None) -> dict[str, Any]:
        tasks = []
        for tid in self.graph.order():
            task = self.graph.tasks[tid]
            tasks.append(
                {
                    "task": tid,
                    "package": task.package.name,
                    "dir": task.package.dir,
                    "hash": self.hashes[tid],
                    "command": task.script,
                    "depends_on": list(task.deps),
                    "outputs": task.config.outputs,
                    "cache": (cache_status or {}).get(tid),
                    "selected": tid in self.selected,
                    "inputs": self.inputs[tid].digests(),
                    "files": len(self.inputs[tid].files),
                    "env": sorted(self.inputs[tid].env),
                }
            )
        return {
            "workspace": str(self.ws.root),
            "package_manager": self.ws.manager,
            "commit": self.commit,
            "affected": self.affected,
            "tasks": tasks,
        }


def affected_packages(ws: Workspace, changed: set[str]) -> set[str] | None:
    """Packages owning a changed file; None means "everything" (a root or global input changed)."""
    globals_ = ws.config.workspace.global_inputs
    hit: set[str] = set()
    for path in changed:
        pkg = ws.package_of(path)
        if pkg is not None:
            hit.add(pkg.name)
        elif path in _ROOT_FILES or (globals_ and match_any(path, globals_)):
            return None
    return hit


def make_plan(root: Path, options: PlanOptions) -> Plan:
    ws = load_workspace(root)
    graph = build_graph(ws, options.tasks)
    for name in options.tasks:
        if not any(t.script for t in graph.tasks.values() if t.name == name):
            raise UserError(
                f"no package of the workspace has a {name!r} script",
                where=f"{ws.root}: tasks",
                hint=f'add "scripts": {{"{name}": ...}} to a package.json, or run another task',
            )
    selected = set(graph.tasks)
    if options.only:
        names = {ws.find(name).name for name in options.only}
        selected = {tid for tid in selected if graph.tasks[tid].package.name in names}
    affected: list[str] | None = None
    if options.affected_since:
        packages = affected_packages(ws, changed_since(ws.root, options.affected_since))
        if packages is not None:
            seeds = {tid for tid, t in graph.tasks.items() if t.package.name in packages}
            touched = graph.upstream_of(seeds)
            selected &= touched
            affected = sorted({graph.tasks[t].package.name for t in touched})
        else:
            affected = sorted(ws.packages)
    if options.only and not selected:
        raise UserError("the filters select no task", hint="check the package names and --affected-since")
    graph = graph.subgraph(selected)
    environ = dict(os.environ if options.environ is None else options.environ)
    hasher = Hasher(ws, environ)
    recipes = hasher.recipes(graph)
    node = node_version()
    inputs = evaluate(
        recipes, hasher.files, hasher.dirs, list(ws.config.workspace.global_inputs), environ, node
    )
    return Plan(
        ws=ws,
        graph=graph,
        inputs=inputs,
        hashes={tid: i.digest() for tid, i in inputs.items()},
        selected=selected,
        commit=head_commit(ws.root),
        environ=environ,
        affected=affected,
        recipes=recipes,
        files=hasher.files,
        node=node,
    )
