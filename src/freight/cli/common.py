"""Shared CLI plumbing: opening the client, spec building from flags, reading spec files.

Light at import, like every module of freight.cli: the store, pydantic and YAML are imported by the
functions that use them (see freight/cli/__init__.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from freight.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from contextlib import AbstractContextManager
    from typing import Protocol, Self

    from freight.jobs.client import JobClient
    from freight.jobs.spec import JobSpec

    class Service(JobClient, Protocol):
        """What the CLI needs from the platform: the embedded JobService, or RemoteJobClient when
        FREIGHT_URL points at a server. Both give the same answers, so the output is the same. The job
        calls are JobClient's; these are the rest."""

        def __enter__(self) -> Self: ...
        def __exit__(self, *exc: object) -> None: ...
        def events(self, job_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]: ...
        def scheduler_holder(self) -> str | None: ...
        def running(self) -> AbstractContextManager[object]: ...
        def register_definition(
            self, name: str, template: dict[str, Any], description: str | None = None
        ) -> int: ...
        def definitions(self) -> list[dict[str, Any]]: ...
        def delete_definition(self, name: str, version: int | None = None) -> int: ...
        def set_queue(
            self,
            name: str,
            *,
            weight: float | None = None,
            priority: int | None = None,
            paused: bool | None = None,
            policy: Mapping[str, Any] | None = None,
        ) -> dict[str, Any]: ...
        def queues(self) -> list[dict[str, Any]]: ...
        def purge(self, *, older_than: float, dry_run: bool = False) -> list[str]: ...


def open_service() -> Service:
    """The local store, or the server at FREIGHT_URL (with FREIGHT_TOKEN) when it is set."""
    from freight.config import load_settings

    settings = load_settings()
    if settings.url:
        from freight.jobs.remote import RemoteJobClient

        return RemoteJobClient(settings.url, settings.token)
    from freight.jobs.service import JobService

    return JobService.open(settings)


def parse_pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"expected KEY=VALUE, got {item!r}", where=flag)
        out[key] = value
    return out


def spec_from_flags(
    command: list[str],
    *,
    name: str | None,
    cpus: str | None,
    memory: str | None,
    timeout: str | None,
    retries: int | None,
    retry_on: list[str] | None,
    queue: str | None,
    priority: int | None,
    env: list[str] | None,
    label: list[str] | None,
    shell: bool,
    cwd: str | None,
    after: list[str] | None = None,
    idempotency_key: str | None = None,
    base: dict[str, Any] | None = None,
    image: str | None = None,
    network: str | None = None,
    mount: list[str] | None = None,
) -> dict[str, Any]:
    """The spec a set of flags describes, as a dict (so a definition can supply what flags omit)."""
    spec: dict[str, Any] = dict(base or {})
    if command:
        spec.pop("command", None)
        spec.pop("shell", None)
        if shell:
            spec["shell"] = " ".join(command)
        else:
            spec["command"] = command
    resources = dict(spec.get("resources", {}))
    if cpus is not None:
        resources["cpus"] = cpus
    if memory is not None:
        resources["memory"] = memory
    if resources:
        spec["resources"] = resources
    retry = dict(spec.get("retry", {}))
    if retries is not None and retries < 0:
        raise UserError(f"{retries} is not a number of retries", where="--retries", hint="give 0 or more")
    if retries is not None:
        retry["max_attempts"] = retries + 1
        retry.setdefault("retry_on", ["failed", "oom", "timeout", "lost"])
    if retry_on:
        retry["retry_on"] = [int(r) if r.isdigit() else r for r in retry_on]
    if retry:
        spec["retry"] = retry
    for key, value in (
        ("name", name),
        ("timeout", timeout),
        ("queue", queue),
        ("priority", priority),
        ("idempotency_key", idempotency_key),
        ("cwd", cwd),
        ("image", image),
        ("network", network),
    ):
        if value is not None:
            spec[key] = value
    if env:
        spec["env"] = {**spec.get("env", {}), **parse_pairs(env, "--env")}
    if label:
        spec["labels"] = {**spec.get("labels", {}), **parse_pairs(label, "--label")}
    if after:
        deps = []
        for item in after:
            job, _, cond = item.partition(":")
            deps.append({"job": job, "condition": cond or "after_ok"})
        spec["depends_on"] = deps
    if mount:
        spec["mounts"] = [*spec.get("mounts", []), *(parse_mount(item) for item in mount)]
    return spec


def parse_mount(text: str) -> dict[str, Any]:
    """--mount SOURCE:TARGET[:ro|rw] (read-only unless :rw)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise UserError(f"{text!r} is not a mount", where="--mount", hint="write SOURCE:TARGET[:ro|rw]")
    return {"source": parts[0], "target": parts[1], "read_only": len(parts) == 2 or parts[2] == "ro"}


def read_spec_file(path: Path) -> dict[str, Any]:
    """A job spec from YAML or JSON; errors name file:line and the field."""
    from freight.yamlfile import load_yaml

    located = load_yaml(path)
    if not isinstance(located.data, dict):
        raise UserError("a job spec file must hold a mapping of fields", where=f"{path}:1")
    return dict(located.data)


def validate_located(path: Path, data: dict[str, Any]) -> JobSpec:
    from pydantic import ValidationError

    from freight.jobs.spec import JobSpec, first_error, format_validation_error
    from freight.yamlfile import load_yaml

    located = load_yaml(path)
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        error = format_validation_error(exc, str(path))
        loc = tuple(first_error(exc)["loc"])
        error.where = located.where(loc)
        raise error from None


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)


def remote_client() -> Any:
    """The server at FREIGHT_URL (RemoteJobClient, with FREIGHT_TOKEN), or None when it is not set."""
    from freight.config import load_settings

    settings = load_settings()
    if not settings.url:
        return None
    from freight.jobs.remote import RemoteJobClient

    return RemoteJobClient(settings.url, settings.token)
