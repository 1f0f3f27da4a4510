"""The pipeline and apps pages over httpx, on SQLite and PostgreSQL, with a pipeline run made by the
real runner (its steps real jobs) and releases published and deployed through the builds API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from freight.pipelines.loader import load_pipeline
from freight.pipelines.store import Run, RunStore
from tests.server.conftest import Api, TestClient, _remove_cgroups
from tests.server.workloads import (
    PIPELINE,
    STEPS,
    Apps,
    publish_apps,
    runner,
    table_rows,
    write_pipeline,
)


@dataclass
class Data:
    failed: Run  # its check expected 4 rows of 3
    rerun: Run  # after the fix: only the check ran again
    #: the run page while the run was still running (its jobs queued: no scheduler yet)
    while_running: str
    apps: Apps


@pytest.fixture(scope="module")
def data(api: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    folder = tmp_path_factory.mktemp("ui-workloads")
    service = api.service
    api.client.post("/login", data={"token": api.admin})
    store = RunStore.open(service.settings.database_url)  # a second process's view, as the CLI has
    try:
        pipelines = runner(service, store, folder)
        path = write_pipeline(folder, expect=4)
        run_id = pipelines.start(load_pipeline(path), spec_path=str(path))
        while_running = api.client.get(f"/pipelines/runs/{run_id}").text
        with service.running():
            failed = pipelines.follow(run_id, poll=0.1)
            write_pipeline(folder, expect=3)
            rerun = pipelines.rerun(run_id, poll=0.1)
        apps = publish_apps(service.settings, folder)
        yield Data(failed, rerun, while_running, apps)
    finally:
        store.close()
        with contextlib.suppress(Exception):
            _remove_cgroups(service.settings.cgroup_parent)


def test_runs_page_lists_runs_newest_first_with_state_duration_and_rerun_of(api: Api, data: Data) -> None:
    page = api.client.get("/pipelines")
    assert page.status_code == 200
    rows = table_rows(page.text, "runs")
    assert [r.attrs["data-id"] for r in rows] == [data.rerun.id, data.failed.id]
    rerun, failed = rows
    assert rerun.cells[0] == "succeeded" and rerun.cells[1] == f"{PIPELINE} {data.rerun.id}"
    assert f"/pipelines/runs/{data.failed.id}" in rerun.links  # rerun of
    assert failed.cells[0] == "failed" and failed.cells[4] == ""
    assert failed.cells[5] == "step three_rows failed: got 3, expected 4"
    assert failed.cells[3].endswith("s")  # how long it took, e.g. "2.6s"
    assert 'class="badge s-bad"' in page.text and 'class="badge s-ok"' in page.text
    assert f'<option value="{PIPELINE}" >' in page.text  # the pipeline filter knows it

    other = api.client.get("/pipelines", params={"pipeline": "no-such-pipeline"})
    assert table_rows(other.text, "runs") == [] and "No pipeline runs of no-such-pipeline yet" in other.text
    only = api.client.get("/pipelines", params={"pipeline": PIPELINE, "limit": 1})
    assert [r.attrs["data-id"] for r in table_rows(only.text, "runs")] == [data.rerun.id]
    assert f"/pipelines?pipeline={PIPELINE}&amp;limit=4" in only.text  # show more

    fragment = api.client.get("/ui/pipelines/rows", params={"pipeline": PIPELINE})
    assert fragment.text.lstrip().startswith('<tbody id="run-rows"')
    assert data.failed.id in fragment.text and data.rerun.id in fragment.text
    assert api.client.get("/pipelines", params={"limit": 0}).status_code == 422


def test_run_page_shows_the_steps_in_order_with_their_jobs_and_the_qa_results(api: Api, data: Data) -> None:
    page = api.client.get(f"/pipelines/runs/{data.failed.id}")
    assert page.status_code == 200
    assert 'data-terminal="true"' in page.text and "<strong>Failed</strong>" in page.text
    steps = table_rows(page.text, "steps")
    assert [r.attrs["data-step"] for r in steps] == STEPS
    by_name = {r.attrs["data-step"]: r for r in steps}
    for name in STEPS:
        job_id = data.failed.step(name).job_id
        assert job_id and by_name[name].attrs["data-href"] == f"/jobs/{job_id}"
        assert f"/jobs/{job_id}" in by_name[name].links
        assert by_name[name].cells[2] == data.failed.step(name).type
        assert by_name[name].cells[6].endswith("M")  # peak memory, e.g. "30.2M"
    assert by_name["orders"].cells[3:5] == ["succeeded", "3"]
    assert by_name["load_orders"].cells[1] == "load_orders after orders"
    assert by_name["three_rows"].cells[3] == "failed"
    assert by_name["three_rows"].cells[9] == "got 3, expected 4"
    checks = table_rows(page.text, "checks")
    assert [c.cells for c in checks] == [
        ["three_rows", "check-sql", "fail", "fail", "3", "4", "got 3, expected 4"]
    ]
    # the step's link leads to its job
    job = api.client.get(by_name["orders"].attrs["data-href"])
    assert job.status_code == 200 and f"{PIPELINE}/orders" in job.text
    assert f'id="pipeline-run" href="/pipelines/runs/{data.failed.id}"' in job.text  # and back


def test_a_rerun_shows_what_it_reused_and_links_back(api: Api, data: Data) -> None:
    page = api.client.get(f"/pipelines/runs/{data.rerun.id}")
    assert f'id="rerun-of" href="/pipelines/runs/{data.failed.id}"' in page.text
    steps = {r.attrs["data-step"]: r for r in table_rows(page.text, "steps")}
    assert steps["orders"].cells[3] == "reused" and "data-href" not in steps["orders"].attrs
    assert steps["orders"].cells[8] == f"reused from {data.failed.id}"
    assert steps["three_rows"].cells[3] == "succeeded"
    assert [c.cells[2] for c in table_rows(page.text, "checks")] == ["pass"]
    assert "2 of 3 steps done (2 reused)" not in page.text and "3 of 3 steps done (2 reused)" in page.text


def test_a_running_run_says_so_and_asks_to_be_refreshed(data: Data) -> None:
    html = data.while_running
    assert 'data-terminal="false"' in html and 'data-refresh="/ui/pipelines/runs/' in html
    assert "<strong>Running</strong>" in html
    assert {r.cells[3] for r in table_rows(html, "steps")} == {"queued"}
    assert "No QA results yet." in html


def test_the_run_panel_fragment_and_unknown_runs(api: Api, data: Data) -> None:
    panel = api.client.get(f"/ui/pipelines/runs/{data.rerun.id}/panel")
    assert panel.text.startswith('<div id="run-panel"') and "<html" not in panel.text
    for path in ("/pipelines/runs/20990101T000000-nope", "/ui/pipelines/runs/nope/panel"):
        missing = api.client.get(path)
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert (
        "There is no pipeline run 20990101T000000-nope"
        in api.client.get("/pipelines/runs/20990101T000000-nope").text
    )


def test_apps_page_shows_what_is_live_in_each_env_and_since_when(api: Api, data: Data) -> None:
    page = api.client.get("/apps")
    assert page.status_code == 200
    assert '<th scope="col">Live in prod</th><th scope="col">Live in staging</th>' in page.text
    rows = {r.attrs["data-app"]: r for r in table_rows(page.text, "apps")}
    assert list(rows) == ["docs", "web"]
    web = rows["web"]
    assert web.cells[1] == "/web/ web.example"
    assert web.cells[2] == f"{data.apps.web[0]} just now"  # rolled back to the first
    assert web.cells[3] == f"{data.apps.web[1]} just now"
    assert rows["docs"].cells[2:] == ["not deployed", "not deployed"]
    assert web.attrs["data-href"] == "/apps/web"


def test_app_page_lists_releases_newest_first_and_the_deploy_history(api: Api, data: Data) -> None:
    first, second = data.apps.web
    page = api.client.get("/apps/web")
    assert page.status_code == 200
    releases = table_rows(page.text, "releases")
    assert [r.attrs["data-release"] for r in releases] == [second, first]
    assert releases[0].cells[2:6] == ["2", "45B", "1abcdef012", "staging"]
    assert releases[1].cells[4:6] == ["0abcdef012", "prod"]
    history = table_rows(page.text, "history")
    assert [h.cells[1:] for h in history] == [
        ["staging", "deploy", second, "-", "alice"],
        ["prod", "rollback", first, second, "bob"],
        ["prod", "deploy", second, first, "alice"],
        ["prod", "deploy", first, "-", "alice"],
    ]
    assert "rolled back just now by bob" in page.text
    docs = api.client.get("/apps/docs")
    assert [r.attrs["data-release"] for r in table_rows(docs.text, "releases")] == [data.apps.docs]
    assert "Never deployed." in docs.text
    missing = api.client.get("/apps/no-such-app")
    assert missing.status_code == 404 and "There is no app no-such-app" in missing.text


def test_only_admins_get_the_deploy_and_rollback_buttons(api: Api, data: Data) -> None:
    admin = api.client.get("/apps/web").text
    assert admin.count('data-action="deploy-release"') == 2 and 'id="deploy-dialog"' in admin
    assert admin.count('data-action="rollback-app"') == 2  # prod and staging
    viewer = TestClient(api.client.app)  # no `with`: the app's lifespan is the module client's
    try:
        viewer.post("/login", data={"token": api.token("ui-viewer", queues=["default"])})
        page = viewer.get("/apps/web")
    finally:
        viewer.close()
    assert page.status_code == 200 and data.apps.web[0] in page.text
    assert "data-action" not in page.text.split("<main", 1)[1].split("</main>", 1)[0]


def test_the_new_pages_need_a_sign_in(api: Api, data: Data) -> None:
    cookies = dict(api.client.cookies)
    api.client.cookies.clear()
    try:
        for path in ("/pipelines", f"/pipelines/runs/{data.failed.id}", "/apps", "/apps/web"):
            page = api.client.get(path, follow_redirects=False)
            assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
        assert api.client.get("/ui/pipelines/rows").status_code == 401
    finally:
        api.client.cookies.update(cookies)


def test_a_fused_pair_shows_as_two_steps_sharing_one_job(api: Api) -> None:
    """An extract-sql and its load ran as one job (pipelines/fusion.py): two rows, each with its own
    state, rows and time, both linking to the one job and naming the other step."""
    from freight.pipelines.store import StepRun, new_run_id

    store = RunStore.open(api.service.settings.database_url)
    run_id = new_run_id()
    spec = {
        "name": "fused-ui",
        "steps": [
            {"name": "raw", "type": "extract-sql", "connection": "shop", "table": "orders"},
            {"name": "load", "type": "load", "inputs": ["raw"], "table": "orders"},
        ],
    }
    job = "f" * 20
    steps = [
        StepRun("raw", "extract-sql", "succeeded", job_id=job, started_at=100.0, ended_at=102.0,
                rows=8, metrics={"fused_with": "load"}),
        StepRun("load", "load", "failed", job_id=job, started_at=100.0, ended_at=103.5,
                error="the load into 'orders' failed", metrics={"fused_with": "raw"}),
    ]  # fmt: skip
    try:
        store.create_run(
            run_id, "fused-ui", spec=spec, spec_path=None, run_url="file:///nowhere", steps=steps
        )
        for step in steps:
            store.update_step(run_id, step)
        store.finish_run(run_id, "failed", "step load failed: the load into 'orders' failed")
    finally:
        store.close()
    api.client.post("/login", data={"token": api.admin})
    page = api.client.get(f"/pipelines/runs/{run_id}")
    assert page.status_code == 200
    rows = {r.attrs["data-step"]: r for r in table_rows(page.text, "steps")}
    raw, load = rows["raw"], rows["load"]
    assert raw.cells[3:6] == ["succeeded", "8", "2.0s"] and load.cells[3:6] == ["failed", "-", "3.5s"]
    assert raw.attrs["data-href"] == load.attrs["data-href"] == f"/jobs/{job}"
    assert raw.cells[8] == f"{job} one job with load" and load.cells[8] == f"{job} one job with raw"
