"""Resolved lockfile entries per workspace package (npm v2/v3, yarn v1 and berry, pnpm v6/v9).

A task's hash covers the external packages its package resolves to (transitively), not the whole
lockfile, so adding a dependency to one app does not rebuild the other 49. Each entry is written as
`name@version integrity`; the install layout (hoisting) is left out on purpose: it moves when unrelated
packages change and does not change what a package gets.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from freight.errors import UserError

#: (name, range-or-version) -> (entry, key) or None when the lockfile does not know it.
Resolver = Callable[[str, str, str], "tuple[str, str] | None"]


class Lockfile:
    """Entries reachable from a package's declared dependencies."""

    def __init__(self, kind: str, text: str, resolve: Resolver, deps_of: Callable[[str], dict[str, str]]):
        self.kind = kind
        self.digest = hashlib.sha256(text.encode()).hexdigest()
        self._resolve = resolve
        self._deps_of = deps_of

    def entries(self, pkg_dir: str, deps: Mapping[str, str], internal: Iterable[str] = ()) -> list[str]:
        """Sorted `name@version integrity` strings of everything `deps` pulls in."""
        skip = set(internal)
        found: dict[str, str] = {}
        stack = [(name, spec, pkg_dir) for name, spec in deps.items() if name not in skip]
        while stack:
            name, spec, where = stack.pop()
            hit = self._resolve(name, spec, where)
            if hit is None:
                continue
            entry, key = hit
            if key in found:
                continue
            found[key] = entry
            stack.extend((n, s, key) for n, s in self._deps_of(key).items())
        return sorted(set(found.values()))


def _yaml_errors() -> tuple[type[Exception], ...]:
    """yaml's error class once a YAML lockfile was read (yaml loads only for those)."""
    yaml = sys.modules.get("yaml")
    return (yaml.YAMLError,) if yaml is not None else ()


def load_lockfile(root: Path, name: str | None) -> Lockfile | None:
    if name is None:
        return None
    path = root / name
    text = path.read_text(encoding="utf-8")
    try:
        if name == "package-lock.json":
            return _npm(text)
        if name == "yarn.lock":
            return _yarn_berry(text) if "__metadata:" in text else _yarn_v1(text)
        if name == "pnpm-lock.yaml":
            return _pnpm(text)
    except Exception as exc:
        if not isinstance(exc, (ValueError, KeyError, TypeError, AttributeError, *_yaml_errors())):
            raise
        raise UserError(
            f"cannot read the lockfile: {exc}",
            where=str(path),
            hint="regenerate it with your package manager",
        ) from None
    raise UserError(f"unknown lockfile {name}", where=str(path))


# npm ----------------------------------------------------------------------------------------------

_NM = "node_modules/"


def _npm_parent(base: str) -> str | None:
    """The folder npm searches next from `base` (Node's resolution walks up the tree)."""
    if not base:
        return None
    index = base.rfind("/" + _NM)
    if index >= 0:
        return base[:index]
    if base.startswith(_NM):
        return ""
    return base.rsplit("/", 1)[0] if "/" in base else ""


def _npm(text: str) -> Lockfile:
    data = json.loads(text)
    packages: dict[str, dict[str, Any]] = data.get("packages") or {}
    if not packages:
        raise ValueError("lockfileVersion 1 is not supported; run `npm install` with npm 7 or later")

    def resolve(name: str, _spec: str, where: str) -> tuple[str, str] | None:
        base: str | None = where
        while base is not None:
            key = f"{base}/{_NM}{name}" if base else f"{_NM}{name}"
            entry = packages.get(key)
            if entry is not None:
                if entry.get("link"):
                    return None
                integrity = entry.get("integrity") or entry.get("resolved") or ""
                return f"{name}@{entry.get('version', '')} {integrity}".strip(), key
            base = _npm_parent(base)
        return None

    def deps_of(key: str) -> dict[str, str]:
        entry = packages.get(key, {})
        result: dict[str, str] = {}
        for section in ("dependencies", "optionalDependencies", "peerDependencies"):
            result.update(entry.get(section) or {})
        return result

    return Lockfile("npm", text, resolve, deps_of)


# yarn v1 ------------------------------------------------------------------------------------------

_YARN_FIELD = re.compile(r'^\s+(\S+)\s+"?([^"]*)"?$')


