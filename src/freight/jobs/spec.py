"""JobSpec: what to run, with which limits, and how to treat failure.

Validated with pydantic; human units are accepted ("512M", "1.5", "10m") and stored as plain numbers
(cpus as float, memory as bytes, durations as seconds).
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from freight.errors import UserError, suggest
from freight.runtime.base import Container, Mount
from freight.text import find_bad_text
from freight.unitfields import Bytes, Cpus, Seconds

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
#: an environment variable's name, as a secret's target
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: a named secret (freight secrets set NAME)
SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
#: the least memory a job may ask for: below it, no program starts
MIN_MEMORY = 1024**2


RetryReason = Literal["oom", "timeout", "lost", "failed"]


#: the longest label name and value (job_labels indexes them; see db/schema.py)
MAX_LABEL_KEY = 128
MAX_LABEL_VALUE = 500
#: labels under this prefix are the platform's own (a service's replicas carry them): jobs/policy.py
RESERVED_LABEL = "freight."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Strict):
    """Hard limits for one attempt. memory is a hard cap with no swap; cpus is a CFS quota."""

    cpus: Cpus = 1.0
    memory: Bytes = 512 * 1024**2
    pids: int = Field(default=1024, ge=8, le=1_000_000)

    @field_validator("cpus")
    @classmethod
    def _some_cpu(cls, value: float) -> float:
        # 0 once meant "no limit": a job that reserves nothing while it uses the whole node
        if value <= 0:
            raise ValueError("cpus must be more than 0 (there is no unlimited); write e.g. 0.5 or 2")
        return value

    @field_validator("memory")
    @classmethod
    def _some_memory(cls, value: int) -> int:
        if value < MIN_MEMORY:
            raise ValueError("memory must be at least 1M (there is no unlimited); write e.g. 512M or 2G")
        return value


def _default_retry_on() -> list[RetryReason | int]:
    return ["lost"]


class RetryPolicy(_Strict):
    """How many attempts, and which outcomes earn another one.

    `retry_on` lists outcome kinds (`oom`, `timeout`, `lost`, `failed` for any non-zero exit) and/or
    specific exit codes. The default retries a lost attempt only: a machine crash is not the job's fault.
    """

    max_attempts: int = Field(default=1, ge=1, le=100)
    backoff: Seconds = 1.0
    backoff_max: Seconds = 300.0
    jitter: float = Field(default=0.1, ge=0.0, le=1.0)
    retry_on: list[RetryReason | int] = Field(default_factory=_default_retry_on)

    @field_validator("retry_on", mode="before")
    @classmethod
    def _known_outcomes(cls, value: Any) -> Any:
        # one plain sentence, instead of one error per member of the union
        for item in value if isinstance(value, list) else []:
            if isinstance(item, str) and item not in get_args(RetryReason) and not item.isdigit():
                raise ValueError(f"{item!r} is not an outcome; use oom, timeout, lost, failed or exit codes")
        return value

    def delay(self, attempt: int, random01: float) -> float:
        """Seconds to wait before attempt number `attempt + 1` (attempt counts from 1)."""
        base = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
        return float(max(0.0, base * (1 + self.jitter * (2 * random01 - 1))))


class Dependency(_Strict):
    job: str
    #: after_ok: start only when `job` succeeded (its failure cancels this job);
    #: after_any: start when `job` reached any terminal state.
    condition: Literal["after_ok", "after_any"] = "after_ok"


class MountSpec(_Strict):
    """A host path shown inside a job's container (image jobs only)."""

    source: str
    target: str
    read_only: bool = True

    @field_validator("source", "target")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or any(c in value for c in ":,\x00\n"):
            raise ValueError(f"{value!r} must be an absolute path without ':' or ','")
        return value


