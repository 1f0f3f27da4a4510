"""Task hashes: one digest over everything that can change what a task produces.

Inputs, each kept separately so `--why` can say which one moved:

- `files`    the package's git-tracked files (minus its outputs), by git blob id
- `global`   files every task depends on (`workspace.global_inputs`)
- `lockfile` the resolved external packages of the package and of the workspace root
- `env`      declared env vars (values are hashed, never stored)
- `settings` the script and the task's settings from freight.toml
- `tools`    the node version
- `deps`     the hashes of the tasks it depends on

Nothing machine-specific (absolute paths, mtimes, user names) goes in, so two clean clones agree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from freight.builds.files import list_files
from freight.builds.graph import TaskGraph
from freight.builds.lockfile import Lockfile, load_lockfile
from freight.builds.recipe import SCHEME, Recipe, TaskInputs, env_digest, evaluate, node_version
from freight.builds.workspace import Workspace

__all__ = ["SCHEME", "Hasher", "Recipe", "TaskInputs", "env_digest", "node_version"]


class Hasher:
    """Computes every task's inputs and hash for one workspace state (through `recipe`, the one
    definition of what is hashed)."""

    def __init__(self, ws: Workspace, environ: Mapping[str, str] | None = None) -> None:
        self.ws = ws
        self.environ = dict(os.environ if environ is None else environ)
        self.lockfile: Lockfile | None = load_lockfile(ws.root, ws.lockfile)
        self.files = list_files(ws.root)
        root_deps = {
            str(k): str(v)
            for section in ("dependencies", "devDependencies", "optionalDependencies")
            for k, v in (ws.root_manifest.get(section) or {}).items()
        }
        self._root_entries = (
            self.lockfile.entries("", root_deps, internal=ws.packages) if self.lockfile else []
        )

    @property
    def dirs(self) -> dict[str, str]:
        """Package folder -> package name."""
        return {p.dir: p.name for p in self.ws.packages.values()}

    def recipes(self, graph: TaskGraph) -> list[Recipe]:
        """Every task's hashing instructions, in dependency order."""
        all_outputs = [g for t in self.ws.config.tasks.values() for g in t.outputs]
        recipes: list[Recipe] = []
        for tid in graph.order():
            task = graph.tasks[tid]
            pkg = task.package
            own = self.lockfile.entries(pkg.dir, pkg.deps, internal=self.ws.packages) if self.lockfile else []
            scripts = {
                key: pkg.scripts[key]
                for key in (f"pre{task.name}", task.name, f"post{task.name}")
                if key in pkg.scripts
            }
            recipes.append(
                Recipe(
                    task=tid,
                    package=pkg.name,
                    dir=pkg.dir,
                    inputs=list(task.config.inputs),
                    excluded=[*all_outputs, *task.config.outputs],
                    lockfile=sorted(set(own) | set(self._root_entries)),
                    env=[*self.ws.config.workspace.global_env, *task.config.env],
                    settings={"task": task.name, "scripts": scripts, **task.config.settings_digest_source()},
                    deps=list(task.deps),
                )
            )
        return recipes

    def hash_graph(self, graph: TaskGraph) -> dict[str, TaskInputs]:
        return evaluate(
            self.recipes(graph),
            self.files,
            self.dirs,
            list(self.ws.config.workspace.global_inputs),
            self.environ,
            node_version(),
        )
