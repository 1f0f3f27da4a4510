"""Workspace discovery, freight.toml, globs and the task graph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from freight.builds.config import parse_config
from freight.builds.globs import match_any, matches, static_root
from freight.builds.graph import build_graph
from freight.builds.plan import PlanOptions, make_plan
from freight.builds.workspace import load_workspace
from freight.errors import UserError


def write(root: Path, rel: str, data: object) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def small_workspace(root: Path, workspaces: object = None) -> Path:
    write(
        root, "package.json", {"name": "r", "private": True, "workspaces": workspaces or ["apps/*", "libs/*"]}
    )
    write(root, "libs/core/package.json", {"name": "@x/core", "version": "1.0.0"})
    write(
        root,
        "libs/ui/package.json",
        {"name": "@x/ui", "dependencies": {"@x/core": "*"}, "scripts": {"build": "tsc"}},
    )
    write(
        root,
        "apps/web/package.json",
        {
            "name": "@x/web",
            "dependencies": {"@x/ui": "*", "react": "^18"},
            "scripts": {"build": "vite build"},
        },
    )
    write(root, "apps/admin/package.json", {"name": "admin", "devDependencies": {"@x/core": "*"}})
    return root


def test_globs() -> None:
    assert matches("dist/assets/a.js", "dist/**")
    assert not matches("src/dist/a.js", "dist/**")
    assert matches("src/a/b/c.ts", "src/**/*.ts")
    assert matches("src/c.ts", "src/**/*.ts")
    assert matches("a.js", "*.{js,css}") and not matches("a.ts", "*.{js,css}")
    assert match_any("dist/a.js", ["dist/**", "!dist/**/*.map"])
    assert not match_any("dist/a.js.map", ["dist/**", "!dist/**/*.map"])
    assert static_root("dist/**") == "dist"
    assert static_root("build/*.js") == "build"
    assert static_root("*.js") == ""
    assert static_root("out") == "out"


def test_discovers_packages_apps_and_internal_dependencies(tmp_path: Path) -> None:
    ws = load_workspace(small_workspace(tmp_path) / "apps" / "web")  # found from a subfolder
    assert ws.root == tmp_path
    assert ws.manager == "npm" and ws.lockfile is None
    assert sorted(ws.packages) == ["@x/core", "@x/ui", "@x/web", "admin"]
    assert ws.packages["@x/web"].internal == ("@x/ui",)
    assert ws.packages["admin"].internal == ("@x/core",)
    assert [p.slug for p in ws.apps] == ["admin", "web"] or sorted(p.slug for p in ws.apps) == [
        "admin",
        "web",
    ]
    assert ws.find("web").name == "@x/web"
    assert ws.find("apps/admin").name == "admin"
    with pytest.raises(UserError, match="no package 'nope'"):
        ws.find("nope")


def test_yarn_object_form_and_pnpm_workspace_file(tmp_path: Path) -> None:
    yarn = small_workspace(tmp_path / "y", {"packages": ["apps/*", "libs/*"]})
    write(yarn, "yarn.lock", "# yarn lockfile v1\n")
    assert load_workspace(yarn).manager == "yarn"
    pnpm = small_workspace(tmp_path / "p")
    write(pnpm, "package.json", {"name": "r"})
    write(pnpm, "pnpm-workspace.yaml", "packages:\n  - 'apps/*'\n  - 'libs/*'\n  - '!libs/ui'\n")
    ws = load_workspace(pnpm)
    assert ws.manager == "pnpm"
    assert "@x/ui" not in ws.packages and "@x/core" in ws.packages


def test_task_graph_orders_builds_after_dependencies_and_keeps_noop_nodes(tmp_path: Path) -> None:
    ws = load_workspace(small_workspace(tmp_path))
    graph = build_graph(ws)
    order = graph.order()
    assert order.index("@x/core#build") < order.index("@x/ui#build") < order.index("@x/web#build")
    assert not graph.tasks["@x/core#build"].runnable  # no script: a no-op that still carries a hash
    assert graph.tasks["@x/web#build"].deps == ("@x/ui#build",)
    assert graph.closure(["@x/web#build"]) == {"@x/web#build", "@x/ui#build", "@x/core#build"}
    assert graph.upstream_of(["@x/core#build"]) == set(graph.tasks)
    chain, seconds = graph.critical_path(
        {"@x/core#build": 1, "@x/ui#build": 2, "@x/web#build": 3, "admin#build": 4}
    )
    assert chain == ["@x/core#build", "@x/ui#build", "@x/web#build"] and seconds == 6


def test_cycle_is_a_user_error_naming_the_loop(tmp_path: Path) -> None:
    root = small_workspace(tmp_path)
    write(root, "libs/core/package.json", {"name": "@x/core", "dependencies": {"@x/ui": "*"}})
    with pytest.raises(UserError, match="cycle: @x/core#build -> @x/ui#build -> @x/core#build"):
        build_graph(load_workspace(root))


def test_config_errors_name_the_line_or_field(tmp_path: Path) -> None:
    with pytest.raises(UserError) as bad_toml:
        parse_config("[tasks.build]\noutputs = [\n", "freight.toml")
    assert bad_toml.value.where is not None and bad_toml.value.where.startswith("freight.toml:")
    with pytest.raises(UserError) as unknown:
        parse_config("[tasks.build]\noutput = ['dist/**']\n", "freight.toml")
    assert unknown.value.where == "freight.toml: tasks.build.output"
    with pytest.raises(UserError, match="relative glob"):
        parse_config("[tasks.build]\noutputs = ['../x/**']\n")
    with pytest.raises(UserError, match="unknown task 'lint'"):
        parse_config("[tasks.test]\ndepends_on = ['lint']\n")
    with pytest.raises(UserError) as memory:
        parse_config("[tasks.build]\nmemory = 'lots'\n")
    assert memory.value.where == "freight.toml: tasks.build.memory"
    config = parse_config("[tasks.build]\nmemory = '2G'\nenv = ['API_*']\n[apps.web]\nprefix = '/w'\n")
    assert config.tasks["build"].memory == 2 << 30
    assert config.apps["web"].prefix == "/w/"


def test_app_section_must_name_an_app(tmp_path: Path) -> None:
    root = small_workspace(tmp_path)
    write(root, "freight.toml", "[apps.shop]\nprefix = '/shop/'\n")
    with pytest.raises(UserError, match=r"\[apps.shop\] names no app"):
        load_workspace(root)


def test_bad_package_json_points_at_the_line(tmp_path: Path) -> None:
    root = small_workspace(tmp_path)
    write(root, "apps/web/package.json", '{\n  "name": "@x/web",\n  oops\n}')
    with pytest.raises(UserError) as exc:
        load_workspace(root)
    assert exc.value.where == f"{root}/apps/web/package.json:3"


def test_not_a_workspace(tmp_path: Path) -> None:
    write(tmp_path, "package.json", {"name": "solo"})
    with pytest.raises(UserError, match="no JS workspace here"):
        load_workspace(tmp_path)


def test_a_cycle_through_task_depends_on_names_freight_toml(tmp_path: Path) -> None:
    root = small_workspace(tmp_path)
    write(
        root,
        "freight.toml",
        "[tasks.build]\ndepends_on = ['^build', 'lint']\n[tasks.lint]\ndepends_on = ['build']\n",
    )
    with pytest.raises(UserError, match="cycle: @x/core#build -> @x/core#lint -> @x/core#build") as exc:
        build_graph(load_workspace(root), ["build"])
    assert exc.value.where == "freight.toml: tasks.build.depends_on"


def test_freight_toml_rejects_a_self_dependency_bad_env_names_and_outside_globals() -> None:
    with pytest.raises(UserError, match="'build' depends on itself") as self_dep:
        parse_config("[tasks.build]\ndepends_on = ['build']\n")
    assert self_dep.value.where == "freight.toml: tasks.build.depends_on"
    with pytest.raises(UserError, match="'bad env' is not an environment name") as app_env:
        parse_config("[apps.web]\ndeploy = { main = 'bad env' }\n")
    assert app_env.value.where == "freight.toml: apps.web.deploy"
    with pytest.raises(UserError) as branches:
        parse_config("[deploy]\nbranches = { main = '-x' }\n")
    assert branches.value.where == "freight.toml: deploy.branches"
    with pytest.raises(UserError, match="relative glob inside the workspace") as outside:
        parse_config("[workspace]\nglobal_inputs = ['/etc/passwd']\n")
    assert outside.value.where == "freight.toml: workspace.global_inputs"


def test_a_task_no_package_has_a_script_for_is_a_user_error(tmp_path: Path) -> None:
    root = small_workspace(tmp_path)
    write(root, "freight.toml", "[tasks.lint]\n")
    with pytest.raises(UserError, match="no package of the workspace has a 'lint' script"):
        make_plan(root, PlanOptions(tasks=("lint",)))
    assert make_plan(root, PlanOptions(tasks=("build",))).graph.tasks


def test_a_missing_folder_or_a_file_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such folder") as missing:
        load_workspace(tmp_path / "nope")
    assert missing.value.where == str(tmp_path / "nope")
    write(tmp_path, "file.txt", "x")
    with pytest.raises(UserError, match="not a folder"):
        load_workspace(tmp_path / "file.txt")


def test_package_json_sections_of_the_wrong_type_are_named(tmp_path: Path) -> None:
    root = small_workspace(tmp_path)
    write(root, "apps/web/package.json", {"name": "@x/web", "scripts": {"build": 5}})
    with pytest.raises(UserError, match="a script must be a command line") as script:
        load_workspace(root)
    assert script.value.where == f"{root}/apps/web/package.json: scripts.build"
    write(root, "apps/web/package.json", {"name": "@x/web", "dependencies": []})
    with pytest.raises(UserError, match="dependencies must be an object"):
        load_workspace(root)
    write(root, "apps/web/package.json", {"name": "@x/web", "scripts": []})
    with pytest.raises(UserError, match="scripts must be an object"):
        load_workspace(root)


@pytest.mark.parametrize(
    ("section", "where", "message"),
    [
        ("publish = '../../etc'", "publish", "relative folder inside the package"),
        ("publish = '/etc'", "publish", "relative folder inside the package"),
        ("immutable = ['/fonts/**']", "immutable", "inside the published folder"),
        ("hosts = ['bad host']", "hosts", "'bad host' is not a host name"),
        ("hosts = ['']", "hosts", "'' is not a host name"),
        ("prefix = '/_freight/x'", "prefix", "/_freight/ is the gateway's own"),
        ("memory = '0'", "memory", "too little memory"),
    ],
)
def test_app_sections_are_checked(section: str, where: str, message: str) -> None:
    """A publish folder outside the package would have published it (e.g. /etc) as a release."""
    with pytest.raises(UserError, match=message) as bad:
        parse_config(f"[apps.web]\n{section}\n")
    assert bad.value.where == f"freight.toml: apps.web.{where}"


def test_hosts_are_lower_case_and_task_memory_is_checked() -> None:
    assert parse_config("[apps.web]\nhosts = ['Shop.Example.com']\n").apps["web"].hosts == [
        "shop.example.com"
    ]
    with pytest.raises(UserError, match="too little memory") as bad:
        parse_config("[tasks.build]\nmemory = 1024\n")
    assert bad.value.where == "freight.toml: tasks.build.memory"
