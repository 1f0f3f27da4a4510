"""Read CSV, TSV, JSON lines or Parquet files — local or in an object store, by glob — as Arrow batches.

Every reader streams: CSV/TSV and JSON lines through pyarrow's incremental readers, Parquet by row
group. Empty text cells stay empty strings ('' is not NULL) and the text NULL stays text; only an empty cell
in a non-text column reads as NULL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from freight.errors import UserError

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("csv", "tsv", "jsonl", "parquet")
_EXT = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
}


@dataclass(frozen=True)
class FileSource:
    #: A glob: a local path, `file://...`, or any fsspec URL (s3://bucket/prefix/*.csv).
    pattern: str
    format: str | None = None
    header: bool = True
    delimiter: str | None = None
    #: Column name → Arrow type name ("int64", "string", "double", "timestamp[us]", "date32").
    column_types: dict[str, str] = field(default_factory=dict)
    batch_size: int = 65_536

    def files(self) -> list[str]:
        import fsspec

        fs, _ = fsspec.core.url_to_fs(self.pattern)
        if "://" in self.pattern:
            found = sorted(fs.glob(self.pattern.split("://", 1)[1]))
            prefix = self.pattern.split("://", 1)[0] + "://"
            paths = [p if "://" in p else prefix + p for p in found]
        else:
            paths = sorted(str(p) for p in fs.glob(self.pattern))
        paths = [p for p in paths if not Path(p).name.startswith(".")]
        if not paths:
            raise UserError(f"no files match {self.pattern!r}", hint="check the path and the glob")
        return paths

    def format_of(self, path: str) -> str:
        if self.format:
            return self.format
        suffix = Path(path.split("://")[-1]).suffix.lower()
        if suffix not in _EXT:
            raise UserError(
                f"cannot tell the format of {path!r}", hint=f"set format: one of {', '.join(FORMATS)}"
            )
        return _EXT[suffix]

    def batches(self) -> Iterator[pa.RecordBatch]:
        for path in self.files():
            yield from self._read(path, self.format_of(path))

    def _read(self, path: str, fmt: str) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        try:
            yield from self._read_file(path, fmt)
        except pa.ArrowInvalid as exc:  # bad data (a value not of its column's type, a broken file)
            raise UserError(
                f"cannot read {path!r} as {fmt}: {exc}",
                hint="fix the file, or declare the column's type in `columns`",
            ) from None

    def _read_file(self, path: str, fmt: str) -> Iterator[pa.RecordBatch]:
        import fsspec

        with fsspec.open(path, "rb") as handle:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                yield from pq.ParquetFile(handle).iter_batches(batch_size=self.batch_size)
            elif fmt == "jsonl":
                import pyarrow.json as pj

                yield from pj.open_json(handle, read_options=pj.ReadOptions(block_size=1 << 22))
            else:
                yield from self._read_csv(handle, "\t" if fmt == "tsv" else ",")

    def _read_csv(self, handle: Any, default_delimiter: str) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa
        import pyarrow.csv as pc

        types = {name: pa.type_for_alias(alias) for name, alias in self.column_types.items()}
        reader = pc.open_csv(
            handle,
            read_options=pc.ReadOptions(block_size=1 << 22, autogenerate_column_names=not self.header),
            parse_options=pc.ParseOptions(
                delimiter=self.delimiter or default_delimiter, newlines_in_values=True
            ),
            convert_options=pc.ConvertOptions(
                column_types=types, null_values=[""], strings_can_be_null=False
            ),
        )
        yield from reader
