"""A fused `extract-sql` → `load` (pipelines/fusion.py): one process, two step results.

The source's Arrow batches stream straight into the warehouse loader (COPY for PostgreSQL, an Arrow
scan for DuckDB); on the way, each batch is first written to the extract's Parquet dataset, so the
dataset is the same one an unfused extract writes (reruns reuse it, people inspect it). Each step
gets its own `_result.json`: rows, timings, errors.

Who failed:
- the source (or writing its dataset) fails: the extract failed; the load, which ran inside one
  transaction and rolled back, is `upstream_failed`;
- the load fails: the rest of the source is still read into the dataset, so the extract succeeds and
  a rerun from the failed step loads the kept dataset without reading the source again.

Incremental extracts stay exactly once: the cursor range is fixed before the first row is read, and
the load stages the rows and moves the cursor in the same warehouse transaction as the rows it applies,
exactly as an unfused load does (steps/incremental.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from freight.pipelines.datasets import RESULT, DatasetWriter, write_result
from freight.pipelines.step import _T0, StepContext, _peak_rss, describe
from freight.pipelines.steps.extract import open_sql
from freight.pipelines.steps.incremental import staged_load
from freight.pipelines.steps.load import load_into, warehouse_for

if TYPE_CHECKING:
    import pyarrow as pa


class Tee:
    """The source's batches, each kept in the extract's dataset before the load gets it."""

    def __init__(self, reader: pa.RecordBatchReader, writer: DatasetWriter) -> None:
        self.reader = reader
        self.writer = writer
        #: What stopped the source (or its dataset), if anything did.
        self.error: BaseException | None = None
        self.done = False
        self.ended_at: float | None = None

    def stream(self) -> pa.RecordBatchReader:
        import pyarrow as pa

        return pa.RecordBatchReader.from_batches(self.reader.schema, self._batches())

    def drain(self) -> None:
        """Keep what the load did not read (it failed, or needed none of it)."""
        while not self.done and self.error is None:
            self._pull()

    def _batches(self) -> Iterator[pa.RecordBatch]:
        while (batch := self._pull()) is not None:
            yield batch

    def _pull(self) -> pa.RecordBatch | None:
        try:
            try:
                batch = self.reader.read_next_batch()
            except StopIteration:
                self.writer.close()
                self.done, self.ended_at = True, time.time()
                return None
            self.writer.write(batch)
            return batch
        except BaseException as exc:
            self.error = exc
            raise


def run_pair(extract: StepContext, load: StepContext) -> None:
    """Run both steps, write both results; raises the error of the step that failed."""
    for ctx, other in ((extract, load), (load, extract)):
        ctx.result.update({"step": ctx.name, "type": ctx.type, "checks": [], "fused_with": other.name})
        store = ctx.output()
        if store.exists(RESULT):  # an earlier attempt's: this attempt's replaces it
            store.delete(RESULT)
    started = time.time()
    extract_error: BaseException | None = None
    load_error: BaseException | None = None
    tee: Tee | None = None
    cursor_range: dict[str, Any] | None = None
    try:
        reader, cursor_range = open_sql(extract)
        tee = Tee(reader, DatasetWriter(extract.output(), schema=reader.schema))
    except BaseException as exc:
        extract_error = exc
    if tee is not None:
        try:
            _load(load, tee.stream(), cursor_range)
        except BaseException as exc:
            load_error = exc
        if tee.error is None:
            with contextlib.suppress(BaseException):  # recorded in tee.error
                tee.drain()
        if tee.error is not None:
            extract_error, load_error = tee.error, None
    now = time.time()
    if extract_error is None and tee is not None:
        extract.result.update({"rows": tee.writer.rows, "files": len(tee.writer.files)})
        if cursor_range is not None:
            extract.result["incremental"] = cursor_range
    if extract_error is not None:
        extract.result["error"] = describe(extract_error)
        load.result.update({"error": f"upstream step {extract.name} failed", "upstream_failed": True})
    elif load_error is not None:
        load.result["error"] = describe(load_error)
    extract_end = tee.ended_at if tee is not None and tee.ended_at is not None else now
    for ctx, ended in ((extract, extract_end), (load, now)):
        ctx.result["metrics"] = {
            "work_s": round(ended - started, 4),
            "process_s": round(time.perf_counter() - _T0, 4),
            "peak_rss": _peak_rss(),
            "ended_at": ended,
        }
        write_result(ctx.output(), ctx.result)
    if extract_error is not None:
        raise extract_error
    if load_error is not None:
        raise load_error


def _load(ctx: StepContext, rows: pa.RecordBatchReader, cursor_range: dict[str, Any] | None) -> None:
    """The load step's work on streamed rows (steps/load.py reads them from the dataset instead)."""
    if cursor_range is not None or ctx.config.get("mode") in ("merge", "delete_insert"):
        staged_load(ctx, cursor_range, rows=rows)
        return
    load_into(ctx, warehouse_for(ctx, fused=True), rows)
