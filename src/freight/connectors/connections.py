"""Named connections from freight.toml, with secrets taken from the environment and kept out of text.

::

    [connections.shop]
    kind = "mariadb"                       # mariadb | mysql | postgres | duckdb | redis
    url = "mysql://etl:${SHOP_PASSWORD}@127.0.0.1:3306/shop"

    [connections.warehouse]
    kind = "duckdb"
    path = "warehouse.duckdb"              # relative to the config file's folder

A pipeline names connections; it never holds a URL. `${VAR}` is expanded when the connection is used,
inside the process that uses it, and every expanded value is remembered so `redact` can strip it from
any message before it reaches a log, an error or the run store.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from freight.errors import UserError

KINDS = ("mariadb", "mysql", "postgres", "duckdb", "redis", "redshift")
WAREHOUSE_KINDS = ("duckdb", "postgres", "redshift")
#: Fields a kind takes besides kind/url/path.
EXTRA_FIELDS = {"redshift": ("s3_staging", "iam_role")}
DEFAULT_WAREHOUSE = "warehouse"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?P<at>@)", re.I)


@dataclass(frozen=True)
class Connection:
    name: str
    kind: str
    #: For SQL servers: a URL that may still hold `${VAR}` references (never expanded in here).
    url: str | None = None
    #: For DuckDB: an absolute file path (or ":memory:").
    path: str | None = None
    #: Kind-specific settings (redshift: s3_staging, iam_role), as (name, value) pairs.
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str) -> str:
        for key, value in self.options:
            if key == name:
                return value
        raise UserError(f"connection {self.name!r} needs `{name}`", where=f"connections.{self.name}.{name}")

    def resolved_url(self, env: Mapping[str, str] | None = None) -> str:
        """The URL with `${VAR}` expanded; the secrets it used are registered for redaction."""
        if self.url is None:
            raise UserError(f"connection {self.name!r} has no url", where=f"connections.{self.name}")
        return expand(self.url, env, where=f"connections.{self.name}.url")

    @property
    def is_warehouse(self) -> bool:
        return self.kind in WAREHOUSE_KINDS

    def describe(self) -> str:
        """A description safe to print: the URL with its password masked."""
        if self.kind == "duckdb":
            return f"duckdb:{self.path}"
        return redact(_URL_PASSWORD.sub(r"\g<head>***\g<at>", self.url or ""))


@dataclass
class Connections:
    items: dict[str, Connection] = field(default_factory=dict)
    source: str = "freight.toml"

    def get(self, name: str, *, where: str | None = None) -> Connection:
        try:
            return self.items[name]
        except KeyError:
            known = ", ".join(sorted(self.items)) or "none"
            raise UserError(
                f"unknown connection {name!r}",
                where=where,
                hint=f"define [connections.{name}] in {self.source}; known: {known}",
            ) from None

    def warehouse(self, name: str | None, *, where: str | None = None) -> Connection:
        conn = self.get(name or DEFAULT_WAREHOUSE, where=where)
        if not conn.is_warehouse:
            raise UserError(
                f"connection {conn.name!r} is a {conn.kind} source, not a warehouse",
                where=where,
                hint="warehouses are duckdb, postgres or redshift connections",
            )
        return conn


_SECRETS: set[str] = set()


def expand(text: str, env: Mapping[str, str] | None = None, *, where: str | None = None) -> str:
    env = os.environ if env is None else env

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise UserError(f"environment variable {name} is not set", where=where, hint=f"export {name}=...")
        value = env[name]
        if value:
            _SECRETS.add(value)
        return value

    return _VAR.sub(sub, text)


def redact(text: str) -> str:
    """Remove every secret this process has expanded, and any password written inside a URL."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _URL_PASSWORD.sub(r"\g<head>***\g<at>", text)


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("FREIGHT_CONFIG", "freight.toml")).expanduser().resolve()


def load_connections(path: Path | None, *, home: Path) -> Connections:
    """Read `[connections.*]` from freight.toml. Without a file (or without a `warehouse` entry), a
    DuckDB file under FREIGHT_HOME is the `warehouse` connection, so a fresh install just works."""
    items: dict[str, Connection] = {}
    source = str(path) if path else "freight.toml"
    if path is not None and path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"not valid TOML: {exc}", where=source) from None
        except UnicodeDecodeError:
            raise UserError("not UTF-8 text", where=source, hint="give a TOML file") from None
        except OSError as exc:
            raise UserError(f"cannot read it: {exc.strerror}", where=source) from None
        table = data.get("connections", {})
        if not isinstance(table, dict):
            raise UserError("[connections] must be a table", where=source)
        for name, raw in table.items():
            items[name] = _parse(name, raw, base=path.parent, source=source)
    if DEFAULT_WAREHOUSE not in items:
        items[DEFAULT_WAREHOUSE] = Connection(
            DEFAULT_WAREHOUSE, "duckdb", path=str((home / "warehouse.duckdb").resolve())
        )
    return Connections(items, source=source)


def _parse(name: str, raw: object, *, base: Path, source: str) -> Connection:
    where = f"{source}: connections.{name}"
    if not isinstance(raw, dict):
        raise UserError("a connection must be a table with `kind` and `url` (or `path`)", where=where)
    kind = raw.get("kind")
    extra = EXTRA_FIELDS.get(kind, ()) if isinstance(kind, str) else ()
    unknown = set(raw) - {"kind", "url", "path", *extra}
    if unknown:
        allowed = ", ".join(["kind", "url", "path", *extra])
        raise UserError(f"unknown field {sorted(unknown)[0]!r}", where=where, hint=f"use {allowed}")
    if kind not in KINDS:
        raise UserError(
            f"unknown kind {kind!r}", where=f"{where}.kind", hint=f"use one of {', '.join(KINDS)}"
        )
    if kind == "duckdb":
        path = raw.get("path")
        if not isinstance(path, str) or not path:
            # without it the warehouse was ':memory:': every step's load vanished when the step ended
            raise UserError(
                "a duckdb connection needs `path`, the database file",
                where=f"{where}.path",
                hint="relative paths start at this file's folder; ':memory:' lasts one step",
            )
        if path != ":memory:":
            path = str((base / path).resolve())
        return Connection(name, kind, path=path)
    url = raw.get("url")
    if not isinstance(url, str) or "://" not in url:
        raise UserError(
            "`url` must be a URL like mysql://user:${PASSWORD}@host:3306/db", where=f"{where}.url"
        )
    if _URL_PASSWORD.search(url) and not _VAR.search(url.split("@", 1)[0]):
        raise UserError(
            "a password written in the config file",
            where=f"{where}.url",
            hint="put it in an environment variable and write ${VAR} instead",
        )
    options = []
    for key in extra:
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            raise UserError(f"a {kind} connection needs `{key}`", where=f"{where}.{key}")
        options.append((key, value))
    return Connection(name, kind, url=url, options=tuple(options))
