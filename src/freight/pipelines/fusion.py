"""Which steps of a run share one job: an `extract-sql` feeding exactly one `load`.

Such a pair costs, unfused, two interpreters and a Parquet round trip: the extract writes every row
to the object store, the load reads every row back. Fused, one job streams the source's Arrow
batches into the warehouse while it writes the same rows as the extract's Parquet dataset (kept for
reruns and inspection), so the pair costs about the slower of the two instead of their sum. The run
still records two steps, each with its own state, rows and timing (steps/fused.py).

A pair fuses when all of these hold:
- the load's only input is the extract, and it waits for nothing else (`depends_on`);
- nothing else reads or waits for the extract (a check or a second load of the same data would need
  the dataset before the load ends);
- neither step is reused from an earlier run (a rerun that keeps the extract runs the load alone);
- neither the pipeline nor either step says `fuse: false`.

Pure: a function of the spec and the reused steps, unit-tested with plain specs.
"""

from __future__ import annotations

from collections.abc import Collection

from freight.pipelines.spec import PipelineSpec


def fused_pairs(spec: PipelineSpec, reuse: Collection[str] = ()) -> dict[str, str]:
    """extract step → the load step it fuses with."""
    if not spec.fuse:
        return {}
    readers: dict[str, list[str]] = {s.name: [] for s in spec.steps}
    for step in spec.steps:
        for upstream in {*step.inputs, *step.depends_on}:
            if upstream in readers:
                readers[upstream].append(step.name)
    pairs: dict[str, str] = {}
    for load in spec.steps:
        if load.type != "load" or not load.fuse or load.name in reuse:
            continue
        if len(load.inputs) != 1 or set(load.depends_on) - set(load.inputs):
            continue
        (source,) = load.inputs
        extract = spec.step(source)
        if extract.type != "extract-sql" or not extract.fuse or extract.name in reuse:
            continue
        if readers[extract.name] == [load.name]:
            pairs[extract.name] = load.name
    return pairs
