"""ServiceSpec: what `freight service deploy` asks for."""

from __future__ import annotations

import hashlib
import json
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from freight.jobs.spec import Resources

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
#: the label every replica job carries, with its service's name
LABEL = "freight.service"
HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$")
#: the gateway's own paths (its health check, release previews)
RESERVED_PREFIX = "/_freight/"
QUEUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class ServiceSpec(BaseModel):
    """N replicas of `image` running `command`; each listens on its own port, given as $PORT, and
    answers `health` with a 2xx when ready. The service's `port` (127.0.0.1) routes to healthy ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str
    command: list[str] = Field(min_length=1)
    replicas: int = Field(default=1, ge=0, le=50)
    port: int = Field(ge=1, le=65535)
    health: str = "/healthz"
    #: seconds a new replica has to become healthy before a rolling update is rolled back
    health_timeout: float = Field(default=30.0, gt=0)
    env: dict[str, str] = Field(default_factory=dict)
    #: per replica; small by default, since a rolling update runs one replica more than `replicas`
    resources: Resources = Field(default_factory=lambda: Resources(cpus=0.25, memory=128 * 1024**2))
    #: the replicas' queue: its limits and policy apply, and a token must be allowed it to see the service
    queue: str = "default"
    #: the gateway (`freight up --gateway-port`) sends requests for these host names to the service ...
    hosts: list[str] = Field(default_factory=list)
    #: ... and requests under this path prefix (stripped before they reach a replica)
    prefix: str | None = None

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not HOST.match(host):
                raise ValueError(f"host {host!r} must be a host name without a port, like web.example.com")
        return [host.lower() for host in value]

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("/") or value == "/":
            raise ValueError(f"prefix {value!r} must be a path under /, like /api/")
        value = value.rstrip("/") + "/"
        if value.startswith(RESERVED_PREFIX):
            raise ValueError(f"{RESERVED_PREFIX} is the gateway's own; pick another prefix")
        return value

    @field_validator("health")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"health check path {value!r} must start with /")
        return value

    @field_validator("queue")
    @classmethod
    def _queue(cls, value: str) -> str:
        if not QUEUE.match(value):
            raise ValueError(f"queue name {value!r} must be letters, digits, '.', '_' or '-'")
        return value

    def replica_key(self) -> str:
        """What makes two replicas interchangeable: same image, command, env and resources (not the
        queue: moving a service to another queue applies to the replicas started from then on)."""
        data = self.model_dump(include={"image", "command", "env", "resources"}, mode="json")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
