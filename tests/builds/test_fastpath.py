"""The fast path of a cached `freight build`: same hashes, same record, no heavy imports, no stale files.

Each test builds the 12-app workspace once with the full path (which writes the plan memo), then runs
the fast path in a fresh interpreter, as `freight.cli.main` does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from freight.builds import memo as plan_memo
from freight.builds.plan import _ROOT_FILES
from freight.builds.store import BuildStore
from freight.cli.build import build_app
from freight.config import Settings

runner = CliRunner()
PROBE = (
    "import sys; from freight.builds.fastpath import try_build; code = try_build(sys.argv[1:]); "
    "heavy = sorted(m for m in ('sqlalchemy', 'pydantic', 'typer', 'yaml', 'fsspec') if m in sys.modules); "
    "print(json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)"
)


@pytest.fixture
def env(settings: Settings, cgroup_parent: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("FREIGHT_HOME", str(settings.home))
    monkeypatch.setenv("FREIGHT_CGROUP_PARENT", cgroup_parent)
    monkeypatch.setenv("FREIGHT_CPUS", "2")
    return dict(os.environ)


def full_build(ws: Path, *args: str) -> dict[str, object]:
    done = runner.invoke(build_app, ["build", "--cwd", str(ws), "--no-publish", "--json", *args])
    assert done.exit_code == 0, done.output
    data: dict[str, object] = json.loads(done.stdout)
    return data


def fast(ws: Path, env: dict[str, str], *args: str) -> tuple[int | None, list[str], str]:
    """(exit code or None when the full path must run, heavy modules imported, stdout)."""
    done = subprocess.run(
        [sys.executable, "-c", "import json; " + PROBE, "--cwd", str(ws), "--no-publish", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    probe = json.loads(done.stderr.strip().splitlines()[-1])
    return probe["code"], probe["heavy"], done.stdout


def dists(ws: Path) -> dict[str, bytes]:
    return {
        p.relative_to(ws).as_posix(): p.read_bytes()
        for p in sorted(ws.glob("apps/*/dist/**/*"))
        if p.is_file()
    }


def plan_hashes(ws: Path) -> dict[str, str]:
    done = runner.invoke(build_app, ["build", "--cwd", str(ws), "--dry", "--json"])
    assert done.exit_code == 0, done.output
    return {t["task"]: t["hash"] for t in json.loads(done.stdout)["tasks"]}


def test_root_files_are_the_planners() -> None:
    assert set(plan_memo.ROOT_FILES) == _ROOT_FILES


def test_fully_cached_build_answers_without_the_heavy_stack(
    ws: Path, env: dict[str, str], settings: Settings
) -> None:
    full_build(ws)
    before = dists(ws)
    code, heavy, out = fast(ws, env, "--json")
    assert code == 0 and heavy == []
    summary = json.loads(out)
    assert summary["status"] == "ok" and summary["totals"]["cached"] == 12
    assert dists(ws) == before
    # the run is recorded as the full path records it, with the planner's own hashes
    hashes = plan_hashes(ws)
    store = BuildStore.open(settings)
    try:
        run = store.run(summary["id"])
        assert run is not None and run["status"] == "ok"
        for tid, digest in hashes.items():
            last = store.last_task(str(ws.resolve()), tid)
            assert last is not None and last["hash"] == digest and last["run_id"] == summary["id"]
    finally:
        store.close()


def test_dist_removed_is_restored_exactly(ws: Path, env: dict[str, str]) -> None:
    full_build(ws)
    before = dists(ws)
    for dist in ws.glob("apps/*/dist"):
        shutil.rmtree(dist)
    (ws / "apps" / "app-03" / "dist").mkdir()
    stale = ws / "apps" / "app-03" / "dist" / "old-bundle.js"
    stale.write_text("stale")
    code, _heavy, out = fast(ws, env)
    assert code == 0 and "cached" in out
    assert dists(ws) == before  # the stale bundle is gone, every file is the cached one


def test_a_changed_app_hands_over_to_the_full_path_untouched(ws: Path, env: dict[str, str]) -> None:
    full_build(ws)
    before = dists(ws)
    with (ws / "apps" / "app-05" / "src" / "main.js").open("a") as handle:
        handle.write("export const changed = 1;\n")
    code, _heavy, _out = fast(ws, env)
    assert code is None
    assert dists(ws) == before
    data = full_build(ws)
    assert data["totals"]["built"] == 1  # type: ignore[index]
    assert fast(ws, env)[0] == 0  # and the memo still answers afterwards


def test_a_changed_plan_input_makes_the_memo_stale(ws: Path, env: dict[str, str]) -> None:
    full_build(ws)
    (ws / "freight.toml").write_text('[tasks.build]\ndepends_on = ["^build"]\noutputs = ["dist/**"]\n')
    assert fast(ws, env)[0] is None


def test_publishing_is_left_to_the_full_path(ws: Path, env: dict[str, str]) -> None:
    full_build(ws)
    done = subprocess.run(
        [sys.executable, "-c", "import json; " + PROBE, "--cwd", str(ws)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stderr.strip().splitlines()[-1])["code"] is None


def test_options_it_does_not_handle_go_to_the_full_path() -> None:
    from freight.builds.fastpath import parse

    assert parse(["--no-publish", "-C", "x", "--json"]) is not None
    for argv in (["--force"], ["app-01"], ["--dry"], ["--cwd"], ["--why", "x"], ["--summarize"]):
        assert parse(argv) is None


def test_the_entry_exits_with_the_builds_code_and_its_output_flushed(ws: Path, env: dict[str, str]) -> None:
    """`freight build` leaves without the interpreter's teardown: the summary and exit code survive."""
    main = [sys.executable, "-m", "freight.cli.main", "build", "--cwd", str(ws), "--no-publish"]
    first = subprocess.run([*main, "--json"], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["totals"]["built"] == 12  # the full path (no memo yet)
    again = subprocess.run(main, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "cached" in again.stdout  # the fast path
    bad = subprocess.run([*main, "--bogus"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_a_one_app_build_loads_only_what_a_process_task_needs(ws: Path, env: dict[str, str]) -> None:
    """The full path after a hand-over imports what planning and a process job need, and not what
    only image jobs (cryptography), YAML lockfiles (yaml), remote stores (fsspec) or error messages
    (rich) use: each costs the one-app-changed build 5-20 ms (docs/benchmarks.md, issue 12)."""
    full_build(ws)
    with (ws / "apps" / "app-03" / "src" / "main.js").open("a") as handle:
        handle.write("export const changed = 1;\n")
    probe = (
        "import atexit, json, sys\n"
        "def report():\n"
        "    loaded = sorted(m for m in ('cryptography', 'yaml', 'fsspec', 'rich') if m in sys.modules)\n"
        "    sys.stderr.write('\\nLOADED ' + json.dumps(loaded) + '\\n')\n"
        "atexit.register(report)\n"
        "sys.argv = ['freight', 'build', '--cwd', sys.argv[1], '--no-publish', '--json']\n"
        "from freight.cli.main import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(ws)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["totals"]["built"] == 1
    assert json.loads(done.stderr.strip().splitlines()[-1].removeprefix("LOADED ")) == []
