"""A JS monorepo: its package manager, lockfile and workspace packages with their internal dependencies.

npm and yarn list workspace globs in the root package.json (`workspaces`, or `workspaces.packages`);
pnpm in pnpm-workspace.yaml. A package depends on another when it names it in any dependency section.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freight.builds.config import BuildConfig, load_config
from freight.builds.globs import match_any
from freight.errors import UserError

LOCKFILES = {"pnpm": "pnpm-lock.yaml", "yarn": "yarn.lock", "npm": "package-lock.json"}
DEP_SECTIONS = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    #: '/'-separated path from the workspace root ("" is the root package itself).
    dir: str
    scripts: dict[str, str]
    #: Every dependency by name -> version range, internal ones included.
    deps: dict[str, str]
    internal: tuple[str, ...]
    is_app: bool
    #: Short, path-safe name for an app (the package name without its @scope/).
    slug: str

    @property
    def names(self) -> tuple[str, ...]:
        """The names config sections may use for this package."""
        return (self.name, self.slug)


@dataclass
class Workspace:
    root: Path
    manager: str
    lockfile: str | None
    packages: dict[str, Package]
    config: BuildConfig
    root_manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def apps(self) -> list[Package]:
        return [p for p in self.packages.values() if p.is_app]

    def find(self, name: str) -> Package:
        """A package by its name, its slug or its folder."""
        if name in self.packages:
            return self.packages[name]
        hits = [p for p in self.packages.values() if name in (p.slug, p.dir, p.dir.rsplit("/", 1)[-1])]
        if len(hits) == 1:
            return hits[0]
        known = ", ".join(sorted(p.slug for p in self.packages.values()))
        if hits:
            raise UserError(f"{name!r} names several packages", hint="use the full package name")
        raise UserError(f"no package {name!r} in the workspace", where=str(self.root), hint=f"known: {known}")

    def dependents(self) -> dict[str, set[str]]:
        """Package name -> names of the packages that depend on it directly."""
        result: dict[str, set[str]] = {name: set() for name in self.packages}
        for pkg in self.packages.values():
            for dep in pkg.internal:
                result[dep].add(pkg.name)
        return result

    def package_of(self, path: str) -> Package | None:
        """The package owning a root-relative file path (the deepest package folder that holds it)."""
        best: Package | None = None
        for pkg in self.packages.values():
            if (pkg.dir and (path == pkg.dir or path.startswith(pkg.dir + "/"))) and (
                best is None or len(pkg.dir) > len(best.dir)
            ):
                best = pkg
        return best


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"not valid JSON: {exc.msg}", where=f"{path}:{exc.lineno}") from None
    except OSError as exc:
        raise UserError(f"cannot read: {exc.strerror}", where=str(path)) from None
    if not isinstance(data, dict):
        raise UserError("expected a JSON object", where=str(path))
    return data


def find_root(start: Path) -> Path:
    """The nearest folder at or above `start` with a package.json that declares workspaces."""
    start = start.resolve()
    if not start.is_dir():
        raise UserError(
            "no such folder" if not start.exists() else "not a folder",
            where=str(start),
            hint="give a folder inside the workspace (-C/--cwd)",
        )
    for candidate in (start, *start.parents):
        if (candidate / "pnpm-workspace.yaml").exists():
            return candidate
        manifest = candidate / "package.json"
        if manifest.exists() and "workspaces" in read_json(manifest):
            return candidate
    raise UserError(
        "no JS workspace here",
        where=str(start),
        hint="run inside a repository whose package.json has `workspaces` (or with pnpm-workspace.yaml)",
    )


def _workspace_globs(root: Path, manifest: dict[str, Any]) -> list[str]:
    pnpm = root / "pnpm-workspace.yaml"
    if pnpm.exists():
        import yaml  # only pnpm workspaces have it; npm's and yarn's are package.json

        try:
            data = yaml.safe_load(pnpm.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{pnpm}:{mark.line + 1}" if mark is not None else str(pnpm)
            raise UserError(f"not valid YAML: {exc}", where=where) from None
        globs = data.get("packages", []) if isinstance(data, dict) else []
    else:
        raw = manifest.get("workspaces", [])
        globs = raw.get("packages", []) if isinstance(raw, dict) else raw
    if not isinstance(globs, list) or not all(isinstance(g, str) for g in globs):
        raise UserError("workspaces must be a list of folder globs", where=f"{root}/package.json: workspaces")
    return globs


def _detect_manager(root: Path, config: BuildConfig, manifest: dict[str, Any]) -> str:
    if config.workspace.package_manager:
        return config.workspace.package_manager
    for manager, lockfile in LOCKFILES.items():
        if (root / lockfile).exists():
            return manager
    if (root / "pnpm-workspace.yaml").exists():
        return "pnpm"
    declared = str(manifest.get("packageManager", ""))
    for manager in ("pnpm", "yarn", "npm"):
        if declared.startswith(manager + "@"):
            return manager
    return "npm"


def _package_dirs(root: Path, globs: list[str]) -> list[str]:
    positive = [g for g in globs if not g.startswith("!")]
    found: set[str] = set()
    for pattern in positive:
        clean = pattern.removeprefix("./").rstrip("/")
        for manifest in root.glob(f"{clean}/package.json"):
            rel = manifest.parent.relative_to(root).as_posix()
            if "node_modules" not in rel.split("/") and match_any(rel, globs):
                found.add(rel)
    return sorted(found)


def load_workspace(start: Path, config: BuildConfig | None = None) -> Workspace:
    root = find_root(start)
    manifest = read_json(root / "package.json")
    config = config or load_config(root)
    manager = _detect_manager(root, config, manifest)
    lockfile = LOCKFILES[manager] if (root / LOCKFILES[manager]).exists() else None
    raw: dict[str, tuple[str, dict[str, Any]]] = {}
    for rel in _package_dirs(root, _workspace_globs(root, manifest)):
        data = read_json(root / rel / "package.json")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise UserError("a workspace package needs a name", where=f"{root / rel}/package.json: name")
        if name in raw:
            raise UserError(
                f"two packages are named {name!r}",
                where=f"{root / rel}/package.json: name",
                hint=f"the other one is in {raw[name][0]}",
            )
        raw[name] = (rel, data)
    packages: dict[str, Package] = {}
    slugs: dict[str, str] = {}
    for name, (rel, data) in raw.items():
        deps: dict[str, str] = {}
        for section in DEP_SECTIONS:
            value = {} if data.get(section) is None else data[section]  # [] or "" is a mistake
            if not isinstance(value, dict):
                raise UserError(f"{section} must be an object", where=f"{root / rel}/package.json: {section}")
            deps.update({str(k): str(v) for k, v in value.items()})
        scripts = {} if data.get("scripts") is None else data["scripts"]
        if not isinstance(scripts, dict):
            raise UserError("scripts must be an object", where=f"{root / rel}/package.json: scripts")
        for script, command in scripts.items():
            if not isinstance(command, str):
                raise UserError(
                    "a script must be a command line (a string)",
                    where=f"{root / rel}/package.json: scripts.{script}",
                )
        slug = name.rsplit("/", 1)[-1]
        is_app = match_any(rel, config.workspace.apps)
        if is_app:
            if not _SLUG.match(slug):
                raise UserError(
                    f"app name {slug!r} cannot be used in URLs", where=f"{root / rel}/package.json"
                )
            if slug in slugs:
                raise UserError(
                    f"two apps are called {slug!r}",
                    where=f"{root / rel}/package.json: name",
                    hint=f"rename one; the other is {slugs[slug]}",
                )
            slugs[slug] = name
        packages[name] = Package(
            name=name,
            version=str(data.get("version", "0.0.0")),
            dir=rel,
            scripts={str(k): str(v) for k, v in scripts.items()},
            deps=deps,
            internal=tuple(sorted(d for d in deps if d in raw and d != name)),
            is_app=is_app,
            slug=slug,
        )
    _check_app_sections(config, packages)
    return Workspace(root, manager, lockfile, packages, config, manifest)


def _check_app_sections(config: BuildConfig, packages: dict[str, Package]) -> None:
    names = {n for p in packages.values() if p.is_app for n in p.names}
    for section in config.apps:
        if section not in names:
            raise UserError(
                f"[apps.{section}] names no app of the workspace",
                where=f"{config.source}: apps.{section}",
                hint="apps are the packages matched by workspace.apps; known: "
                + ", ".join(sorted(p.slug for p in packages.values() if p.is_app)),
            )