def _yarn_v1(text: str) -> Lockfile:
    entries: dict[str, dict[str, Any]] = {}
    keys: dict[str, str] = {}
    current: dict[str, Any] | None = None
    section: str | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            current = {"deps": {}}
            section = None
            names = [k.strip().strip('"') for k in line.rstrip(":").split(",")]
            entries[names[0]] = current
            for spec in names:
                keys[spec] = names[0]
        elif current is not None and line.startswith("    ") and section:
            match = _YARN_FIELD.match(line)
            if match:
                current["deps"][match.group(1).strip('"')] = match.group(2)
        elif current is not None:
            stripped = line.strip()
            if stripped.endswith(":"):
                section = stripped[:-1] if "ependencies" in stripped else None
                continue
            section = None
            match = _YARN_FIELD.match(line)
            if match:
                current[match.group(1)] = match.group(2)

    def resolve(name: str, spec: str, _where: str) -> tuple[str, str] | None:
        key = keys.get(f"{name}@{spec}")
        if key is None:
            return None
        entry = entries[key]
        integrity = entry.get("integrity") or entry.get("resolved", "")
        return f"{name}@{entry.get('version', '')} {integrity}".strip(), key

    return Lockfile("yarn", text, resolve, lambda key: dict(entries.get(key, {}).get("deps", {})))


# yarn berry ---------------------------------------------------------------------------------------


def _yarn_berry(text: str) -> Lockfile:
    import yaml  # only yarn berry's and pnpm's lockfiles are YAML

    data: dict[str, Any] = yaml.safe_load(text) or {}
    keys: dict[str, str] = {}
    for key in data:
        if key == "__metadata":
            continue
        for spec in str(key).split(","):
            keys[spec.strip()] = str(key)

    def resolve(name: str, spec: str, _where: str) -> tuple[str, str] | None:
        key = keys.get(f"{name}@{spec}") or keys.get(f"{name}@npm:{spec}")
        if key is None or str(data[key].get("resolution", "")).find("@workspace:") > 0:
            return None
        entry = data[key]
        return f"{name}@{entry.get('version', '')} {entry.get('checksum', '')}".strip(), key

    def deps_of(key: str) -> dict[str, str]:
        entry = data.get(key) or {}
        result: dict[str, str] = {}
        for section in ("dependencies", "optionalDependencies", "peerDependencies"):
            result.update({str(k): str(v) for k, v in (entry.get(section) or {}).items()})
        return result

    return Lockfile("yarn", text, resolve, deps_of)


# pnpm ---------------------------------------------------------------------------------------------


def _pnpm(text: str) -> Lockfile:
    import yaml  # only yarn berry's and pnpm's lockfiles are YAML

    data: dict[str, Any] = yaml.safe_load(text) or {}
    version = str(data.get("lockfileVersion", ""))
    modern = not version.startswith(("5", "6"))
    packages: dict[str, Any] = data.get("packages") or {}
    snapshots: dict[str, Any] = data.get("snapshots") or {}
    importers: dict[str, Any] = data.get("importers") or {".": data}

    def key_for(name: str, version: str) -> str:
        return f"{name}@{version}" if modern else f"/{name}@{version}"

    def resolve(name: str, spec: str, where: str) -> tuple[str, str] | None:
        if where.startswith("importer:"):
            importer = importers.get(where.removeprefix("importer:") or ".") or {}
            version = None
            for section in ("dependencies", "devDependencies", "optionalDependencies"):
                value = (importer.get(section) or {}).get(name)
                if value is not None:
                    version = value.get("version") if isinstance(value, dict) else value
                    break
        else:
            version = spec
        if version is None or str(version).startswith(("link:", "workspace:", "file:")):
            return None
        key = key_for(name, str(version))
        base = key.split("(", 1)[0]
        entry = packages.get(base) or packages.get(key) or {}
        integrity = (entry.get("resolution") or {}).get("integrity", "")
        return f"{name}@{str(version).split('(', 1)[0]} {integrity}".strip(), key

    def deps_of(key: str) -> dict[str, str]:
        entry = (snapshots.get(key) if modern else packages.get(key)) or {}
        result: dict[str, str] = {}
        for section in ("dependencies", "optionalDependencies"):
            result.update({str(k): str(v) for k, v in (entry.get(section) or {}).items()})
        return result

    lock = Lockfile("pnpm", text, resolve, deps_of)
    original = lock.entries

    def entries(pkg_dir: str, deps: Mapping[str, str], internal: Iterable[str] = ()) -> list[str]:
        # pnpm records what each importer resolved to; look it up by importer instead of walking folders.
        return original(f"importer:{pkg_dir}", deps, internal)

    lock.entries = entries  # type: ignore[method-assign]
    return lock
