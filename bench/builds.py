"""freight build against Turborepo 2, side by side on one generated 50-app workspace (real esbuild).

Both tools run as a user runs them (`freight build` and `turbo run build`, each a fresh process), on
the same folder, in the same run, alternating, in four scenarios:

- cold: every task runs (`--force` for both: nothing is read from the cache, entries are written);
- fully cached: nothing changed, every output in place;
- dist removed: every app's dist/ deleted, so every output comes from the cache;
- one app changed: a line appended to one app's source (a fresh change before each pair of runs).

A third contender, "freight, server up" (`freight_server`), is `freight build --no-publish` with
FREIGHT_URL and FREIGHT_TOKEN set: the bench starts `freight up` on a free port with a FREIGHT_HOME of
its own (its own cache, store and plan memo, as plain freight has its own and turbo its .turbo/: no
contender is answered from another's cache) and an admin token, and the build is handed to that warm
process (builds/handover.py). The server stays up through the whole bench, idle while the others run.

The floor is the same builds started straight by `xargs -P2 sh` (node_modules/.bin on PATH), no
orchestrator, no cache. Each figure is the median of --repeat runs; after every freight run the
bench counts stale files (an output file no fresh build would produce) in the apps' dist/ folders.

Prints the figures and writes bench/results/builds.json.

    python bench/builds.py [--apps 50] [--lines 400] [--repeat 3] [--esbuild 0.28.2] [--turbo 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import freight
from freight.builds.sample import generate, git_init

RESULTS = Path(__file__).parent / "results"
FREIGHT = Path(sys.executable).with_name("freight")

TURBO_JSON = {
    "$schema": "https://turbo.build/schema.json",
    "tasks": {"build": {"dependsOn": ["^build"], "outputs": ["dist/**"], "env": ["SAMPLE_FLAVOUR"]}},
}


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr.decode()[-3000:]}")
    return seconds


def prepare(root: Path, apps: int, lines: int, esbuild: str, turbo: str) -> float:
    """The workspace with esbuild and turbo installed and committed; returns npm install's seconds."""
    generate(root, apps, esbuild_version=esbuild, lines=lines)
    manifest = json.loads((root / "package.json").read_text())
    npm_version = subprocess.run(["npm", "--version"], capture_output=True, text=True, check=True)
    manifest["packageManager"] = f"npm@{npm_version.stdout.strip()}"  # turbo 2 requires it
    manifest["devDependencies"]["turbo"] = turbo
    (root / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (root / "turbo.json").write_text(json.dumps(TURBO_JSON, indent=2) + "\n")
    with (root / ".gitignore").open("a") as handle:
        handle.write(".turbo/\n")
    start = time.perf_counter()
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefer-offline"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - start
    git_init(root)
    return seconds


def app_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "apps").iterdir() if p.is_dir())


def stale_files(root: Path) -> int:
    """Files in dist/ that index.html does not name (besides the JS's own source map): left-overs."""
    stale = 0
    for app in app_dirs(root):
        dist = app / "dist"
        if not dist.is_dir():
            continue
        html = (dist / "index.html").read_text() if (dist / "index.html").exists() else ""
        for path in dist.rglob("*"):
            if not path.is_file() or path.name == "index.html":
                continue
            name = path.name.removesuffix(".map")
            if name not in html:
                stale += 1
    return stale


