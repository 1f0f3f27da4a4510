"""Gateway claims (services/claims.py) on SQLite and PostgreSQL: a host or prefix another service or a
builds app holds is refused (ConflictError, nothing stored), a builds app's host is not reached by a
service's prefix, and a rollback re-claims its routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from freight.builds.store import BuildStore, Route
from freight.config import Settings
from freight.errors import ConflictError
from freight.jobs.service import JobService
from freight.services.gateway import ServiceGateway
from freight.services.spec import ServiceSpec
from freight.services.store import ServiceStore


def spec(**route: Any) -> ServiceSpec:
    return ServiceSpec(image="x", command=["x"], port=18000, **route)


@pytest.fixture
def stores(store_settings: Settings) -> Iterator[tuple[ServiceStore, BuildStore]]:
    svc = JobService.open(store_settings)
    try:
        builds = BuildStore(svc.engine)
        builds.set_route(Route("shop", ("Shop.Example.com",), "/shop/", True))
        builds.set_route(Route("home", (), "/", True))  # the catch-all app
        yield ServiceStore(svc.engine), builds
    finally:
        svc.close()


def refused(store: ServiceStore, name: str, given: ServiceSpec, says: str) -> None:
    before = [row.to_dict() for row in store.all()]
    with pytest.raises(ConflictError) as caught:
        store.deploy(name, given)
    assert says in str(caught.value) and "\n" not in str(caught.value)
    assert [row.to_dict() for row in store.all()] == before


def test_a_host_or_prefix_has_one_owner(stores: tuple[ServiceStore, BuildStore]) -> None:
    store, _ = stores
    store.deploy("web", spec(hosts=["web.example.com"], prefix="/web/"))
    refused(store, "thief", spec(hosts=["other.example.com", "WEB.example.com"]), "web.example.com")
    refused(store, "thief", spec(prefix="/web"), "prefix /web/ is already routed to service web")
    # a builds app's host, or a prefix inside (or around) a builds app's, is the app's
    refused(
        store,
        "thief",
        spec(hosts=["shop.example.com"]),
        "host shop.example.com is already routed to app shop",
    )
    refused(store, "thief", spec(prefix="/shop/assets/"), "overlaps app shop's prefix /shop/")
    refused(store, "web", spec(hosts=["web.example.com"], prefix="/shop/"), "app shop")
    # nesting between services is fine (the longest wins), so is a prefix under the catch-all app,
    # and a service keeps its own claims when it is deployed again
    store.deploy("web-v2", spec(prefix="/web/v2/"))
    store.deploy("api", spec(prefix="/api/"))
    store.deploy("web", spec(hosts=["web.example.com", "www.example.com"], prefix="/web/"))
    assert store.get("web").revision == 2


def test_a_prefix_route_does_not_reach_into_an_apps_host(stores: tuple[ServiceStore, BuildStore]) -> None:
    store, _ = stores
    store.deploy("assets", spec(prefix="/assets/"))
    gateway = ServiceGateway(store.engine)
    assert gateway.match("shop.example.com", "/assets/app.js") is None  # the shop app's
    found = gateway.match("other.example.com", "/assets/app.js")
    assert found is not None and (found[0].name, found[1]) == ("assets", "/app.js")
    assert gateway.match("", "/assets/app.js") is not None


def test_a_rollback_claims_its_routes_again(stores: tuple[ServiceStore, BuildStore]) -> None:
    store, _ = stores
    store.deploy("web", spec(hosts=["web.example.com"]))
    store.deploy("web", spec())  # gives the host up
    store.deploy("other", spec(hosts=["web.example.com"]))
    with pytest.raises(ConflictError, match=r"web\.example\.com is already routed to service other"):
        store.rollback("web")
    assert store.get("web").spec.hosts == []
    # an automatic rollback (the controller's) always happens, keeping this revision's routes
    back = store.rollback("web", message="rolled back: a new replica never got healthy")
    assert back.status == "rolled_back" and back.spec.hosts == []
    assert back.message is not None and "kept this revision's routes" in back.message


def test_a_builds_app_cannot_take_a_host_or_prefix_a_service_holds(
    stores: tuple[ServiceStore, BuildStore],
) -> None:
    """The rule is symmetric (db/claims.py): an app's route is refused as a service's would be."""
    store, builds = stores
    store.deploy("web", spec(hosts=["web.example.com"], prefix="/api/"))
    store.deploy("docs", spec(prefix="/docs/v1/"))
    before = builds.routes()
    for route, says in (
        (Route("blog", ("WEB.example.com",), "/blog/", True), "host web.example.com is already routed"),
        (Route("blog", (), "/api/v1/", True), "prefix /api/v1/ overlaps service web's prefix /api/"),
        (Route("shop", ("shop.example.com",), "/docs/", True), "/docs/ overlaps service docs's prefix"),
    ):
        with pytest.raises(ConflictError) as caught:
            builds.set_route(route)
        assert says in str(caught.value) and "\n" not in str(caught.value)
        assert builds.routes() == before  # nothing written
    # its own route again, a catch-all app at /, other hosts and prefixes, a host among apps: fine
    builds.set_route(Route("shop", ("shop.example.com",), "/shop/", False))
    builds.set_route(Route("root", (), "/", True))
    builds.set_route(Route("blog", ("blog.example.com", "shop.example.com"), "/blog/", True))
    assert {r.app for r in builds.routes()} == {"shop", "home", "root", "blog"}
