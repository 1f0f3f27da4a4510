"""What a task's hash covers, and how its inputs are computed: the one definition of what is hashed.

A `Recipe` is a task's hashing instructions with the workspace already read (which files are its
own, which globs select and exclude them, its lockfile entries, the names of the env vars it
declares, its settings, its dependencies). `task_inputs` turns a recipe plus the workspace's files as
git sees them, the environment and the node version into the task's `TaskInputs`.

The full planner (`hashing.Hasher`) makes recipes from freight.toml and the package.json files; the
fast path of a cached build (`builds.fastpath`) reads the same recipes back from the plan memo and
evaluates them with the same functions, so both always agree on a hash. Standard library only: the
fast path must not import pydantic, yaml or SQLAlchemy.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from freight.builds.globs import match_any

#: Bump when the hashing scheme changes, so old cache entries stop matching.
SCHEME = "freight-build-v1"


#: `node --version` once per process (a node start costs ~40 ms); the fast path seeds it from the
#: plan memo when the node binary is the one the memo saw.
_node: list[str] = []


def node_version() -> str:
    if not _node:
        try:
            done = subprocess.run(["node", "--version"], capture_output=True, check=False, timeout=30)
        except (FileNotFoundError, subprocess.TimeoutExpired):
            _node.append("absent")
        else:
            _node.append(done.stdout.decode().strip() or "absent")
    return _node[0]


def seed_node_version(version: str) -> None:
    if not _node:
        _node.append(version)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class TaskInputs:
    files: dict[str, str]
    global_files: dict[str, str]
    lockfile: list[str]
    env: dict[str, str]
    settings: dict[str, Any]
    tools: dict[str, str]
    deps: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "global": self.global_files,
            "lockfile": self.lockfile,
            "env": self.env,
            "settings": self.settings,
            "tools": self.tools,
            "deps": self.deps,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskInputs:
        return cls(
            files=dict(data.get("files", {})),
            global_files=dict(data.get("global", {})),
            lockfile=list(data.get("lockfile", [])),
            env=dict(data.get("env", {})),
            settings=dict(data.get("settings", {})),
            tools=dict(data.get("tools", {})),
            deps=dict(data.get("deps", {})),
        )

    def digests(self) -> dict[str, str]:
        """One digest per input kind (what `--dry --json` shows)."""
        return {
            k: _sha(json.dumps(v, sort_keys=True, separators=(",", ":"))) for k, v in self.to_dict().items()
        }

    def digest(self) -> str:
        body = json.dumps([SCHEME, self.digests()], sort_keys=True, separators=(",", ":"))
        return _sha(body)[:32]


def env_digest(names: list[str], environ: Mapping[str, str]) -> dict[str, str]:
    """Declared names (a trailing * is a prefix) -> sha256 of the value; unset names are left out."""
    selected: dict[str, str] = {}
    for name in names:
        if name.endswith("*"):
            selected.update({k: v for k, v in environ.items() if k.startswith(name[:-1])})
        elif name in environ:
            selected[name] = environ[name]
    return {k: _sha(v)[:16] for k, v in sorted(selected.items())}


@dataclass(frozen=True)
class Recipe:
    """One task's hashing instructions (JSON-able, so the plan memo can keep them)."""

    task: str
    package: str
    #: The package's folder, relative to the workspace root ("" for the root package).
    dir: str
    #: Input globs (empty: every file of the package).
    inputs: list[str]
    #: Globs never hashed: every task's outputs.
    excluded: list[str]
    lockfile: list[str]
    #: Declared env var names (global and the task's; a trailing * is a prefix).
    env: list[str]
    settings: dict[str, Any]
    deps: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "package": self.package,
            "dir": self.dir,
            "inputs": self.inputs,
            "excluded": self.excluded,
            "lockfile": self.lockfile,
            "env": self.env,
            "settings": self.settings,
            "deps": self.deps,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        return cls(
            task=str(data["task"]),
            package=str(data["package"]),
            dir=str(data["dir"]),
            inputs=[str(g) for g in data["inputs"]],
            excluded=[str(g) for g in data["excluded"]],
            lockfile=[str(e) for e in data["lockfile"]],
            env=[str(n) for n in data["env"]],
            settings=dict(data["settings"]),
            deps=[str(d) for d in data["deps"]],
        )


def partition(files: Mapping[str, str], dirs: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The workspace's files by owning package (`dirs`: folder -> package name; "" owns the rest),
    each keyed by its path inside the package."""
    result: dict[str, dict[str, str]] = {name: {} for name in dirs.values()}
    result[""] = {}
    for path, digest in files.items():
        parent = path
        owner = ""
        while "/" in parent:
            parent = parent.rsplit("/", 1)[0]
            if parent in dirs:
                owner = dirs[parent]
                break
        if owner:
            result[owner][path[len(parent) + 1 :]] = digest
        else:
            result[""][path] = digest
    return result


def global_files(
    by_package: Mapping[str, Mapping[str, str]], dirs: Mapping[str, str], patterns: list[str]
) -> dict[str, str]:
    """The workspace files matching `workspace.global_inputs`, by root-relative path."""
    if not patterns:
        return {}
    folder = {name: d for d, name in dirs.items()}
    everything = {
        (f"{folder[n]}/{rel}" if n else rel): digest
        for n, files in by_package.items()
        for rel, digest in files.items()
    }
    return {path: d for path, d in sorted(everything.items()) if match_any(path, patterns)}


def own_files(recipe: Recipe, files: Mapping[str, str]) -> dict[str, str]:
    """The package's files this task hashes: its inputs, minus node_modules and every task's outputs."""
    result = {}
    for rel, digest in files.items():
        if rel.split("/", 1)[0] == "node_modules" or match_any(rel, recipe.excluded):
            continue
        if recipe.inputs and not match_any(rel, recipe.inputs):
            continue
        result[rel] = digest
    return result


def task_inputs(
    recipe: Recipe,
    package_files: Mapping[str, str],
    global_inputs: dict[str, str],
    environ: Mapping[str, str],
    node: str,
    hashes: Mapping[str, str],
) -> TaskInputs:
    """The task's inputs now (`hashes`: the digests of the tasks it depends on)."""
    return TaskInputs(
        files=own_files(recipe, package_files),
        global_files=global_inputs,
        lockfile=recipe.lockfile,
        env=env_digest(recipe.env, environ),
        settings=recipe.settings,
        tools={"node": node},
        deps={d: hashes[d] for d in recipe.deps},
    )


def evaluate(
    recipes: list[Recipe],
    files: Mapping[str, str],
    dirs: Mapping[str, str],
    global_patterns: list[str],
    environ: Mapping[str, str],
    node: str,
) -> dict[str, TaskInputs]:
    """Every task's inputs; `recipes` in dependency order."""
    by_package = partition(files, dirs)
    shared = global_files(by_package, dirs, global_patterns)
    result: dict[str, TaskInputs] = {}
    hashes: dict[str, str] = {}
    for recipe in recipes:
        inputs = task_inputs(recipe, by_package.get(recipe.package, {}), shared, environ, node, hashes)
        result[recipe.task] = inputs
        hashes[recipe.task] = inputs.digest()
    return result
