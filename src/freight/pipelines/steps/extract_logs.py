"""extract-logs: the new lines of a log and its rotated copies, resumable and loaded exactly once.

Files are told apart by device and inode, not by name, so `app.log` renamed to `app.log.1` by a
rotation keeps its offset. Each run reads every matching file from its committed offset to its last
complete line (a line still being written waits for the next run); a file shorter than its offset
was truncated (copytruncate) and is read from the start. The offsets are one cursor, committed with
the load in the warehouse transaction (see connectors/cursor_state.py), so a killed run neither
skips nor repeats lines. Compressed rotations (`.gz`) are skipped: offsets into them mean nothing.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from freight.connectors.cursor_state import Cursor
from freight.errors import UserError
from freight.pipelines.datasets import DatasetWriter
from freight.pipelines.step import StepContext
from freight.pipelines.steps.extract_http import Rows

if TYPE_CHECKING:
    import pyarrow as pa

OFFSETS = "offsets"


def file_id(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def log_files(pattern: str) -> list[str]:
    """Matching regular files, oldest first (rotated copies before the live log)."""
    paths = [p for p in glob.glob(pattern) if os.path.isfile(p) and not p.endswith(".gz")]
    return sorted(paths, key=lambda p: (os.stat(p).st_mtime_ns, p))


def extract_logs(ctx: StepContext) -> None:
    from freight.pipelines.steps.incremental import describe_range, last_committed

    cfg = ctx.config
    name, wh_name, last = last_committed(ctx)
    offsets: dict[str, int] = json.loads(last.value) if last is not None else {}
    pattern = ctx.paths.get("path", cfg["path"])
    if not os.path.isabs(pattern) and ctx.paths.get("base_dir"):
        pattern = str(Path(ctx.paths["base_dir"]) / pattern)
    parse = _parser(cfg, where=f"steps.{ctx.name}")
    rows = Rows({k: str(v) for k, v in (cfg.get("columns") or {}).items()}, where=f"steps.{ctx.name}")
    new: dict[str, int] = {}
    counts = {"files": 0, "lines": 0, "skipped": 0}
    batch_lines = int(cfg.get("batch_lines") or 50_000)

    def batches() -> Iterator[pa.RecordBatch]:
        for path in log_files(pattern):
            key = file_id(path)
            start = offsets.get(key, 0)
            if os.path.getsize(path) < start:
                start = 0  # truncated in place: a new file under the same inode
            counts["files"] += 1
            records: list[dict[str, Any]] = []
            for lineno, line, end in _lines(path, start):
                record = parse(line, f"{path}:{lineno}" if start == 0 else f"{path} at byte {end}")
                new[key] = end
                counts["lines"] += 1
                if record is None:
                    counts["skipped"] += 1
                    continue
                records.append(record)
                if len(records) >= batch_lines:
                    if (batch := rows.batch(records)) is not None:
                        yield batch
                    records = []
            new.setdefault(key, start)
            if (batch := rows.batch(records)) is not None:
                yield batch

    writer = DatasetWriter(ctx.output())
    writer.write_all(batches())
    # Files that vanished (rotated away and deleted) drop out of the cursor.
    cursor = Cursor(json.dumps(new, sort_keys=True), OFFSETS)
    if last is not None and json.loads(last.value) == new:
        cursor = last
    ctx.result.update({"rows": writer.rows, **counts})
    ctx.result["incremental"] = describe_range(name, wh_name, "", last, cursor if new or last else None)


def _lines(path: str, start: int) -> Iterator[tuple[int, str, int]]:
    """(line number when read from the start, text, offset after it) of each complete line."""
    with open(path, "rb") as f:
        f.seek(start)
        offset = start
        for lineno, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                return  # still being written
            offset += len(raw)
            yield lineno, raw.decode("utf-8", "replace").rstrip("\r\n"), offset


def _parser(cfg: dict[str, Any], *, where: str) -> Any:
    skip = cfg.get("on_bad_line", "fail") == "skip"

    def bad(at: str, what: str) -> None:
        if not skip:
            raise UserError(
                f"{at}: {what}", where=f"{where}.on_bad_line", hint="fix the line, or set on_bad_line: skip"
            )

    if cfg.get("format", "jsonl") == "regex":
        regex = re.compile(cfg["pattern"])

        def by_regex(line: str, at: str) -> dict[str, Any] | None:
            match = regex.search(line)
            if match is None:
                bad(at, "the line does not match `pattern`")
                return None
            return match.groupdict()

        return by_regex

    def by_json(line: str, at: str) -> dict[str, Any] | None:
        if not line.strip():
            return None
        try:
            value = json.loads(line)
        except ValueError as exc:
            bad(at, f"not JSON: {exc}")
            return None
        if not isinstance(value, dict):
            bad(at, "not a JSON object")
            return None
        return value

    return by_json
