"""A service's replicas are the platform's jobs in the service's queue: a user cannot submit a job with
`freight.*` labels, and a restarted controller adopts (and `describe` lists) only labelled jobs in
the service's queue. No scheduler runs: the jobs stay queued, which is enough to be adopted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from freight.config import Settings
from freight.errors import UserError
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.runtime.registry import free_port
from freight.services.controller import ServiceController
from freight.services.deploy import describe
from freight.services.spec import LABEL, ServiceSpec


@pytest.fixture
def svc(settings: Settings) -> Iterator[JobService]:
    service = JobService.open(settings)
    try:
        yield service
    finally:
        service.close()


def replica_job(spec: ServiceSpec, queue: str, service: str = "web") -> JobSpec:
    labels = {LABEL: service, "freight.port": str(free_port()), "freight.key": spec.replica_key()}
    return JobSpec(command=["sleep", "60"], queue=queue, labels=labels)


def test_users_cannot_set_freight_labels(svc: JobService) -> None:
    before = len(svc.list_jobs(limit=1000))
    for labels in ({LABEL: "web"}, {"app": "x", "freight.port": "8080"}):
        with pytest.raises(UserError) as caught:
            svc.submit(JobSpec(command=["true"], labels=labels))
        assert "is reserved" in str(caught.value) and caught.value.where is not None
        assert caught.value.where.startswith("spec: labels.freight.")
    with pytest.raises(UserError, match=r"'freight\.service' is reserved"):
        svc.register_definition("posing", {"command": ["true"], "labels": {LABEL: "web"}})
    assert len(svc.list_jobs(limit=1000)) == before
    assert svc.definitions() == []
    # the platform's own jobs (service replicas, build tasks) carry them; other labels are anyone's
    assert svc.submit(JobSpec(command=["true"], labels={LABEL: "web"}), platform=True).spec.labels
    assert svc.submit(JobSpec(command=["true"], labels={"freightage": "x", "app.freight.x": "y"}))


def test_adopts_only_jobs_in_the_services_queue(svc: JobService) -> None:
    spec = ServiceSpec(image="x", command=["x"], port=free_port(), queue="team-a")
    controller = ServiceController(svc)
    controller.store.deploy("web", spec)
    # (as the platform: jobs stored before the labels were reserved, or another queue's replica)
    mine = svc.submit(replica_job(spec, "team-a"), platform=True)
    posing = svc.submit(replica_job(spec, "team-b"), platform=True)
    ghost = svc.submit(replica_job(spec, "team-b", service="ghost"), platform=True)
    try:
        controller.tick()
        assert [r.job_id for r in controller.replicas("web")] == [mine.id]
        assert controller.replicas("ghost") == []
        # the other queue's jobs are left alone: neither replaced nor stopped
        assert [svc.get(j.id).state.value for j in (mine, posing, ghost)] == ["queued"] * 3
        shown = describe(controller.store.get("web"), svc.list_jobs(label={LABEL: "web"}))
        assert [r["job"] for r in shown["replicas"]] == [mine.id]
    finally:
        controller.close()