class JobSpec(_Strict):
    """Everything needed to run a job. Either `command` (argv) or `shell` (a /bin/sh script)."""

    name: str | None = Field(default=None, max_length=200)
    command: list[str] | None = None
    shell: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    #: False (the default): the job sees PATH, HOME, LANG and TZ, its own `env`, its `secrets` and the
    #: FREIGHT_JOB_* ids, nothing of the server's environment. True starts from the scheduler's
    #: environment (like a local executor); only queues an admin allowed to (`--allow-inherit-env`).
    inherit_env: bool = False
    #: "job" (the default): the unprivileged job user (freight-job); "root": the server's own user,
    #: only on queues an admin allowed to (`freight queues set Q --allow-root`).
    user: Literal["job", "root"] = "job"
    #: ENV_NAME -> name of a stored secret (`freight secrets set NAME`), given to the job as env
    secrets: dict[str, str] = Field(default_factory=dict)
    #: Variables of the scheduler's environment to pass by name (a trailing * passes a prefix): the
    #: values are never stored with the job. Platform jobs (a pipeline step gets what its connections
    #: name), or queues that allow inherit_env.
    pass_env: list[str] = Field(default_factory=list, max_length=200)
    cwd: str | None = None
    resources: Resources = Field(default_factory=Resources)
    timeout: Seconds | None = None
    #: Seconds between SIGTERM and SIGKILL when a timeout or a cancel stops the attempt.
    grace: Seconds = 10.0
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    queue: str = "default"
    priority: int = Field(default=0, ge=-1000, le=1000)
    labels: dict[str, str] = Field(default_factory=dict)
    #: node label -> the value the job's node must have (`node.zone: eu`; `node.name` names one node)
    constraints: dict[str, str] = Field(default_factory=dict)
    #: binpack (fill the fullest node that fits) or spread (the emptiest); unset: the queue's
    #: (FREIGHT_SPREAD_QUEUES lists the queues that spread), else binpack
    placement: Literal["binpack", "spread"] | None = None
    depends_on: list[Dependency] = Field(default_factory=list)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    #: an OCI image to run the command in (podman + runc, same limits); pinned to a digest on submit
    image: str | None = None
    #: the container's network (image jobs): none (default), host or bridge
    network: Literal["none", "host", "bridge"] = "none"
    #: host paths the container sees (image jobs); nothing else of the host is visible
    mounts: list[MountSpec] = Field(default_factory=list)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        # The launcher hands env to execve as NAME=value strings: a name that is empty or holds '='
        # cannot be passed on (nor read back), so it is refused here, not when the job starts.
        if _stored(info):
            return value
        for key in value:
            if not key:
                raise ValueError("an environment variable name cannot be empty")
            if "=" in key:
                raise ValueError(f"environment variable name {key!r} cannot hold '='; put the value after it")
        return value

    @field_validator("labels")
    @classmethod
    def _label_sizes(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        # labels are indexed one row each (job_labels), and an index entry has a size limit
        if _stored(info):
            return value
        for key, text in value.items():
            if not 1 <= len(key) <= MAX_LABEL_KEY:
                raise ValueError(f"a label name must be 1 to {MAX_LABEL_KEY} characters: {key[:40]!r}")
            if len(text) > MAX_LABEL_VALUE:
                raise ValueError(f"label {key!r}: a value may hold at most {MAX_LABEL_VALUE} characters")
        return value

    @field_validator("queue")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"queue name {value!r} must be letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="before")
    @classmethod
    def _utf8_only(cls, data: Any, info: ValidationInfo) -> Any:
        # a lone surrogate or an undecodable argv byte cannot be stored (see freight.text); a spec read
        # back from the store was checked when it was written
        if info.context and info.context.get("stored"):
            return data
        found = find_bad_text(data)
        if found is not None:
            raise ValueError(f"{found[0]}: {found[1]}")
        return data

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: dict[str, str]) -> dict[str, str]:
        for env_name, secret in value.items():
            if not _ENV_NAME.match(env_name):
                raise ValueError(f"{env_name!r} is not an environment variable name")
            if not SECRET_NAME.match(secret):
                raise ValueError(f"{secret!r} is not a secret name (letters, digits, '.', '_' or '-')")
        return value

    @field_validator("pass_env")
    @classmethod
    def _pass_env_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _ENV_NAME.match(name.removesuffix("*")):
                raise ValueError(f"{name!r} is not an environment variable name (a trailing * is a prefix)")
        return value

    @model_validator(mode="after")
    def _one_command(self) -> JobSpec:
        if (self.command is None) == (self.shell is None):
            raise ValueError("give exactly one of `command` (a list of arguments) or `shell` (a script)")
        if self.command is not None and (not self.command or not self.command[0]):
            raise ValueError("`command` must name a program to run")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("`timeout` must be more than 0")
        if self.image is None and (self.mounts or self.network != "none"):
            raise ValueError("`mounts` and `network` apply to jobs with an `image` only")
        if self.image is not None and not self.image.strip():
            raise ValueError("`image` must name an image")
        return self

    @model_validator(mode="after")
    def _encodable(self, info: ValidationInfo) -> JobSpec:
        # Every string the launcher passes to the kernel is NUL-terminated there.
        if _stored(info):
            return self
        texts = [*(self.command or []), self.shell or "", self.cwd or "", *self.env, *self.env.values()]
        texts.append(self.image or "")
        if any("\x00" in text for text in texts):
            raise ValueError("command, shell, cwd, env and image cannot hold NUL characters")
        return self

    def container(self) -> Container | None:
        """The container an image job runs in (the runtime's view of `image`, `network`, `mounts`)."""
        if self.image is None:
            return None
        mounts = tuple(Mount(m.source, m.target, m.read_only) for m in self.mounts)
        return Container(image=self.image, network=self.network, mounts=mounts)

    def argv(self) -> list[str]:
        if self.command is not None:
            return list(self.command)
        assert self.shell is not None
        return ["/bin/sh", "-c", self.shell]


