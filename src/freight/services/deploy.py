"""What a deploy asks for, turned into a ServiceSpec the same way for the CLI and the API: the image
pinned to a digest (every replica runs the same bytes), the image's own command when none is given,
the per-replica resources over the service defaults. And a service's description with its replicas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from freight.config import Settings
from freight.jobs.client import JobView
from freight.jobs.spec import format_validation_error
from freight.services.spec import ServiceSpec
from freight.services.store import ServiceRow


def make_spec(
    settings: Settings,
    *,
    image: str,
    port: int,
    command: list[str] | None = None,
    replicas: int = 1,
    health: str = "/healthz",
    health_timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    memory: str | int | None = None,
    cpus: str | float | None = None,
    queue: str = "default",
    hosts: list[str] | None = None,
    prefix: str | None = None,
    image_field: str = "image",
) -> ServiceSpec:
    """A validated spec; UserError (one line naming the field) for a bad value or a missing image."""
    from freight.runtime import images

    pinned = images.pin(image, settings, where=image_field)
    defaults = ServiceSpec.model_fields["resources"].get_default(call_default_factory=True)
    resources = {
        **defaults.model_dump(),
        **{k: v for k, v in (("memory", memory), ("cpus", cpus)) if v is not None},
    }
    try:
        return ServiceSpec(
            image=pinned,
            command=command or images.default_command(pinned, settings),
            replicas=replicas,
            port=port,
            health=health,
            health_timeout=health_timeout,
            env=dict(env or {}),
            resources=resources,
            queue=queue,
            hosts=list(hosts or []),
            prefix=prefix,
        )
    except ValidationError as exc:
        raise format_validation_error(exc, "service") from None


def queues(row: ServiceRow) -> frozenset[str]:
    """The queues a service's replicas may run in: its spec's, and its previous revision's (a queue
    change applies to replicas started from then on). A job labelled with the service elsewhere is
    not one of its replicas."""
    return frozenset({row.spec.queue} | ({row.previous.queue} if row.previous else set()))


def describe(row: ServiceRow, jobs: list[JobView]) -> dict[str, Any]:
    """The service's row and its replicas that have not ended (`jobs`: those labelled with it)."""
    data = row.to_dict()
    mine = queues(row)
    data["replicas"] = [
        {
            "job": view.id,
            "state": view.state.value,
            "port": view.spec.labels.get("freight.port"),
            "current": view.spec.labels.get("freight.key") == row.spec.replica_key(),
        }
        for view in jobs
        if not view.terminal and view.spec.queue in mine
    ]
    return data
