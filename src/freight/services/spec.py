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
