"""A generated JS monorepo for tests, benchmarks and demos: N apps over shared packages, built by esbuild.

Layout::

    package.json            npm workspaces; esbuild pinned as the root's devDependency
    freight.toml
    packages/tooling        `sample-build`: bundles src/main.js with esbuild, writes dist/index.html
    packages/utils          shared code every app bundles
    packages/ui             shared code every app bundles (depends on utils)
    packages/charts         shared code every third app bundles
    apps/app-NN             one single-page app each
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

BUILD_SCRIPT = """\
#!/usr/bin/env node
// Bundles src/main.js into dist/assets/<name>-<hash>.js and writes dist/index.html pointing at it.
import { build } from "esbuild";
import { readFileSync, writeFileSync, rmSync } from "node:fs";

const pkg = JSON.parse(readFileSync("package.json", "utf8"));
const base = process.env.PUBLIC_BASE ?? `/${pkg.name.split("/").pop()}/`;
rmSync("dist", { recursive: true, force: true });
const result = await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: "es2020",
  outdir: "dist/assets",
  entryNames: "[name]-[hash]",
  metafile: true,
  logLevel: "warning",
});
const outputs = Object.keys(result.metafile.outputs).map((p) => p.replace(/^dist\\//, ""));
const js = outputs.find((p) => p.endsWith(".js"));
const css = outputs.find((p) => p.endsWith(".css"));
const html = readFileSync("index.html", "utf8")
  .replace("%SCRIPT%", base + js)
  .replace("%STYLE%", css ? `<link rel="stylesheet" href="${base + css}">` : "");
writeFileSync("dist/index.html", html);
console.log(`${pkg.name}: ${outputs.length} files, ${js}`);
"""

INDEX_HTML = """\
<!doctype html>
<html>
<head><meta charset="utf-8"><title>%TITLE%</title>%STYLE%</head>
<body><div id="app"></div><script type="module" src="%SCRIPT%"></script></body>
</html>
"""

FREIGHT_TOML = """\
[workspace]
apps = ["apps/*"]

[tasks.build]
depends_on = ["^build"]
outputs = ["dist/**"]
env = ["SAMPLE_FLAVOUR"]
cpus = 1
memory = "1G"
"""


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _shared_module(name: str, functions: int, imports: str = "") -> str:
    lines = [imports] if imports else []
    for i in range(functions):
        lines.append(
            f"export function {name}{i}(items) {{\n"
            f"  return items.map((x, j) => ({{ id: `{name}-{i}-${{j}}`, value: x * {i + 1} }}))"
            f".filter((x) => x.value % {i % 7 + 2} !== 0);\n}}"
        )
    return "\n".join(lines) + "\n"


def _app_module(index: int, lines: int, charts: bool) -> str:
    body = [
        'import { ui0, ui1 } from "@sample/ui";',
        'import { utils0 } from "@sample/utils";',
    ]
    if charts:
        body.append('import { charts0 } from "@sample/charts";')
    body.append('import "./style.css";')
    body.append(f"const APP = {index};")
    for i in range(lines):
        body.append(
            f"export function view{i}(state) {{ return ui0(utils0([APP, {i}, state.n]))"
            f".concat(ui1([{i}]))" + (f".concat(charts0([{i}]))" if charts else "") + "; }"
        )
    body.append('document.getElementById("app").textContent = JSON.stringify(view0({ n: APP }));')
    return "\n".join(body) + "\n"


def generate(
    root: Path, apps: int = 12, *, esbuild_version: str, lines: int = 60, shared_functions: int = 40
) -> Path:
    """Write the workspace (no node_modules, no lockfile) and return its root."""
    root.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": "sample-monorepo",
        "private": True,
        "workspaces": ["apps/*", "packages/*"],
        "devDependencies": {"esbuild": esbuild_version},
    }
    _write(root / "package.json", json.dumps(manifest, indent=2) + "\n")
    _write(root / "freight.toml", FREIGHT_TOML)
    _write(root / ".gitignore", "node_modules/\ndist/\n.freight/\n")
    tooling = root / "packages" / "tooling"
    _write(
        tooling / "package.json",
        json.dumps(
            {
                "name": "@sample/tooling",
                "version": "1.0.0",
                "type": "module",
                "bin": {"sample-build": "build.mjs"},
            },
            indent=2,
        ),
    )
    # Executable from the start: npm marks bins executable on install, which must not change the hash.
    _write(tooling / "build.mjs", BUILD_SCRIPT, 0o755)
    deps = {"utils": {}, "ui": {"@sample/utils": "*"}, "charts": {"@sample/utils": "*"}}
    for name, internal in deps.items():
        pkg = root / "packages" / name
        _write(
            pkg / "package.json",
            json.dumps(
                {
                    "name": f"@sample/{name}",
                    "version": "1.0.0",
                    "type": "module",
                    "main": "src/index.js",
                    "dependencies": internal,
                },
                indent=2,
            ),
        )
        imports = 'import { utils1 } from "@sample/utils";\nexport const helper = utils1;' if internal else ""
        _write(pkg / "src" / "index.js", _shared_module(name, shared_functions, imports))
    for index in range(1, apps + 1):
        name = f"app-{index:02d}"
        charts = index % 3 == 0
        app_deps = {"@sample/ui": "*", "@sample/utils": "*"}
        if charts:
            app_deps["@sample/charts"] = "*"
        pkg = root / "apps" / name
        _write(
            pkg / "package.json",
            json.dumps(
                {
                    "name": f"@sample/{name}",
                    "version": "1.0.0",
                    "private": True,
                    "type": "module",
                    "scripts": {"build": "sample-build"},
                    "dependencies": app_deps,
                    "devDependencies": {"@sample/tooling": "*"},
                },
                indent=2,
            ),
        )
        _write(pkg / "index.html", INDEX_HTML.replace("%TITLE%", name))
        _write(pkg / "src" / "main.js", _app_module(index, lines, charts))
        _write(pkg / "src" / "style.css", f"#app {{ color: #{index:06x}; font-family: sans-serif; }}\n")
    return root


def git_init(root: Path, message: str = "initial") -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "freight",
        "GIT_AUTHOR_EMAIL": "freight@example.invalid",
        "GIT_COMMITTER_NAME": "freight",
        "GIT_COMMITTER_EMAIL": "freight@example.invalid",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", message]):
        subprocess.run(["git", *args], cwd=root, check=True, env=env, capture_output=True)


def git_commit(root: Path, message: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "freight",
        "GIT_AUTHOR_EMAIL": "freight@example.invalid",
        "GIT_COMMITTER_NAME": "freight",
        "GIT_COMMITTER_EMAIL": "freight@example.invalid",
    }
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env, capture_output=True)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=root, check=True, env=env, capture_output=True)
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True, capture_output=True)
    return done.stdout.decode().strip()
