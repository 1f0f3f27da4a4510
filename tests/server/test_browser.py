"""The web UI in the machine's Chromium (Playwright; never a downloaded browser): sign in, submit a
job, watch it finish, read its log, cancel another, move around by keyboard, watch a pipeline run end
and follow its steps to their jobs, look at apps and their releases, and watch a service's replicas
change live on the services pages."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from freight.pipelines.loader import load_pipeline
from freight.pipelines.store import RunStore
from tests.containers import BuiltImage
from tests.server.conftest import Live
from tests.server.workloads import publish_apps, runner, write_pipeline

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SLOW = 30_000  # ms: a bound on waiting for a job, not a timing assertion


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, live: Live) -> Iterator[Page]:
    context = browser.new_context(base_url=live.url, viewport={"width": 1366, "height": 820})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/jobs")
    expect(page).to_have_url(re.compile(r"/login\?next=/jobs$"))
    page.fill("#token", live.admin)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/jobs$"))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def api(live: Live) -> httpx.Client:
    return httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {live.admin}"})


def test_submit_a_job_watch_it_finish_and_read_its_log(page: Page) -> None:
    page.keyboard.press("n")
    dialog = page.locator("#new-job")
    expect(dialog).to_be_visible()
    page.fill("#nj-command", "echo hello-from-the-browser; sleep 0.5; echo done")
    page.fill("#nj-name", "browser-job")
    page.fill("#nj-queue", "browser")
    page.fill("#nj-memory", "64M")
    page.click("#new-job-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f]{20}$"))
    expect(page.locator("h1")).to_have_text("browser-job")
    expect(page.locator("#job-state")).to_have_text("succeeded", timeout=SLOW)
    expect(page.locator("#outcome")).to_contain_text("Succeeded")
    expect(page.locator("#log")).to_have_text("hello-from-the-browser\ndone\n", timeout=SLOW)
    expect(page.locator("#log-status")).to_contain_text("Ended: succeeded")
    expect(page.locator("#job-history table.grid tbody tr")).to_have_count(1)  # one attempt
    page.keyboard.press("w")
    expect(page.locator("#log")).to_have_class(re.compile(r"\bwrap\b"))


def test_cancel_a_running_job_from_its_page(page: Page, live: Live) -> None:
    with api(live) as client:
        job = client.post(
            "/api/v1/jobs", json={"shell": "echo started; sleep 300", "queue": "browser", "name": "long"}
        ).json()
    page.goto("/jobs?queue=browser")
    row = page.locator(f'tr[data-id="{job["id"]}"]')
    expect(row.locator(".badge")).to_have_text("running", timeout=SLOW)  # the list updates by itself
    row.locator("a").click()
    expect(page.locator("#log")).to_have_text("started\n", timeout=SLOW)
    page.once("dialog", lambda d: d.accept())
    page.click('[data-action="cancel"]')
    expect(page.locator("#job-state")).to_have_text("cancelled", timeout=SLOW)
    expect(page.locator("#outcome")).to_contain_text("Cancelled")
    expect(page.locator('[data-action="retry"]')).to_be_visible()


def test_a_waiting_job_says_why(page: Page, live: Live) -> None:
    with api(live) as client:
        client.put("/api/v1/queues/browser-held", json={})
        client.post("/api/v1/queues/browser-held/pause")
        job = client.post("/api/v1/jobs", json={"command": ["true"], "queue": "browser-held"}).json()
    page.goto(f"/jobs/{job['id']}")
    expect(page.locator("#outcome")).to_contain_text("Waiting to start")
    expect(page.locator("#outcome")).to_contain_text("Its queue 'browser-held' is paused.")
    page.goto("/queues")
    row = page.locator('tr[data-queue="browser-held"]')
    expect(row.locator(".badge")).to_have_text("paused")
    row.locator('[data-action="resume"]').click()
    expect(row.locator(".badge")).to_have_text("active")
    with api(live) as client:
        done = client.post("/api/v1/jobs/wait", json={"ids": [job["id"]], "timeout": 30}).json()["jobs"][0]
    assert done["state"] == "succeeded"
    page.goto(f"/jobs/{job['id']}")  # its attempt says where it ran
    expect(page.locator("td.node")).to_have_text(socket.gethostname())


def test_keyboard_navigation_and_the_capacity_chart(page: Page) -> None:
    page.keyboard.press("g")
    page.keyboard.press("c")
    expect(page).to_have_url(re.compile(r"/capacity$"))
    expect(page.locator("#chart-cpu svg polygon.used")).to_have_count(1, timeout=SLOW)
    expect(page.locator("#chart-mem .readout")).to_contain_text("free of")
    page.keyboard.press("g")
    page.keyboard.press("n")
    expect(page).to_have_url(re.compile(r"/nodes$"))
    expect(page.locator("tr[data-node]")).to_have_count(1)
    page.keyboard.press("g")
    page.keyboard.press("j")
    expect(page).to_have_url(re.compile(r"/jobs$"))
    page.keyboard.press("j")
    selected = page.locator("tr.sel")
    expect(selected).to_have_count(1)
    job_id = selected.get_attribute("data-id")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/jobs/{job_id}$"))
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()


def test_pipeline_runs_update_live_and_lead_to_their_step_jobs_and_the_apps_pages(
    page: Page, live: Live, tmp_path: Path
) -> None:
    store = RunStore.open(live.settings.database_url)
    try:
        pipelines = runner(live.service, store, tmp_path)
        path = write_pipeline(tmp_path, expect=3)
        # Started, not followed: the run stays "running" until this process follows it below.
        run_id = pipelines.start(load_pipeline(path), spec_path=str(path))
        apps = publish_apps(live.settings, tmp_path)
        page.goto("/jobs")
        page.keyboard.press("g")
        page.keyboard.press("p")
        expect(page).to_have_url(re.compile(r"/pipelines$"))
        row = page.locator(f'tr[data-id="{run_id}"]')
        expect(row.locator(".badge")).to_have_text("running")
        row.locator("a").first.click()
        expect(page).to_have_url(re.compile(rf"/pipelines/runs/{run_id}$"))
        expect(page.locator("#run-state")).to_have_text("running")
        steps = page.locator("table.steps tbody tr")
        expect(steps).to_have_count(3)
        expect(steps.locator("td:nth-child(2) strong")).to_have_text(["orders", "load_orders", "three_rows"])
        # above the table, the steps as a graph: a box per step in its state's colour, an arrow per edge
        graph = page.locator("#step-graph svg.dag")
        expect(graph.locator("g.dag-node")).to_have_count(3)
        expect(graph.locator("path.dag-edge")).to_have_count(2)
        expect(graph.locator('g[data-node="three_rows"]')).not_to_have_class(re.compile(r"\bt-ok\b"))
        assert graph.bounding_box() is not None and graph.bounding_box()["height"] > 0  # type: ignore[index]
        pipelines.follow(run_id, poll=0.1)
        # the page refreshes itself: the run ends, the rows and the QA result appear
        expect(page.locator("#run-state")).to_have_text("succeeded", timeout=SLOW)
        expect(page.locator('tr[data-step="orders"] td:nth-child(5)')).to_have_text("3")
        expect(page.locator("table.checks tbody tr .badge")).to_have_text("pass")
        for step in ("orders", "load_orders", "three_rows"):  # the graph is live too
            expect(graph.locator(f'g[data-node="{step}"]')).to_have_class(re.compile(r"\bt-ok\b"))
        job_id = store.get(run_id).step("load_orders").job_id
        page.locator('tr[data-step="load_orders"] a.step-job').click()
        expect(page).to_have_url(re.compile(rf"/jobs/{job_id}$"))
        expect(page.locator("h1")).to_have_text("ui-orders/load_orders")
        expect(page.locator("#job-state")).to_have_text("succeeded")
        # back on the run: run it again from the keyboard (the server starts and follows the new run);
        # its steps wait in the paused default queue until it is cancelled from its page
        page.goto(f"/pipelines/runs/{run_id}")
        expect(page.locator("#run-state")).to_have_text("succeeded")
        with api(live) as client:
            client.put("/api/v1/queues/default", json={})
            client.post("/api/v1/queues/default/pause")
        try:
            page.keyboard.press("r")
            expect(page).not_to_have_url(re.compile(rf"/pipelines/runs/{run_id}$"))
            expect(page.locator("#run-state")).to_have_text("running")
            expect(page.locator("#rerun-of")).to_have_text(run_id)
            expect(page.locator('tr[data-step="orders"] .badge')).to_have_text("queued")
            page.once("dialog", lambda d: d.accept())
            page.keyboard.press("c")
            expect(page.locator("#run-state")).to_have_text("failed", timeout=SLOW)
            expect(page.locator('tr[data-step="orders"] .badge')).to_have_text("cancelled")
            expect(page.locator('[data-action="rerun"]')).to_have_text(re.compile("^Rerun failed steps"))
        finally:
            with api(live) as client:
                client.post("/api/v1/queues/default/resume")
    finally:
        store.close()
    page.keyboard.press("g")
    page.keyboard.press("a")
    expect(page).to_have_url(re.compile(r"/apps$"))
    web = page.locator('tr[data-app="web"]')
    expect(web.locator('td[data-env="prod"]')).to_contain_text(apps.web[0])
    web.locator("a").click()
    expect(page).to_have_url(re.compile(r"/apps/web$"))
    expect(page.locator("table.releases tbody tr")).to_have_count(2)
    expect(page.locator(f'tr[data-release="{apps.web[0]}"] .badge')).to_have_text("prod")
    expect(page.locator("table.history tbody tr")).to_have_count(4)
    # an admin deploys the newer release to prod from its row (a dialog confirms), then rolls back
    page.locator(f'tr[data-release="{apps.web[1]}"] [data-action="deploy-release"]').click()
    expect(page.locator("#deploy-dialog")).to_be_visible()
    expect(page.locator("#deploy-env")).to_have_value("prod")
    page.click("#deploy-form button[type=submit]")
    prod = page.locator('.stat[data-env="prod"]')
    expect(prod).to_contain_text(apps.web[1])
    expect(page.locator("table.history tbody tr")).to_have_count(5)
    page.once("dialog", lambda d: d.accept())
    prod.locator('[data-action="rollback-app"]').click()
    expect(prod).to_contain_text(apps.web[0])
    expect(prod).to_contain_text("rolled back just now by admin")
    page.goto("/pipelines/runs/no-such-run")
    expect(page.locator("#not-found")).to_contain_text("There is no pipeline run no-such-run")


def test_a_builds_page_draws_its_task_graph_with_the_critical_path(page: Page, live: Live) -> None:
    from freight.builds.api import Builds
    from freight.builds.results import RunSummary, TaskResult

    def task(name: str, status: str, start: float, end: float) -> TaskResult:
        return TaskResult(
            name, name.split("#")[0], "h" * 12, status, duration=end - start, start=start, end=end
        )

    results = {
        "ui#build": task("ui#build", "built", 0.0, 1.0),
        "shop#build": task("shop#build", "built", 1.0, 4.0),
        "blog#build": task("blog#build", "cached", 1.0, 1.1),
        "tooling#build": task("tooling#build", "noop", 0.0, 0.0),
    }
    summary = RunSummary(
        id="b-graph-1",
        workspace="/ws",
        commit=None,
        started_at=100.0,
        ended_at=104.0,
        results=results,
        critical_path=["ui#build", "shop#build"],
        critical_seconds=4.0,
        graph={"ui#build": [], "shop#build": ["ui#build"], "blog#build": ["ui#build"], "tooling#build": []},
    )
    data = summary.to_dict()
    with Builds.open(live.settings) as builds:
        run = {"id": data["id"], "workspace": "/ws", "started_at": 100.0, "ended_at": 104.0}
        builds.store.record_run({**run, "status": data["status"], "summary": data}, [])
    page.goto("/apps")
    page.locator('a[href="/builds/b-graph-1"]').click()
    expect(page.locator("#build-status")).to_have_text("ok")
    graph = page.locator("#task-graph svg.dag")
    expect(graph.locator("g.dag-node")).to_have_count(3)  # a task without a script is not drawn
    expect(graph.locator("path.dag-edge")).to_have_count(2)
    expect(graph.locator("g.dag-node.critical")).to_have_count(2)
    expect(graph.locator("path.dag-edge.critical")).to_have_count(1)
    expect(graph.locator('g[data-node="shop#build"]')).to_have_class(re.compile(r"\bt-ok\b"))
    expect(page.locator("#critical-path")).to_contain_text("ui#build → shop#build")
    expect(page.locator("table.tasks tbody tr")).to_have_count(4)
    page.goto("/builds/nope")
    expect(page.locator("h1")).to_contain_text("not found", ignore_case=True)


def test_the_services_pages_follow_a_scale_without_reload(
    page: Page, live: Live, test_image: BuiltImage
) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    spec = {"name": service, "image": test_image.pinned, "port": 18090, "replicas": 1, "queue": "svc-ui"}
    with api(live) as client:
        assert client.post("/api/v1/services", json=spec).status_code == 202
        page.keyboard.press("g")
        page.keyboard.press("s")
        expect(page).to_have_url(re.compile(r"/services$"))
        row = page.locator(f'#service-rows tr[data-service="{service}"]')
        expect(row.locator("td").nth(3)).to_have_text("0 / 1")
        page.evaluate("window.notReloaded = true")
        assert client.post(f"/api/v1/services/{service}/scale", json={"replicas": 3}).status_code == 202
        expect(row.locator("td").nth(3)).to_have_text("0 / 3", timeout=SLOW)
        row.locator("a").click()
        expect(page).to_have_url(re.compile(rf"/services/{service}$"))
        expect(page.locator("#service-panel dl.facts")).to_contain_text("3 · ")
        page.evaluate("window.notReloaded = true")
        assert client.post(f"/api/v1/services/{service}/scale", json={"replicas": 2}).status_code == 202
        expect(page.locator("#service-panel dl.facts")).to_contain_text("2 · ", timeout=SLOW)
        spec["command"] = ["sh", "-c", "exec httpd -f -p $PORT -h /www"]
        assert client.post("/api/v1/services", json=spec).status_code == 202
        expect(page.locator("#spec-title")).to_have_text("Revision 2", timeout=SLOW)
        assert page.evaluate("window.notReloaded") is True
        assert client.delete(f"/api/v1/services/{service}").status_code == 202
        expect(page.locator("#service-panel .page-head .badge")).to_have_text("removing", timeout=SLOW)
