"""Builds end to end: real esbuild, every task a job on the real embedded platform (JobService)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from freight.builds.api import Builds
from freight.builds.plan import PlanOptions
from freight.builds.runner import RunOptions, cancel_jobs
from freight.builds.sample import git_commit
from freight.config import Settings
from freight.jobs.service import JobService
from freight.jobs.states import JobState

APPS = {f"@sample/app-{i:02d}#build" for i in range(1, 13)}
CHARTS_APPS = {f"@sample/app-{i:02d}#build" for i in (3, 6, 9, 12)}


def by_status(summary: object, status: str) -> set[str]:
    return {r.task for r in summary.results.values() if r.status == status}  # type: ignore[attr-defined]


def dist_files(ws: Path) -> dict[str, bytes]:
    return {
        p.relative_to(ws).as_posix(): p.read_bytes()
        for p in sorted(ws.glob("apps/*/dist/**/*"))
        if p.is_file()
    }


def test_cold_build_full_hit_and_a_one_file_change(ws: Path, platform: JobService, builds: Builds) -> None:
    cold = builds.build(platform, ws)
    assert cold.ok, cold.table()
    assert by_status(cold, "built") == APPS
    assert by_status(cold, "noop") == {f"@sample/{p}#build" for p in ("tooling", "utils", "ui", "charts")}
    html = (ws / "apps/app-01/dist/index.html").read_text()
    bundle = next((ws / "apps/app-01/dist/assets").glob("main-*.js"))
    assert f"/app-01/assets/{bundle.name}" in html
    assert cold.deps is not None and cold.deps["status"] == "warm"
    assert len(cold.releases) == 12 and all(r["new"] for r in cold.releases)
    totals = cold.totals()
    assert totals["built"] == 12 and totals["task_seconds"] > 0 and cold.critical_path
    # every task ran as a platform job, labelled with the run
    job = platform.get(cold.results["@sample/app-01#build"].job_id or "")
    assert job.state is JobState.SUCCEEDED and job.labels["build.run"] == cold.id
    assert job.spec.shell == "sample-build" and job.spec.cwd == str(ws / "apps/app-01")

    built = dist_files(ws)
    for dist in ws.glob("apps/*/dist"):
        shutil.rmtree(dist)
    (ws / "apps/app-02/dist/assets").mkdir(parents=True)
    (ws / "apps/app-02/dist/assets/stale-OLD00001.js").write_text("an earlier build")
    warm = builds.build(platform, ws)
    assert warm.ok and by_status(warm, "cached") == APPS
    assert {r.cache for r in warm.results.values() if r.status == "cached"} == {"local"}
    assert dist_files(ws) == built  # restored byte for byte, the stale bundle gone
    replayed = warm.results["@sample/app-01#build"].log.decode()
    assert "@sample/app-01: 4 files, assets/main-" in replayed  # the build's own output, replayed
    assert warm.totals()["saved_seconds"] > 0
    assert not any(r["new"] for r in warm.releases)  # same content, same releases

    with (ws / "packages/charts/src/index.js").open("a") as handle:
        handle.write("export const added = 2;\n")
    changed = builds.build(platform, ws)
    assert changed.ok
    assert by_status(changed, "built") == CHARTS_APPS
    assert by_status(changed, "cached") == APPS - CHARTS_APPS
    assert {r["app"] for r in changed.releases if r["new"]} == {"app-03", "app-06", "app-09", "app-12"}

    git_commit(ws, "charts: added")
    (ws / "apps/app-07/src/main.js").open("a").write("export const seven = 7;\n")
    plan = builds.plan(ws, PlanOptions(affected_since="HEAD"))
    assert plan.affected == ["@sample/app-07"]
    assert {t for t in plan.graph.tasks if t in plan.selected} == {"@sample/app-07#build"}
    affected = builds.builder(platform).run(plan)
    assert by_status(affected, "built") == {"@sample/app-07#build"}
    assert set(affected.results) == {
        "@sample/app-07#build",
        "@sample/ui#build",
        "@sample/utils#build",
        "@sample/tooling#build",
    }


def test_a_failing_app_does_not_stop_the_others_with_continue(
    ws: Path, platform: JobService, builds: Builds
) -> None:
    (ws / "apps/app-01/src/main.js").write_text("export const broken = ;\n")
    summary = builds.build(platform, ws, run_options=RunOptions(continue_on_error=True))
    assert not summary.ok
    failed = summary.results["@sample/app-01#build"]
    assert failed.status == "failed" and failed.exit_code == 1
    assert "Unexpected" in failed.log.decode()  # esbuild's own error, from the job's log
    assert by_status(summary, "built") == APPS - {"@sample/app-01#build"}
    assert "app-01" not in {r["app"] for r in summary.releases}

    # Without --continue the first failure stops the run: what has not finished is cancelled.
    stopped = builds.build(platform, ws, run_options=RunOptions(force=True))
    assert stopped.results["@sample/app-01#build"].status == "failed"
    rest = {r.status for t, r in stopped.results.items() if t in APPS - {"@sample/app-01#build"}}
    assert rest <= {"built", "cancelled"} and "cancelled" in rest
    cancelled = [r for r in stopped.results.values() if r.status == "cancelled"]
    assert all(platform.get(r.job_id or "").state is JobState.CANCELLED for r in cancelled)


def test_a_failed_dependency_skips_its_dependents(ws: Path, platform: JobService, builds: Builds) -> None:
    ui = ws / "packages/ui/package.json"
    ui.write_text(ui.read_text().replace('"main"', '"scripts": {"build": "exit 3"},\n  "main"'))
    summary = builds.build(
        platform, ws, PlanOptions(only=("app-01", "charts")), RunOptions(continue_on_error=True)
    )
    assert summary.results["@sample/ui#build"].status == "failed"
    assert summary.results["@sample/ui#build"].reason == "exited with code 3"
    skipped = summary.results["@sample/app-01#build"]
    assert skipped.status == "skipped" and skipped.reason == "dependency @sample/ui#build failed"
    assert summary.results["@sample/charts#build"].status == "noop"


def test_dependencies_are_installed_once_then_restored_from_the_snapshot(
    template: Path, tmp_path: Path, platform: JobService, builds: Builds
) -> None:
    only = PlanOptions(only=("app-01",))
    first = tmp_path / "first"
    subprocess.run(["git", "clone", "-q", str(template), str(first)], check=True)
    cold = builds.build(platform, first, only)
    assert cold.ok, cold.table()
    assert cold.deps is not None and cold.deps["status"] == "installed" and cold.deps["install_seconds"] > 0
    install_jobs = platform.list_jobs(label={"build.task": "install"})
    assert len(install_jobs) == 1 and install_jobs[0].spec.shell is not None
    assert install_jobs[0].spec.shell.startswith("npm ci")
    # lifecycle scripts must not see the key that signs cache entries, nor anything else of ours
    assert install_jobs[0].spec.inherit_env is False
    assert not any(name.startswith("FREIGHT_") for name in install_jobs[0].spec.env)

    second = tmp_path / "second"
    subprocess.run(["git", "clone", "-q", str(template), str(second)], check=True)
    warm = builds.build(platform, second, only, RunOptions(force=True))
    assert warm.ok, warm.table()
    assert warm.deps is not None and warm.deps["status"] == "restored"
    assert warm.deps["install_seconds"] == cold.deps["install_seconds"]
    assert warm.deps["saved_seconds"] is not None
    assert "dependencies: restored" in warm.table()
    assert len(platform.list_jobs(label={"build.task": "install"})) == 1  # no second install
    assert (second / "node_modules/.bin/esbuild").exists()


def test_shared_cache_across_machines_and_a_tampered_entry(
    ws: Path, template: Path, tmp_path: Path, settings: Settings, platform: JobService
) -> None:
    """Two build machines (two FREIGHT_HOMEs) share an object store and the cache key."""
    shared = (tmp_path / "shared-objects").resolve().as_uri()
    machine_a = replace(settings, object_store_url=shared, extra={"build_cache_key": "team-key"})
    machine_b = replace(
        settings.with_home(tmp_path / "home-b"),
        object_store_url=shared,
        cgroup_parent=settings.cgroup_parent,
        extra={"build_cache_key": "team-key"},
    )
    only = PlanOptions(only=("app-01", "app-02"))
    with Builds.open(machine_a) as a:
        first = a.build(platform, ws, only)
    assert first.ok and by_status(first, "built") == {"@sample/app-01#build", "@sample/app-02#build"}

    clone = tmp_path / "clone-b"
    shutil.copytree(template, clone, symlinks=True)
    entry = next(
        (tmp_path / "shared-objects/builds/cache").rglob(f"{first.results['@sample/app-02#build'].hash}.tgz")
    )
    data = bytearray(entry.read_bytes())
    data[-20] ^= 0x01  # one flipped bit in the shared archive
    entry.write_bytes(bytes(data))
    with Builds.open(machine_b) as b:
        second = b.build(platform, clone, only)
    assert second.ok
    assert second.results["@sample/app-01#build"].cache == "shared"
    assert second.results["@sample/app-02#build"].status == "built"  # the tampered entry is a miss...
    assert any("app-02#build: shared cache entry" in w and "signed digest" in w for w in second.warnings)
    assert "rejected" in second.table()  # ... and it is reported, not silent


class _RunnerFirst:
    """The real service, except that the first cancel asked of it lets the build's runner get there
    first: the runner cancels the rest of a build once one of its jobs ends cancelled."""

    def __init__(self, svc: JobService, others: list[str]) -> None:
        self.svc, self.others = svc, others

    def __getattr__(self, name: str) -> object:
        return getattr(self.svc, name)

    def cancel(self, job_id: str) -> object:
        for other in self.others:
            self.svc.cancel(other)
        self.others = []
        return self.svc.cancel(job_id)


def test_cancel_jobs_counts_the_jobs_the_runner_cancelled_meanwhile(settings: Settings) -> None:
    """Seen as a flaky `cancelled_jobs` of 1 instead of 2 through the builds API."""
    svc = JobService.open(settings)  # no scheduler: the jobs stay queued
    try:
        run = "r-cancel-race"
        first, second, other = (
            svc.submit({"command": ["true"], "labels": {"build.run": r}}).id for r in (run, run, "r-other")
        )
        cancelled = cancel_jobs(_RunnerFirst(svc, [first]), run)  # type: ignore[arg-type]
        assert sorted(cancelled) == sorted([first, second])
        assert {svc.get(j).state for j in (first, second)} == {JobState.CANCELLED}
        assert svc.get(other).state is JobState.QUEUED
        assert cancel_jobs(svc, run) == []  # cancelled before this was asked: not this call's
    finally:
        svc.close()
