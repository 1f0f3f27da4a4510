"""freight.toml: the build settings of a workspace (tasks, outputs, env inputs, apps, deploy rules).

Every section is optional; a workspace with no freight.toml builds `build` after its dependencies'
`build`, caches `dist/**` and treats the packages under `apps/*` as deployable apps.

::

    [workspace]
    apps = ["apps/*"]              # which packages are deployable apps
    global_inputs = ["tsconfig.base.json"]
    global_env = ["CI"]

    [tasks.build]
    depends_on = ["^build"]        # "^t": task t of internal dependencies; "t": task t of this package
    outputs = ["dist/**"]
    env = ["API_URL"]              # hashed; a change is a cache miss
    pass_env = ["HTTP_PROXY"]      # passed to the job, not hashed
    cpus = 1
    memory = "1G"

    [apps.shop]
    hosts = ["shop.example.com"]
    prefix = "/shop/"
    deploy = { main = "prod" }     # pushes to branch main deploy shop to env prod
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from freight.errors import UserError
from freight.jobs.spec import format_validation_error
from freight.unitfields import Bytes, Cpus, Seconds

CONFIG_FILE = "freight.toml"
_TOML_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\*?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: A deploy environment's name (prod, staging, pr-42): what deploy, rollback, freight.toml and the API take.
DEPLOY_ENV = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ENV_RULE = "up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, like prod"


def deploy_env(env: str) -> str:
    """`env` when it is a deploy environment's name, else ValueError (for pydantic validators)."""
    if not re.match(DEPLOY_ENV, env):
        raise ValueError(f"{env!r} is not an environment name ({_ENV_RULE})")
    return env


def check_deploy_env(env: str, where: str = "env") -> str:
    try:
        return deploy_env(env)
    except ValueError as exc:
        raise UserError(str(exc), where=where) from None


def _check_deploy_map(value: dict[str, str]) -> dict[str, str]:
    for env in value.values():
        deploy_env(env)
    return value


#: Paths the gateway serves itself (health, release previews): no app may live under them.
RESERVED_PREFIX = "/_freight/"
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
MIN_MEMORY = 4 << 20


def _check_memory(value: int) -> int:
    if value < MIN_MEMORY:
        raise ValueError(f"{value} bytes is too little memory for a build; give at least 4M, like 1G")
    return value


def _check_relative(globs: list[str], inside: str, what: str = "glob") -> list[str]:
    for glob in globs:
        if glob.startswith("/") or ".." in glob.split("/"):
            raise ValueError(f"{glob!r} must be a relative {what} inside {inside}")
    return globs


def _check_env_names(names: list[str]) -> list[str]:
    for name in names:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name (a trailing * is a prefix)")
    return names


class TaskConfig(_Strict):
    depends_on: list[str] = Field(default_factory=lambda: ["^build"])
    outputs: list[str] = Field(default_factory=lambda: ["dist/**"])
    #: Globs (relative to the package) that narrow the hashed files; empty means every tracked file.
    inputs: list[str] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list)
    pass_env: list[str] = Field(default_factory=list)
    cpus: Cpus = 1.0
    memory: Bytes = 1024**3
    timeout: Seconds | None = 600.0
    cache: bool = True

    @field_validator("env", "pass_env")
    @classmethod
    def _env(cls, value: list[str]) -> list[str]:
        return _check_env_names(value)

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int) -> int:
        return _check_memory(value)

    @field_validator("outputs", "inputs")
    @classmethod
    def _relative(cls, value: list[str]) -> list[str]:
        return _check_relative(value, "the package")

    def settings_digest_source(self) -> dict[str, Any]:
        """The settings that change what a task produces (resources and timeout do not)."""
        return {
            "depends_on": self.depends_on,
            "outputs": self.outputs,
            "inputs": self.inputs,
            "env": self.env,
            "cache": self.cache,
        }


class AppImage(_Strict):
    """`image = { containerfile = "Containerfile" }`: the app's build output also ships as an OCI image,
    built from this Containerfile (relative to the package) with the published folder as its context."""

    containerfile: str = "Containerfile"

    @field_validator("containerfile")
    @classmethod
    def _relative(cls, value: str) -> str:
        parts = value.replace("\\", "/").split("/")
        if not value or value.startswith("/") or ".." in parts:
            raise ValueError(f"containerfile {value!r} must be a path inside the package, like Containerfile")
        return value


