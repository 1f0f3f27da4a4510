"""`freight build --why APP`: which input changed since the last recorded run of a task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from freight.builds.hashing import TaskInputs


@dataclass
class Explanation:
    task: str
    hash: str
    previous_hash: str | None
    previous_run: str | None
    #: One line per changed input, e.g. "file src/main.js changed".
    changes: list[str] = field(default_factory=list)
    cached: str | None = None

    @property
    def changed(self) -> bool:
        return self.previous_hash != self.hash

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "changed": self.changed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        """The inverse of to_dict(), for explanations a server sent."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def text(self) -> str:
        head = f"{self.task}: hash {self.hash[:12]}"
        if self.previous_hash is None:
            return f"{head}\n  no earlier run recorded: a first build is always a miss"
        if not self.changed:
            where = f"in the {self.cached} cache" if self.cached else "but its cache entry is gone"
            return f"{head} is the same as in run {self.previous_run}; it is a hit {where}"
        lines = [f"{head} differs from {self.previous_hash[:12]} (run {self.previous_run}):"]
        lines.extend(
            f"  - {change}" for change in self.changes or ["(inputs match; the hashing scheme changed)"]
        )
        if self.cached:  # an older build had these very inputs: not a miss at all
            lines.append(
                f"  it is still a hit: an earlier build with these inputs is in the {self.cached} cache"
            )
        return "\n".join(lines)


def _diff_maps(kind: str, old: dict[str, str], new: dict[str, str], limit: int = 20) -> list[str]:
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            out.append(f"{kind} {key} added")
        elif key not in new:
            out.append(f"{kind} {key} removed")
        elif old[key] != new[key]:
            out.append(f"{kind} {key} changed")
    if len(out) > limit:
        out = [*out[:limit], f"... and {len(out) - limit} more {kind} changes"]
    return out


def compare(old: TaskInputs, new: TaskInputs) -> list[str]:
    changes = _diff_maps("file", old.files, new.files)
    changes += _diff_maps("global file", old.global_files, new.global_files)
    added = sorted(set(new.lockfile) - set(old.lockfile))
    removed = sorted(set(old.lockfile) - set(new.lockfile))
    changes += [f"lockfile entry {e.split(' ')[0]} added" for e in added[:20]]
    changes += [f"lockfile entry {e.split(' ')[0]} removed" for e in removed[:20]]
    changes += [c.replace(" changed", " changed value") for c in _diff_maps("env var", old.env, new.env)]
    for key in sorted(set(old.settings) | set(new.settings)):
        if old.settings.get(key) != new.settings.get(key):
            changes.append(f"task setting {key!r}: {old.settings.get(key)!r} -> {new.settings.get(key)!r}")
    for key in sorted(set(old.tools) | set(new.tools)):
        if old.tools.get(key) != new.tools.get(key):
            changes.append(f"tool {key}: {old.tools.get(key)} -> {new.tools.get(key)}")
    for dep in sorted(set(old.deps) | set(new.deps)):
        if dep not in old.deps:
            changes.append(f"new dependency {dep}")
        elif dep not in new.deps:
            changes.append(f"dependency {dep} dropped")
        elif old.deps[dep] != new.deps[dep]:
            changes.append(f"dependency {dep} changed (hash {old.deps[dep][:12]} -> {new.deps[dep][:12]})")
    return changes


def explain(
    task: str, current: TaskInputs, previous: dict[str, Any] | None, cached: str | None = None
) -> Explanation:
    """Compare the task's inputs now with `previous` (a recorded task run: hash, inputs, run_id)."""
    result = Explanation(task, current.digest(), None, None, cached=cached)
    if previous is None:
        return result
    result.previous_hash = str(previous["hash"])
    result.previous_run = str(previous.get("run_id"))
    if result.changed:
        result.changes = compare(TaskInputs.from_dict(previous["inputs"]), current)
    return result
