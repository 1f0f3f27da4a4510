"""Task hashes: stable across clean clones, moved by exactly the inputs that matter, explained by --why."""

from __future__ import annotations

import subprocess
from pathlib import Path

from freight.builds.api import Builds
from freight.builds.plan import PlanOptions, make_plan
from freight.builds.sample import git_commit

CHARTS_APPS = {f"@sample/app-{i:02d}#build" for i in (3, 6, 9, 12)}
ENV = {"PATH": "/usr/bin:/bin"}


def hashes(root: Path, environ: dict[str, str] | None = None, **options: object) -> dict[str, str]:
    return make_plan(root, PlanOptions(environ=environ or ENV, **options)).hashes  # type: ignore[arg-type]


def apps(found: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in found.items() if "/app-" in k}


def clone(source: Path, target: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(source), str(target)], check=True)
    return target


def test_hash_is_stable_across_two_clean_clones(template: Path, tmp_path: Path) -> None:
    first = hashes(clone(template, tmp_path / "one"))
    second = hashes(clone(template, tmp_path / "elsewhere" / "two"))
    assert first == second
    # ... and equal to the working copy the clones came from (installed node_modules are no input).
    assert hashes(template) == first
    assert len(set(apps(first).values())) == 12


def test_a_file_in_a_shared_package_moves_only_its_dependents(ws: Path) -> None:
    before = hashes(ws)
    with (ws / "packages/charts/src/index.js").open("a") as handle:
        handle.write("export const extra = 1;\n")
    after = hashes(ws)
    moved = {k for k in before if before[k] != after[k]}
    assert moved == CHARTS_APPS | {"@sample/charts#build"}
    git_commit(ws, "charts change")  # committed or not, the same content gives the same hash
    assert hashes(ws) == after


def test_env_inputs_untracked_ignored_and_mode(ws: Path) -> None:
    base = hashes(ws)
    assert hashes(ws, {**ENV, "UNDECLARED": "x"}) == base
    flavoured = hashes(ws, {**ENV, "SAMPLE_FLAVOUR": "blue"})
    assert set(apps(flavoured).values()).isdisjoint(apps(base).values())  # declared in freight.toml
    (ws / "apps/app-01/dist").mkdir()
    (ws / "apps/app-01/dist/stale.js").write_text("ignored output")
    assert hashes(ws) == base
    (ws / "apps/app-02/src/new.js").write_text("export const n = 1;\n")  # untracked, not ignored
    changed = hashes(ws)
    assert {k for k in base if base[k] != changed[k]} == {"@sample/app-02#build"}
    (ws / "apps/app-04/src/main.js").chmod(0o755)
    moded = hashes(ws)
    assert {k for k in changed if changed[k] != moded[k]} == {"@sample/app-04#build"}


def test_task_settings_and_root_dependencies_move_every_app(ws: Path) -> None:
    base = apps(hashes(ws))
    toml = ws / "freight.toml"
    toml.write_text(toml.read_text().replace('outputs = ["dist/**"]', 'outputs = ["dist/**", "stats.json"]'))
    assert set(apps(hashes(ws)).values()).isdisjoint(base.values())
    toml.write_text(toml.read_text().replace(', "stats.json"', ""))
    assert apps(hashes(ws)) == base
    lock = ws / "package-lock.json"
    lock.write_text(
        lock.read_text().replace(
            '"node_modules/esbuild": {\n      "version": "', '"node_modules/esbuild": {\n      "version": "9'
        )
    )
    assert set(apps(hashes(ws)).values()).isdisjoint(base.values())


def test_why_explains_a_miss_input_by_input(ws: Path, builds: Builds) -> None:
    plan = make_plan(ws, PlanOptions(environ=ENV))
    tasks = [
        {
            "task": t,
            "hash": plan.hashes[t],
            "status": "built",
            "duration": 0.1,
            "inputs": plan.inputs[t].to_dict(),
        }
        for t in plan.graph.order()
    ]
    builds.store.record_run(
        {"id": "run1", "workspace": str(ws), "started_at": 1.0, "status": "ok", "summary": {}}, tasks
    )
    (ws / "packages/charts/src/index.js").write_text("export const charts0 = (x) => x;\n")
    (ws / "apps/app-03/src/main.js").write_text("import './style.css';\n")
    report = builds.why(make_plan(ws, PlanOptions(environ=ENV)), "app-03")
    assert [r.task for r in report] == ["@sample/app-03#build", "@sample/charts#build"]
    text = report[0].text()
    assert "file src/main.js changed" in text
    assert "dependency @sample/charts#build changed" in text
    assert "file src/index.js changed" in report[1].text()
    unchanged = builds.why(make_plan(ws, PlanOptions(environ=ENV)), "app-01")
    assert len(unchanged) == 1 and not unchanged[0].changed
    assert "is the same as in run run1" in unchanged[0].text()
    flavoured = builds.why(make_plan(ws, PlanOptions(environ={**ENV, "SAMPLE_FLAVOUR": "red"})), "app-01")
    assert "env var SAMPLE_FLAVOUR added" in flavoured[0].text()