def xargs_floor(root: Path, env: dict[str, str]) -> float:
    """The apps' builds started straight by `xargs -P2 sh`: no orchestrator, no cache."""
    bins = f"{root}/node_modules/.bin"
    listing = "".join(f"{p}\n" for p in app_dirs(root))
    start = time.perf_counter()
    subprocess.run(
        [
            "xargs",
            "-P2",
            "-I{}",
            "sh",
            "-c",
            f'cd "{{}}" && PATH="$PWD/node_modules/.bin:{bins}:$PATH" sample-build',
        ],
        input=listing.encode(),
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


@contextmanager
def freight_server(home: Path, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """`freight up` on a free port with its own FREIGHT_HOME and an admin token; the env a
    `freight build` hands its builds over with."""
    # a cgroup parent of its own: its slots are not plain freight's
    server_env = {
        **env,
        "FREIGHT_HOME": str(home),
        "FREIGHT_CGROUP_PARENT": f"{env['FREIGHT_CGROUP_PARENT']}-up",
    }
    made = subprocess.run(
        [str(FREIGHT), "tokens", "create", "--name", "bench", "--admin", "--json"],
        env=server_env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = json.loads(made.stdout)["token"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(FREIGHT), "up", "--port", str(port)], env=server_env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"freight up did not start: {(home / 'server.log').read_text()[-3000:]}")
            time.sleep(0.1)
        yield {**server_env, "FREIGHT_URL": url, "FREIGHT_TOKEN": token}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--lines", type=int, default=400, help="generated functions per app")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--esbuild", default="0.28.2")
    parser.add_argument("--turbo", default="^2")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold runs and the xargs floor")
    parser.add_argument("--no-server", action="store_true", help="skip the `freight up` contender")
    parser.add_argument(
        "--compare", type=Path, help="also run freight from this checkout's src/ (an A/B under the same load)"
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="freight-bench-builds-") as tmp_text, ExitStack() as stack:
        tmp = Path(tmp_text)
        root = tmp / "ws"
        npm_install = prepare(root, args.apps, args.lines, args.esbuild, args.turbo)
        env = {
            **os.environ,
            "FREIGHT_HOME": str(tmp / "home"),
            "FREIGHT_CGROUP_PARENT": f"freight-bb-{os.getpid()}",
            "TURBO_TELEMETRY_DISABLED": "1",
            "TURBO_NO_UPDATE_NOTIFIER": "1",
            "DO_NOT_TRACK": "1",
        }
        env.pop("FREIGHT_URL", None)
        turbo_version = subprocess.run(
            [str(root / "node_modules/.bin/turbo"), "--version"], capture_output=True, text=True, env=env
        ).stdout.strip()
        freight_cmd = [str(FREIGHT), "build", "--no-publish"]
        turbo_cmd = [str(root / "node_modules/.bin/turbo"), "run", "build", "--output-logs=errors-only"]
        tools: dict[str, list[str]] = {"freight": freight_cmd, "turbo": turbo_cmd}
        envs = {"freight": env, "turbo": env}
        if args.compare:
            tools["freight_base"] = [sys.executable, "-m", "freight.cli.main", "build", "--no-publish"]
            base_src = args.compare.resolve() / "src"
            envs["freight_base"] = {
                **env,
                "PYTHONPATH": str(base_src),
                "FREIGHT_HOME": str(tmp / "home-base"),
            }
        if not args.no_server:
            (tmp / "home-server").mkdir()
            tools["freight_server"] = freight_cmd
            envs["freight_server"] = stack.enter_context(freight_server(tmp / "home-server", env))
        times: dict[str, dict[str, list[float]]] = {s: {t: [] for t in tools} for s in SCENARIOS}
        stale: dict[str, int] = {t: 0 for t in tools}
        floor: list[float] = []
        # freight's bytecode compiled, as a pip install does (with PYTHONDONTWRITEBYTECODE set, as it
        # is in some shells, an editable checkout would otherwise compile every module on every run)
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(Path(freight.__file__).parent)], check=True
        )
        # warm-up: fill both caches once (and the freight home, its store and its migrations)
        for name, argv in tools.items():
            run(argv, root, envs[name])
        changed = app_dirs(root)[len(app_dirs(root)) // 2] / "src" / "main.js"
        for rep in range(args.repeat):
            order = list(tools) if rep % 2 == 0 else list(reversed(tools))
            for name in order if not args.no_cold else ():
                times["cold"][name].append(run([*tools[name], "--force"], root, envs[name]))
            if not args.no_cold:
                floor.append(xargs_floor(root, env))
            for name in order:
                times["fully_cached"][name].append(run(tools[name], root, envs[name]))
                stale[name] += stale_files(root)
            for name in order:
                for app in app_dirs(root):
                    shutil.rmtree(app / "dist", ignore_errors=True)
                times["dist_removed"][name].append(run(tools[name], root, envs[name]))
                stale[name] += stale_files(root)
            for name in order:
                with changed.open("a") as handle:
                    handle.write(f"export const bench{rep}{name} = {rep};\n")
                times["one_app_changed"][name].append(run(tools[name], root, envs[name]))
                stale[name] += stale_files(root)
        # Back to a version both caches hold while a newer bundle sits in dist/: a restore that does
        # not clear the folder first leaves that bundle next to the restored one.
        for name in tools:
            subprocess.run(["git", "checkout", "-q", "--", str(changed)], cwd=root, check=True)
            run(tools[name], root, envs[name])  # every app cached, the changed one restored over its dist/
            stale[name] += stale_files(root)
            with changed.open("a") as handle:
                handle.write(f"export const again{name} = 1;\n")
            run(tools[name], root, envs[name])
        startup = [run([sys.executable, "-c", "import freight.cli.main"], root, env) for _ in range(5)]

    times = {s: by for s, by in times.items() if all(by.values())}
    medians = {s: {t: statistics.median(v) for t, v in by.items()} for s, by in times.items()}
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": host.python_version(), "load": os.getloadavg()},
        "workspace": {"apps": args.apps, "lines_per_app": args.lines, "esbuild": args.esbuild},
        "turbo": turbo_version,
        "repeat": args.repeat,
        "npm_install_seconds": round(npm_install, 3),
        "seconds": {s: {t: [round(x, 4) for x in v] for t, v in by.items()} for s, by in times.items()},
        "median_seconds": {s: {t: round(v, 4) for t, v in by.items()} for s, by in medians.items()},
        "ratio_freight_to_turbo": {s: round(m["freight"] / m["turbo"], 3) for s, m in medians.items()},
        "ratio_base_to_turbo": {
            s: round(m["freight_base"] / m["turbo"], 3) for s, m in medians.items() if "freight_base" in m
        },
        "ratio_server_to_turbo": {
            s: round(m["freight_server"] / m["turbo"], 3) for s, m in medians.items() if "freight_server" in m
        },
        "ratio_server_to_turbo_paired": {
            s: round(
                statistics.median(a / b for a, b in zip(by["freight_server"], by["turbo"], strict=True)), 3
            )
            for s, by in times.items()
            if "freight_server" in by
        },
        "compare": str(args.compare) if args.compare else None,
        "xargs_floor_seconds": round(statistics.median(floor), 4) if floor else None,
        "freight_cli_import_seconds": round(statistics.median(startup), 4),
        "stale_files": stale,
    }
    (RESULTS / "builds.json").write_text(json.dumps(result, indent=2))
    print(f"{args.apps} apps, turbo {turbo_version}, median of {args.repeat}, load {os.getloadavg()[0]:.1f}")
    others = [t for t in tools if t != "turbo"]
    print(f"{'scenario':<18}{'turbo':>10}" + "".join(f"{t:>16}{'ratio':>7}" for t in others))
    for scenario, m in medians.items():
        line = f"{scenario:<18}{m['turbo']:>9.3f}s"
        for t in others:
            line += f"{m[t]:>15.3f}s{m[t] / m['turbo']:>7.2f}"
        print(line)
    if floor:
        floor_s = result["xargs_floor_seconds"]
        print(f"xargs -P2 sh floor: {floor_s:.3f}s ({floor_s / medians['cold']['turbo']:.2f}x turbo's cold)")
    print("stale output files left: " + ", ".join(f"{t} {n}" for t, n in stale.items()))
    print(f"of freight's times, importing its CLI: {result['freight_cli_import_seconds']:.3f}s")


SCENARIOS: tuple[str, ...] = ("cold", "fully_cached", "dist_removed", "one_app_changed")

if __name__ == "__main__":
    main()
