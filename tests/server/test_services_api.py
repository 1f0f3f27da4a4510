"""/api/v1/services on the real app (SQLite and PostgreSQL) with a real registry: deploy pins the image,
scale, rollback and remove write the desired state, a token sees only its queues' services, and bad
input is one 4xx with nothing stored. The CLI with FREIGHT_URL goes through the same calls."""

from __future__ import annotations

import uuid
from typing import Any

from typer.testing import CliRunner

from freight.cli import main as cli_main
from freight.services.store import ServiceStore
from tests.containers import BuiltImage
from tests.server.conftest import Api, Live, TestClient

SERVE = ["sh", "-c", "exec httpd -f -p $PORT -h /www"]


def name() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


def body(image: str, service: str, **extra: Any) -> dict[str, Any]:
    return {"name": service, "image": image, "port": 18080, "command": SERVE, **extra}


def test_deploy_scale_rollback_remove(api: Api, test_image: BuiltImage, queue: str) -> None:
    service = name()
    first = api.post("/api/v1/services", body(test_image.pinned, service, queue=queue, replicas=2))
    assert first.status_code == 202, first.text
    data = first.json()
    assert data["spec"]["image"] == test_image.pinned
    assert (data["revision"], data["status"], data["spec"]["queue"]) == (1, "deploying", queue)
    assert data["spec"]["resources"]["memory"] == 128 << 20  # the service default per replica

    # no command: the image's own (ENTRYPOINT + CMD) read from the registry
    second = api.post("/api/v1/services", body(test_image.pinned, service, queue=queue, command=None))
    assert second.status_code == 202, second.text
    assert second.json()["revision"] == 2
    assert second.json()["spec"]["command"] != SERVE

    shown = api.get(f"/api/v1/services/{service}").json()
    assert shown["replicas"] == [] and shown["previous"]["command"] == SERVE

    scaled = api.post(f"/api/v1/services/{service}/scale", {"replicas": 3})
    assert scaled.status_code == 202 and scaled.json()["spec"]["replicas"] == 3
    back = api.post(f"/api/v1/services/{service}/rollback")
    assert back.status_code == 202 and back.json()["spec"]["command"] == SERVE

    assert api.client.delete(f"/api/v1/services/{service}", headers=api.headers()).status_code == 202
    assert ServiceStore(api.service.engine).get(service).status == "removing"


def test_a_token_sees_only_its_queues_services(api: Api, test_image: BuiltImage, queue: str) -> None:
    service = name()
    assert api.post("/api/v1/services", body(test_image.pinned, service, queue=queue)).status_code == 202
    other = api.token(f"other-{queue}", queues=[f"{queue}-other"])
    mine = api.token(f"mine-{queue}", queues=[queue])

    assert service not in [row["name"] for row in api.get("/api/v1/services", other).json()]
    assert service in [row["name"] for row in api.get("/api/v1/services", mine).json()]
    assert api.get(f"/api/v1/services/{service}", other).status_code == 404
    assert api.post(f"/api/v1/services/{service}/scale", {"replicas": 0}, other).status_code == 404
    assert api.client.delete(f"/api/v1/services/{service}", headers=api.headers(other)).status_code == 404
    # its name is taken, and its queue is not the other token's to deploy into
    taken = api.post("/api/v1/services", body(test_image.pinned, service, queue=f"{queue}-other"), other)
    assert taken.status_code == 409
    refused = api.post("/api/v1/services", body(test_image.pinned, name(), queue=queue), other)
    assert refused.status_code == 403

    assert api.post(f"/api/v1/services/{service}/scale", {"replicas": 0}, mine).status_code == 202
    assert ServiceStore(api.service.engine).get(service).spec.replicas == 0


def test_bad_input_is_one_4xx_and_stores_nothing(api: Api, test_image: BuiltImage, queue: str) -> None:
    service = name()
    store = ServiceStore(api.service.engine)
    before = len(store.all())
    missing = api.post("/api/v1/services", body("no-such-image-here", service, queue=queue))
    assert missing.status_code == 400
    assert "no-such-image-here not found" in missing.json()["message"]
    bad_health = api.post("/api/v1/services", body(test_image.pinned, service, queue=queue, health="x"))
    assert bad_health.status_code == 400
    assert "health" in bad_health.json()["message"]
    assert api.post("/api/v1/services", body(test_image.pinned, "Bad_Name")).status_code == 422
    assert api.post("/api/v1/services", {**body(test_image.pinned, service), "extra": 1}).status_code == 422
    assert api.post(f"/api/v1/services/{service}/rollback").status_code == 404
    assert len(store.all()) == before