class AppConfig(_Strict):
    hosts: list[str] = Field(default_factory=list)
    #: URL path the gateway serves the app under; default "/<app>/".
    prefix: str | None = None
    #: Folder (relative to the package) published as the release; default: the build outputs' root.
    publish: str | None = None
    spa: bool = True
    #: Globs (relative to the published folder) of files safe to cache for a year, besides the files
    #: whose names carry a content hash (those are recognised on their own).
    immutable: list[str] = Field(default_factory=list)
    #: branch -> environment: a push to the branch deploys the app there.
    deploy: dict[str, str] = Field(default_factory=dict)
    cpus: Cpus | None = None
    memory: Bytes | None = None
    #: Also ship the build output as an image in the registry, tagged by the build hash.
    image: AppImage | None = None

    @field_validator("deploy")
    @classmethod
    def _deploy(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_deploy_map(value)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("/"):
            raise ValueError("prefix must start with '/', like /shop/")
        value = value.rstrip("/") + "/"
        if value.startswith(RESERVED_PREFIX):
            raise ValueError(f"{RESERVED_PREFIX} is the gateway's own; pick another prefix")
        return value

    @field_validator("publish")
    @classmethod
    def _publish(cls, value: str | None) -> str | None:
        if value is not None:
            _check_relative([value], "the package", "folder")
        return value

    @field_validator("immutable")
    @classmethod
    def _immutable(cls, value: list[str]) -> list[str]:
        return _check_relative(value, "the published folder")

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        hosts = [host.lower() for host in value]  # Host headers are matched without case
        for host in hosts:
            if not _HOST.match(host):
                raise ValueError(f"{host!r} is not a host name (like shop.example.com, no port or scheme)")
        return hosts

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int | None) -> int | None:
        return None if value is None else _check_memory(value)


class WorkspaceConfig(_Strict):
    apps: list[str] = Field(default_factory=lambda: ["apps/*"])
    package_manager: Literal["npm", "yarn", "pnpm"] | None = None
    global_inputs: list[str] = Field(default_factory=list)
    global_env: list[str] = Field(default_factory=list)
    #: Install command; default: `npm ci`, `yarn install --frozen-lockfile`, `pnpm install --frozen-lockfile`.
    install: str | None = None
    #: Publish every built app as a release.
    publish: bool = True

    @field_validator("global_env")
    @classmethod
    def _env(cls, value: list[str]) -> list[str]:
        return _check_env_names(value)

    @field_validator("global_inputs")
    @classmethod
    def _relative(cls, value: list[str]) -> list[str]:
        return _check_relative(value, "the workspace")


class DeployConfig(_Strict):
    #: branch -> environment for every app (an app's own `deploy` wins).
    branches: dict[str, str] = Field(default_factory=dict)

    @field_validator("branches")
    @classmethod
    def _branches(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_deploy_map(value)


class BuildConfig(_Strict):
    workspace: WorkspaceConfig = Field(default_factory=WorkspaceConfig)
    tasks: dict[str, TaskConfig] = Field(default_factory=lambda: {"build": TaskConfig()})
    apps: dict[str, AppConfig] = Field(default_factory=dict)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    #: Where it was read from, for error messages.
    source: str = CONFIG_FILE

    def task(self, name: str) -> TaskConfig:
        if name in self.tasks:
            return self.tasks[name]
        if name == "build":
            return TaskConfig()
        raise UserError(
            f"no task {name!r} is configured",
            where=f"{self.source}: tasks",
            hint=f"add a [tasks.{name}] section; configured: {', '.join(sorted(self.tasks)) or 'none'}",
        )

    def app(self, *names: str) -> AppConfig:
        for name in names:
            if name in self.apps:
                return self.apps[name]
        return AppConfig()

    def deploy_env(self, app_names: tuple[str, ...], branch: str) -> str | None:
        app = self.app(*app_names)
        if branch in app.deploy:
            return app.deploy[branch]
        return self.deploy.branches.get(branch)


def parse_config(text: str, source: str = CONFIG_FILE) -> BuildConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        line = (
            match.group(1) if match else str(text.count("\n") + 1) if "end of document" in str(exc) else None
        )
        where = f"{source}:{line}" if line else source
        message = _TOML_LINE.sub("", str(exc)).replace("(at end of document)", "").strip()
        raise UserError(f"not valid TOML: {message}", where=where, hint="see https://toml.io") from None
    data.pop("source", None)
    try:
        config = BuildConfig.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise format_validation_error(exc, source) from None
    for name, task in config.tasks.items():
        for dep in task.depends_on:
            target = dep.removeprefix("^")
            if dep == name:
                raise UserError(
                    f"task {name!r} depends on itself",
                    where=f"{source}: tasks.{name}.depends_on",
                    hint=f'remove {name!r} ("^{name}" waits for the dependencies\' {name} instead)',
                )
            if target not in config.tasks and target != "build":
                raise UserError(
                    f"depends on unknown task {target!r}",
                    where=f"{source}: tasks.{name}.depends_on",
                    hint=f"configure [tasks.{target}] or remove it",
                )
    return config


def load_config(root: Path) -> BuildConfig:
    path = root / CONFIG_FILE
    if not path.exists():
        return BuildConfig(source=str(path))
    return parse_config(path.read_text(encoding="utf-8"), source=str(path))
