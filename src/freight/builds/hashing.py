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

import functools
import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from freight.builds.files import list_files
from freight.builds.globs import match_any
from freight.builds.graph import TaskGraph
from freight.builds.lockfile import Lockfile, load_lockfile
from freight.builds.workspace import Package, Workspace

#: Bump when the hashing scheme changes, so old cache entries stop matching.
SCHEME = "freight-build-v1"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def node_version() -> str:
    try:
        done = subprocess.run(["node", "--version"], capture_output=True, check=False, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return "absent"
    return done.stdout.decode().strip() or "absent"


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


class Hasher:
    """Computes every task's inputs and hash for one workspace state."""

    def __init__(self, ws: Workspace, environ: Mapping[str, str] | None = None) -> None:
        self.ws = ws
        self.environ = dict(os.environ if environ is None else environ)
        self.lockfile: Lockfile | None = load_lockfile(ws.root, ws.lockfile)
        self._files_by_package = self._partition(list_files(ws.root))
        root_deps = {
            str(k): str(v)
            for section in ("dependencies", "devDependencies", "optionalDependencies")
            for k, v in (ws.root_manifest.get(section) or {}).items()
        }
        self._root_entries = (
            self.lockfile.entries("", root_deps, internal=ws.packages) if self.lockfile else []
        )

    def _partition(self, files: dict[str, str]) -> dict[str, dict[str, str]]:
        by_dir = {p.dir: p.name for p in self.ws.packages.values()}
        result: dict[str, dict[str, str]] = {name: {} for name in self.ws.packages}
        result[""] = {}
        for path, digest in files.items():
            parent = path
            owner = ""
            while "/" in parent:
                parent = parent.rsplit("/", 1)[0]
                if parent in by_dir:
                    owner = by_dir[parent]
                    break
            if owner:
                rel = path[len(self.ws.packages[owner].dir) + 1 :]
                result[owner][rel] = digest
            else:
                result[""][path] = digest
        return result

    def package_files(self, pkg: Package, inputs: list[str], outputs: list[str]) -> dict[str, str]:
        all_outputs = [g for t in self.ws.config.tasks.values() for g in t.outputs] + outputs
        files = {}
        for rel, digest in self._files_by_package.get(pkg.name, {}).items():
            if rel.split("/", 1)[0] == "node_modules" or match_any(rel, all_outputs):
                continue
            if inputs and not match_any(rel, inputs):
                continue
            files[rel] = digest
        return files

    def global_files(self) -> dict[str, str]:
        patterns = self.ws.config.workspace.global_inputs
        if not patterns:
            return {}
        everything = {
            (f"{self.ws.packages[n].dir}/{rel}" if n else rel): d
            for n, files in self._files_by_package.items()
            for rel, d in files.items()
        }
        return {path: d for path, d in sorted(everything.items()) if match_any(path, patterns)}

    def hash_graph(self, graph: TaskGraph) -> dict[str, TaskInputs]:
        global_files = self.global_files()
        result: dict[str, TaskInputs] = {}
        hashes: dict[str, str] = {}
        for tid in graph.order():
            task = graph.tasks[tid]
            pkg = task.package
            own = self.lockfile.entries(pkg.dir, pkg.deps, internal=self.ws.packages) if self.lockfile else []
            scripts = {
                key: pkg.scripts[key]
                for key in (f"pre{task.name}", task.name, f"post{task.name}")
                if key in pkg.scripts
            }
            inputs = TaskInputs(
                files=self.package_files(pkg, task.config.inputs, task.config.outputs),
                global_files=global_files,
                lockfile=sorted(set(own) | set(self._root_entries)),
                env=env_digest([*self.ws.config.workspace.global_env, *task.config.env], self.environ),
                settings={"task": task.name, "scripts": scripts, **task.config.settings_digest_source()},
                tools={"node": node_version()},
                deps={d: hashes[d] for d in task.deps},
            )
            result[tid] = inputs
            hashes[tid] = inputs.digest()
        return result