def test_the_cli_deploys_through_the_server(live: Live, test_image: BuiltImage) -> None:
    service = name()
    env = live.env()
    runner = CliRunner()
    deployed = runner.invoke(
        cli_main.app,
        ["service", "deploy", service, "--image", test_image.pinned, "--port", "18081", "--replicas", "0"],
        env=env,
    )
    assert deployed.exit_code == 0, deployed.output
    listed = runner.invoke(cli_main.app, ["service", "ls", "--json"], env=env)
    assert service in listed.output
    assert runner.invoke(cli_main.app, ["service", "rm", service], env=env).exit_code == 0
    assert ServiceStore(live.service.engine).get(service).status == "removing"


def test_the_services_pages_show_a_tokens_own_services(api: Api, test_image: BuiltImage, queue: str) -> None:
    service = name()
    deployed = api.post("/api/v1/services", body(test_image.pinned, service, queue=queue, replicas=2))
    assert deployed.status_code == 202
    api.client.post("/login", data={"token": api.admin})
    listing = api.client.get("/services")
    assert listing.status_code == 200 and f'data-service="{service}"' in listing.text
    assert "0 / 2" in listing.text and "g s" in listing.text
    page = api.client.get(f"/services/{service}")
    assert page.status_code == 200 and test_image.pinned in page.text and "No replica is running" in page.text
    assert api.client.get("/services/no-such-service").status_code == 404

    viewer = TestClient(api.client.app)  # no `with`: the app's lifespan is the module client's
    try:
        viewer.post("/login", data={"token": api.token(f"ui-{queue}", queues=[f"{queue}-other"])})
        assert f'data-service="{service}"' not in viewer.get("/services").text
        assert viewer.get(f"/services/{service}").status_code == 404
        viewer.cookies.clear()
        assert viewer.get("/services", follow_redirects=False).status_code == 303
    finally:
        viewer.close()


def test_routes_are_the_operators_and_never_collide(api: Api, test_image: BuiltImage, queue: str) -> None:
    image, web, host = test_image.pinned, name(), f"{queue}.example.com"
    team = api.token(f"team-{queue}", queues=[queue])
    store = ServiceStore(api.service.engine)
    before = len(store.all())
    # a token limited to queues may not route: no host, no prefix (one line, nothing stored)
    for route in ({"hosts": [host]}, {"prefix": f"/{queue}/"}):
        denied = api.post("/api/v1/services", body(image, web, queue=queue, **route), team)
        assert denied.status_code == 403, denied.text
        assert "needs an admin token or one for every queue" in denied.json()["message"]
    assert len(store.all()) == before
    # an admin routes it; the team then ships new revisions keeping the route, and may roll back
    assert api.post("/api/v1/services", body(image, web, queue=queue, hosts=[host])).status_code == 202
    kept = api.post("/api/v1/services", body(image, web, queue=queue, hosts=[host], replicas=0), team)
    assert kept.status_code == 202, kept.text
    assert api.post(f"/api/v1/services/{web}/rollback", None, team).status_code == 202
    assert (
        api.post(
            "/api/v1/services", body(image, web, queue=queue, hosts=[host, "x." + host]), team
        ).status_code
        == 403
    )
    # nobody takes a host another service holds, not even an admin
    taken = api.post("/api/v1/services", body(image, name(), queue=queue, hosts=[host.upper()]))
    assert taken.status_code == 409
    assert taken.json()["message"] == f"host {host} is already routed to service {web}"
    # dropped by the admin, the route is not the team's to take back with a rollback
    assert api.post("/api/v1/services", body(image, web, queue=queue)).status_code == 202
    assert api.post(f"/api/v1/services/{web}/rollback", None, team).status_code == 403
    assert store.get(web).spec.hosts == []


def test_jobs_cannot_pose_as_a_services_replicas(api: Api, test_image: BuiltImage, queue: str) -> None:
    web = name()
    assert (
        api.post("/api/v1/services", body(test_image.pinned, web, queue=queue, replicas=0)).status_code == 202
    )
    other = f"{queue}-other"
    tenant = api.token(f"tenant-{queue}", queues=[other])
    job = {
        "command": ["sleep", "60"],
        "queue": other,
        "labels": {"freight.service": web, "freight.port": "1"},
    }
    refused = api.post("/api/v1/jobs", job, tenant)
    assert refused.status_code == 400
    assert "label 'freight.service' is reserved" in refused.json()["message"]
    batch = api.post("/api/v1/jobs/batch", {"jobs": [job]}, tenant)
    assert batch.status_code == 400
    assert api.get("/api/v1/jobs", tenant, params={"queue": other}).json()["jobs"] == []
    # one that got in anyway (the platform's own job, or stored before the labels were reserved) in
    # another queue is not listed as the service's replica
    api.service.submit(job, platform=True)
    assert api.get(f"/api/v1/services/{web}").json()["replicas"] == []
