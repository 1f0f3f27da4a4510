"""The step process: `python -m freight.pipelines.step --run-dir URL --step NAME`.

(`--step EXTRACT --step LOAD` runs a fused extract-sql and its load in this one process: see
pipelines/fusion.py and steps/fused.py.)

Each pipeline step runs as one platform job executing this module. It reads the run's manifest, runs
the step, writes its output dataset and `_result.json`, and exits 0 (done), 1 (failed), 2 (bad input,
not worth a retry) or 3 (a QA check with on_fail: fail did not pass). Imports are lazy: this module
pulls in only the standard library, and each step type imports just what it needs (pyarrow, duckdb,
connectorx, psycopg), so a step pays only for its own tools. Every message it prints is redacted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from freight.connectors.connections import Connections
    from freight.storage.objectstore import ObjectStore

_T0 = time.perf_counter()

MANIFEST = "manifest.json"
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_CHECK_FAILED = 3

#: step type → "module:function" under freight.pipelines.steps
RUNNERS = {
    "extract-sql": "extract:extract_sql",
    "extract-files": "extract:extract_files",
    "extract-http": "extract_http:extract_http",
    "extract-logs": "extract_logs:extract_logs",
    "transform-sql": "transform:transform_sql",
    "transform-python": "transform:transform_python",
    "load": "load:load",
    "sql": "load:run_sql",
    "publish-redis": "publish:publish_redis",
    "check-primary-key": "checks:check_primary_key",
    "check-count": "checks:check_count",
    "check-columns": "checks:check_columns",
    "check-sql": "checks:check_sql",
}


class CheckFailed(Exception):
    """A QA check with on_fail: fail did not pass (its result is already recorded)."""


@dataclass
class StepContext:
    name: str
    type: str
    #: The step's validated fields (as the spec wrote them).
    config: dict[str, Any]
    #: File contents the step names (sql `file`, load `create`), read when the run was compiled.
    texts: dict[str, str]
    #: Absolute paths for files run in place (transform-python `script`).
    paths: dict[str, str]
    #: input step name → dataset URL
    inputs: dict[str, str]
    output_url: str
    run_url: str
    default_warehouse: str
    config_path: str | None
    home: str
    #: Memory this step may use (bytes), from its job's resources: sizes DuckDB's memory limit.
    memory: int | None = None
    cpus: float | None = None
    result: dict[str, Any] = field(default_factory=dict)
    _connections: Connections | None = None

    def output(self) -> ObjectStore:
        from freight.storage.objectstore import ObjectStore

        return ObjectStore(self.output_url)

    def input_store(self, name: str) -> ObjectStore:
        from freight.storage.objectstore import ObjectStore

        return ObjectStore(self.inputs[name])

    def connections(self) -> Connections:
        if self._connections is None:
            from freight.connectors.connections import load_connections

            self._connections = load_connections(
                Path(self.config_path) if self.config_path else None, home=Path(self.home)
            )
        return self._connections

    def warehouse_name(self) -> str:
        return str(self.config.get("warehouse") or self.default_warehouse)


def load_context(run_url: str, step: str) -> StepContext:
    from freight.storage.objectstore import ObjectStore

    manifest = json.loads(ObjectStore(run_url).get_bytes(MANIFEST))
    entry = manifest["steps"][step]
    return StepContext(
        name=step,
        type=entry["type"],
        config=entry["config"],
        texts=entry.get("texts", {}),
        paths=entry.get("paths", {}),
        inputs=entry.get("inputs", {}),
        output_url=entry["output_url"],
        run_url=run_url,
        default_warehouse=manifest["defaults"]["warehouse"],
        config_path=manifest.get("config_path"),
        home=manifest["home"],
        memory=entry.get("memory"),
        cpus=entry.get("cpus"),
    )


def run_step(ctx: StepContext) -> dict[str, Any]:
    """Run the step in this process; returns its result (also written to `_result.json`)."""
    import importlib

    from freight.pipelines.datasets import write_result

    module, func = RUNNERS[ctx.type].split(":")
    t_import = time.perf_counter()
    runner = getattr(importlib.import_module(f"freight.pipelines.steps.{module}"), func)
    t_work = time.perf_counter()
    ctx.result.update({"step": ctx.name, "type": ctx.type, "checks": []})
    error: BaseException | None = None
    try:
        runner(ctx)
    except BaseException as exc:
        error = exc
    done = time.perf_counter()
    ctx.result["metrics"] = {
        "import_s": round(t_work - t_import, 4),
        "work_s": round(done - t_work, 4),
        "process_s": round(done - _T0, 4),
        "peak_rss": _peak_rss(),
    }
    if error is not None and not isinstance(error, CheckFailed):
        ctx.result["error"] = describe(error)
    write_result(ctx.output(), ctx.result)
    if error is not None:
        raise error
    return ctx.result


def describe(exc: BaseException) -> str:
    from freight.connectors.connections import redact
    from freight.errors import UserError

    text = (
        str(exc)
        if isinstance(exc, UserError) or type(exc).__module__.startswith("freight")
        else (f"{type(exc).__name__}: {exc}")
    )
    return redact(one_line(text) or type(exc).__name__)


def one_line(text: str) -> str:
    """A step's error is one line (in the run table, the API, the UI). Database errors add context
    lines (`LINE 1: SELEC id FROM o`, candidate columns): keep them, joined; drop the caret under the
    spot, which means nothing once joined."""
    lines = (line.strip() for line in text.splitlines())
    return "; ".join(line for line in lines if line.strip("^ "))


def _peak_rss() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="freight.pipelines.step")
    parser.add_argument("--run-dir", required=True, help="URL of the run's folder in the object store")
    parser.add_argument(
        "--step",
        required=True,
        action="append",
        help="the step; twice for a fused extract-sql and its load (pipelines/fusion.py)",
    )
    args = parser.parse_args(argv)
    name = "+".join(args.step)
    try:
        contexts = [load_context(args.run_dir, step) for step in args.step]
        if len(contexts) == 2:
            from freight.pipelines.steps.fused import run_pair

            run_pair(*contexts)
        else:
            (ctx,) = contexts
            run_step(ctx)
    except CheckFailed as exc:
        print(f"step {name}: {describe(exc)}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    except Exception as exc:
        from freight.connectors.connections import redact
        from freight.errors import FreightError, UserError

        if not isinstance(exc, FreightError):
            print(redact(traceback.format_exc()), file=sys.stderr)
        print(f"step {name} failed: {describe(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(exc, UserError) else EXIT_FAILED
    for ctx in contexts:
        summary = {k: ctx.result[k] for k in ("rows", "metrics") if k in ctx.result}
        print(f"step {ctx.name} done: {json.dumps(summary)}", file=sys.stderr)
        for check in ctx.result.get("checks", []):
            print(f"check {check['check']}: {check['status']} — {check.get('message', '')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    # Run the copy imported under its real name, so `CheckFailed` raised by step code (which imports
    # freight.pipelines.step) is the class `main` catches, not a twin defined in __main__.
    from freight.pipelines.step import main as _main

    sys.exit(_main())
