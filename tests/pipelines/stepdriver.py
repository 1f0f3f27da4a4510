"""Run a pipeline's steps in this process, in order, as the step jobs would (no platform, no jobs).

Used by tests that need many quick runs, and as a child process the kill test kills at random points:
`python tests/pipelines/stepdriver.py PIPELINE.yaml CONFIG.toml HOME ROOT_URL [--loop] [--fused]` prints
`extract`/`load`/`done` lines as it goes.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from freight.pipelines.fusion import fused_pairs
from freight.pipelines.loader import Pipeline, load_pipeline
from freight.pipelines.step import MANIFEST, load_context, run_step
from freight.pipelines.steps.fused import run_pair
from freight.storage.objectstore import ObjectStore


def manifest_for(pipeline: Pipeline, run_url: str, config: Path, home: Path, run_id: str) -> dict[str, Any]:
    spec = pipeline.spec
    steps: dict[str, Any] = {}
    for name in pipeline.dag.order():
        step = spec.step(name)
        steps[name] = {
            "type": step.type,
            "config": step.model_dump(mode="json", exclude_none=True),
            "texts": {},
            "paths": {},
            "inputs": {i: f"{run_url}/{i}" for i in step.inputs},
            "output_url": f"{run_url}/{name}",
        }
    return {
        "pipeline": spec.name,
        "run_id": run_id,
        "defaults": {"warehouse": spec.defaults.warehouse},
        "config_path": str(config),
        "home": str(home),
        "steps": steps,
    }


def run_once(
    pipeline: Pipeline, config: Path, home: Path, root: str, *, say: bool = False, fused: bool = False
) -> dict[str, Any]:
    """Run every step in order; with `fused`, an extract-sql and its load run as a fused job would."""
    run_id = uuid.uuid4().hex[:12]
    run_url = f"{root.rstrip('/')}/{run_id}"
    ObjectStore(run_url).put_bytes(
        MANIFEST, json.dumps(manifest_for(pipeline, run_url, config, home, run_id)).encode()
    )
    pairs = fused_pairs(pipeline.spec) if fused else {}
    results: dict[str, Any] = {}
    for name in pipeline.dag.order():
        if say:
            print(pipeline.spec.step(name).type.split("-")[0], flush=True)
        if name in pairs.values():
            continue  # ran with its extract
        if name in pairs:
            load = pairs[name]
            if say:
                print("load", flush=True)
            contexts = load_context(run_url, name), load_context(run_url, load)
            run_pair(*contexts)
            results[name], results[load] = contexts[0].result, contexts[1].result
            continue
        results[name] = run_step(load_context(run_url, name))
    if say:
        print("done", flush=True)
    return results


def main() -> None:
    pipeline_file, config, home, root, *rest = sys.argv[1:]
    pipeline = load_pipeline(pipeline_file)
    while True:
        run_once(pipeline, Path(config), Path(home), root, say=True, fused="--fused" in rest)
        if "--loop" not in rest:
            return


if __name__ == "__main__":
    os.environ.setdefault("RUST_LOG", "off")
    main()
