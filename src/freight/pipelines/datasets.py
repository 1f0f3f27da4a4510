"""Step outputs: Parquet datasets under `runs/<pipeline>/<run>/<step>/` in the object store.

A dataset is a folder of `part-NNNNN.parquet` files written batch by batch (each batch becomes a row
group, so memory stays bounded by the batch), plus `_result.json` with what the step measured. Files
appear atomically: on a local store they are written under a dot-name and renamed; elsewhere they are
written to a local temp file and uploaded in one PUT. A dataset with no rows still has one file that
holds its schema, so the next step knows the columns.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from freight.storage.objectstore import ObjectStore

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

RESULT = "_result.json"
ROWS_PER_FILE = 2_000_000


def store_for(url: str) -> ObjectStore:
    return ObjectStore(url)


class DatasetWriter:
    """Write batches into part files, starting a new file every `rows_per_file` rows."""

    def __init__(
        self, store: ObjectStore, *, rows_per_file: int = ROWS_PER_FILE, schema: pa.Schema | None = None
    ) -> None:
        self.store = store
        self.rows_per_file = rows_per_file
        self.rows = 0
        self.files: list[str] = []
        self._writer: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._file_rows = 0
        #: The columns of an empty dataset (otherwise the first batch's).
        self._schema: pa.Schema | None = schema

    def write_all(self, batches: Iterable[pa.RecordBatch], schema: pa.Schema | None = None) -> int:
        if schema is not None:
            self._schema = schema
        for batch in batches:
            self.write(batch)
        self.close()
        return self.rows

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            self._schema = self._schema or batch.schema
            return
        if self._writer is None:
            self._open(batch.schema)
        assert self._writer is not None
        self._writer.write_batch(batch)
        self.rows += batch.num_rows
        self._file_rows += batch.num_rows
        if self._file_rows >= self.rows_per_file:
            self._finish_file()

    def close(self) -> None:
        if self._writer is not None:
            self._finish_file()
        if not self.files:
            import pyarrow as pa

            self._open(self._schema or pa.schema([]))
            self._finish_file()

    def _open(self, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self._schema = schema
        key = f"part-{len(self.files):05d}.parquet"
        local = self.store.local_path(key)
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = local.parent / f".{key}.tmp"
        else:
            fd, name = tempfile.mkstemp(suffix=".parquet")
            os.close(fd)
            self._tmp = Path(name)
        # snappy: cheap to write and read; the data lives only until the run is cleaned up.
        self._writer = pq.ParquetWriter(str(self._tmp), schema, compression="snappy", use_dictionary=False)
        self._file_rows = 0

    def _finish_file(self) -> None:
        assert self._writer is not None and self._tmp is not None
        self._writer.close()
        key = f"part-{len(self.files):05d}.parquet"
        local = self.store.local_path(key)
        if local is not None:
            os.replace(self._tmp, local)
        else:
            self.store.put_file(key, self._tmp)
            self._tmp.unlink(missing_ok=True)
        self.files.append(key)
        self._writer = None
        self._tmp = None


def part_keys(store: ObjectStore) -> list[str]:
    return [k for k in store.list("") if k.rsplit("/", 1)[-1].startswith("part-") and k.endswith(".parquet")]


def local_files(store: ObjectStore, scratch: Path) -> list[str]:
    """Paths a local reader (DuckDB) can open; remote parts are downloaded into `scratch` first, in
    a folder of this dataset's own: every dataset names its parts alike (part-00000.parquet), so
    the inputs of one step must not share a folder."""
    keys = part_keys(store)
    out = []
    folder = scratch / hashlib.sha256(store.url.encode()).hexdigest()[:16]
    for key in keys:
        path = store.local_path(key)
        if path is None:
            path = folder / key.replace("/", "_")
            store.get_file(key, path)
        out.append(str(path))
    return out


def read_dataset(store: ObjectStore, batch_size: int = 65_536) -> pa.RecordBatchReader:
    """Stream every part file's batches, in order, as one reader."""
    import pyarrow as pa

    keys = part_keys(store)
    if not keys:
        from freight.errors import TerminalError

        raise TerminalError(f"the dataset at {store.url} has no part files")
    first = _parquet(store, keys[0])
    schema = first.schema_arrow

    def batches() -> Iterator[pa.RecordBatch]:
        for i, key in enumerate(keys):
            parquet: pq.ParquetFile = first if i == 0 else _parquet(store, key)
            yield from parquet.iter_batches(batch_size=batch_size)

    return pa.RecordBatchReader.from_batches(schema, batches())


def count_rows(store: ObjectStore) -> int:
    return sum(_parquet(store, key).metadata.num_rows for key in part_keys(store))


def _parquet(store: ObjectStore, key: str) -> pq.ParquetFile:
    import pyarrow.parquet as pq

    path = store.local_path(key)
    return pq.ParquetFile(str(path) if path is not None else store.open(key))


def write_result(store: ObjectStore, result: dict[str, Any]) -> None:
    store.put_bytes(RESULT, json.dumps(result, default=str).encode())


def read_result(store: ObjectStore) -> dict[str, Any] | None:
    if not store.exists(RESULT):
        return None
    data: dict[str, Any] = json.loads(store.get_bytes(RESULT))
    return data