#: validation context for a spec read back from the store: it was checked when it was submitted,
#: and a row that no longer passes (written by hand, or by an older version) must still load, so that
#: the scheduler fails that one job with a reason instead of failing to read the others.
STORED: dict[str, bool] = {"stored": True}


def _stored(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get("stored"))


def format_validation_error(exc: ValidationError, source: str = "spec") -> UserError:
    """Turn pydantic's report into one clear line naming the field path."""
    first = first_error(exc)
    # a key may hold anything (a newline, a control character): keep the error on one line
    loc = ".".join(str(p) if str(p).isprintable() else repr(p) for p in first["loc"]) or "(root)"
    msg = first["msg"].removeprefix("Value error, ")
    if not first["loc"] and ": not UTF-8 text" in msg:  # _utf8_only names the field in its message
        loc, msg = msg.split(": ", 1)
    if first["type"] == "extra_forbidden":
        field = str(first["loc"][-1])
        hint = suggest(field, _fields_at(tuple(first["loc"][:-1])), "check its spelling")
        shown = field if field.isprintable() else repr(field)
        msg = f"unknown field `{shown}` ({hint})"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return UserError(f"{msg}{suffix}", where=f"{source}: {loc}")


def first_error(exc: ValidationError) -> Any:
    """The error to tell first: a misspelt field beats the rest, which it often explains (`comand:`
    leaves no command; `jobb:` leaves `job` missing)."""
    errors = exc.errors()
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names a JobSpec allows at `loc` (('resources',) -> cpus, memory, ...), for the
    "did you mean" of a misspelt one."""
    model: type[BaseModel] = JobSpec
    for part in loc:
        if isinstance(part, int):  # an item of a list (depends_on)
            continue
        field = model.model_fields.get(part)
        inner = _model_in(field.annotation) if field is not None else None
        if inner is None:
            return []
        model = inner
    return [info.alias or name for name, info in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds: the model itself, or inside `list[...]`, `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def parse_spec(data: Any, source: str = "spec") -> JobSpec:
    """Validate a mapping into a JobSpec, raising one UserError that names the field."""
    if not isinstance(data, dict):
        raise UserError("a job spec must be a mapping of fields", where=source)
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(exc, source) from None


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overlay submission overrides on a definition's template; nested mappings merge key by key."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged
