"""The CLI's view of services: on the server's own store (no FREIGHT_URL), or through the API at
FREIGHT_URL with the caller's token (its queues apply). Both answer with the API's JSON shapes."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any, Protocol, Self

from freight.config import Settings

if TYPE_CHECKING:
    from freight.jobs.remote import RemoteJobClient
    from freight.jobs.service import JobService


class ServiceClient(Protocol):
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
    def deploy(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def all(self) -> list[dict[str, Any]]: ...
    def show(self, name: str) -> dict[str, Any]: ...
    def rollback(self, name: str) -> dict[str, Any]: ...
    def scale(self, name: str, replicas: int) -> dict[str, Any]: ...
    def remove(self, name: str) -> None: ...


def open_services(settings: Settings) -> ServiceClient:
    if settings.url:
        from freight.jobs.remote import RemoteJobClient

        return RemoteServices(RemoteJobClient(settings.url, settings.token))
    from freight.jobs.service import JobService

    return LocalServices(JobService.open(settings), settings)


class LocalServices:
    def __init__(self, jobs: JobService, settings: Settings) -> None:
        from freight.services.store import ServiceStore

        self.jobs, self.settings, self.store = jobs, settings, ServiceStore(jobs.engine)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.jobs.close()

    def deploy(self, body: dict[str, Any]) -> dict[str, Any]:
        from freight.services.deploy import make_spec

        fields = {k: v for k, v in body.items() if k != "name"}
        spec = make_spec(self.settings, image_field="--image", **fields)
        return self.store.deploy(body["name"], spec).to_dict()

    def all(self) -> list[dict[str, Any]]:
        return [row.to_dict() for row in self.store.all()]

    def show(self, name: str) -> dict[str, Any]:
        from freight.services.deploy import describe
        from freight.services.spec import LABEL

        row = self.store.get(name)
        return describe(row, self.jobs.list_jobs(label={LABEL: name}, limit=200))

    def rollback(self, name: str) -> dict[str, Any]:
        return self.store.rollback(name).to_dict()

    def scale(self, name: str, replicas: int) -> dict[str, Any]:
        return self.store.scale(name, replicas).to_dict()

    def remove(self, name: str) -> None:
        self.store.mark_removing(name)


class RemoteServices:
    def __init__(self, client: RemoteJobClient) -> None:
        self.client = client

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def deploy(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.client.request("POST", "/services", json=body))

    def all(self) -> list[dict[str, Any]]:
        return list(self.client.request("GET", "/services"))

    def show(self, name: str) -> dict[str, Any]:
        return dict(self.client.request("GET", f"/services/{_q(name)}"))

    def rollback(self, name: str) -> dict[str, Any]:
        return dict(self.client.request("POST", f"/services/{_q(name)}/rollback"))

    def scale(self, name: str, replicas: int) -> dict[str, Any]:
        return dict(self.client.request("POST", f"/services/{_q(name)}/scale", json={"replicas": replicas}))

    def remove(self, name: str) -> None:
        self.client.request("DELETE", f"/services/{_q(name)}")


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")
