"""The plan memo: what the last full plan of a workspace learnt, so a cached build need not plan again.

Planning reads freight.toml (pydantic), every package.json, the lockfile (yaml) and builds the task
graph; none of that changes unless one of those files does. The memo keeps, per workspace folder, each
task's hashing `Recipe` and what running it needs (its outputs, whether it runs and is cached),
under a fingerprint of everything the plan was made from: the git blob ids of the root files and of
every package.json, the stats of those files and of the folders packages live in (an ignored or
new package.json moves them), and the node binary. A fast path recomputes the fingerprint (one
`git ls-files`, which hashing needs anyway) and, when it matches, evaluates the recipes over the files
as they are now: the same hashes the full plan gives, through the same `recipe.evaluate`.

The memo lives under FREIGHT_HOME (never in the workspace); losing it costs one full plan.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from freight.builds.recipe import SCHEME, Recipe

if TYPE_CHECKING:
    from freight.builds.plan import Plan

VERSION = 1
#: Files at the root that shape the plan (plan._ROOT_FILES; a test keeps the two in step).
ROOT_FILES = (
    "package.json",
    "freight.toml",
    "pnpm-workspace.yaml",
    "pnpm-lock.yaml",
    "yarn.lock",
    "package-lock.json",
)
#: The only plan the memo answers for: `freight build` of every package's `build` task.
TASKS = ("build",)


@dataclass(frozen=True)
class MemoTask:
    recipe: Recipe
    runnable: bool
    cache: bool
    outputs: list[str]


@dataclass(frozen=True)
class PlanMemo:
    root: str
    key: str
    dirs: dict[str, str]
    global_inputs: list[str]
    publish: bool
    node: str
    tasks: list[MemoTask]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "root": self.root,
            "key": self.key,
            "dirs": self.dirs,
            "global_inputs": self.global_inputs,
            "publish": self.publish,
            "node": self.node,
            "tasks": [
                {"recipe": t.recipe.to_dict(), "runnable": t.runnable, "cache": t.cache, "outputs": t.outputs}
                for t in self.tasks
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanMemo:
        return cls(
            root=str(data["root"]),
            key=str(data["key"]),
            dirs={str(k): str(v) for k, v in data["dirs"].items()},
            global_inputs=[str(g) for g in data["global_inputs"]],
            publish=bool(data["publish"]),
            node=str(data["node"]),
            tasks=[
                MemoTask(
                    recipe=Recipe.from_dict(t["recipe"]),
                    runnable=bool(t["runnable"]),
                    cache=bool(t["cache"]),
                    outputs=[str(g) for g in t["outputs"]],
                )
                for t in data["tasks"]
            ],
        )


def memo_path(home: Path, start: Path) -> Path:
    digest = hashlib.sha256(str(start).encode()).hexdigest()[:24]
    return home / "cache" / "plans" / f"{digest}.json"


def _stat(path: Path) -> list[int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def node_identity(environ: Mapping[str, str]) -> list[Any]:
    """Which node binary `node --version` would run, and its stats (a new node moves them)."""
    found = shutil.which("node", path=environ.get("PATH", os.defpath))
    if found is None:
        return [None]
    real = os.path.realpath(found)
    return [real, _stat(Path(real))]


def fingerprint(
    start: Path, root: Path, files: Mapping[str, str], dirs: Iterable[str], environ: Mapping[str, str]
) -> str:
    """A digest of everything a plan is made from, besides the files' own content and the env's values
    (which the recipes hash themselves)."""
    shaping = sorted(
        f"{path} {digest}"
        for path, digest in files.items()
        if (path in ROOT_FILES or path.rsplit("/", 1)[-1] == "package.json")
        and "node_modules" not in path.split("/")
    )
    stats: dict[str, list[int] | None] = {}
    for folder in (start, *start.parents):
        for name in ("package.json", "pnpm-workspace.yaml"):
            stats[str(folder / name)] = _stat(folder / name)
        if folder == root:
            break
    for name in ROOT_FILES:
        stats[str(root / name)] = _stat(root / name)
    for rel in dirs:
        stats[str(root / rel / "package.json")] = _stat(root / rel / "package.json")
        stats[str((root / rel).parent)] = _stat((root / rel).parent)
    body = [VERSION, SCHEME, str(start), str(root), shaping, stats, node_identity(environ)]
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def memo_of(plan: Plan, start: Path, publish: bool, environ: Mapping[str, str]) -> PlanMemo:
    dirs = {p.dir: p.name for p in plan.ws.packages.values()}
    tasks = [
        MemoTask(
            recipe=recipe,
            runnable=plan.graph.tasks[recipe.task].runnable,
            cache=plan.graph.tasks[recipe.task].config.cache,
            outputs=list(plan.graph.tasks[recipe.task].config.outputs),
        )
        for recipe in plan.recipes
    ]
    return PlanMemo(
        root=str(plan.ws.root),
        key=fingerprint(start, plan.ws.root, plan.files, dirs, environ),
        dirs=dirs,
        global_inputs=list(plan.ws.config.workspace.global_inputs),
        publish=publish,
        node=plan.node,
        tasks=tasks,
    )


def save(home: Path, start: Path, memo: PlanMemo) -> None:
    """Write the memo atomically; a failure only costs the next build a full plan."""
    path = memo_path(home, start)
    text = json.dumps(memo.to_dict())
    try:
        if path.read_text() == text:
            return  # a build of an unchanged workspace writes nothing
    except (OSError, UnicodeDecodeError):
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    except OSError:
        pass


def load(home: Path, start: Path) -> PlanMemo | None:
    """The memo of the workspace folder `start`; None when absent or unreadable."""
    try:
        data = json.loads(memo_path(home, start).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return None
    try:
        return PlanMemo.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
