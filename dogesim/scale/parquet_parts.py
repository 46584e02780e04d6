"""Parquet parts: the shards' Parquet files merged into the one file the run asked for.

- `merge_parquet_parts(target, parts)`: the rows of `parts` (in shard order) merged by
  (timestamp, shard, order within the shard), streamed row group by row group into
  `target`; returns the number of rows.

The order is the line merge's (`dogesim.scale.parts.merge_parts`): each part's index holds
the run-length encoding of its rows' timestamps, and `heapq.merge` of those runs says which
part the next block of rows comes from, so the merged file is a function of the parts only.
Memory stays bounded: every part is read in record batches, and rows are written as the
parts' sink writes them: its codec, and row groups of its ``row_group_size`` rows (the last
one the rest). The merged file is
written beside `target` and renamed onto it once complete and fsynced.

Importing this module imports pyarrow (the ``parquet`` extra).
"""

from __future__ import annotations

import contextlib
import heapq
import os
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from dogesim.errors import SinkError
from dogesim.scale.parts import PartFile, part_runs, remove_parts

__all__ = ["merge_parquet_parts"]

#: Rows read from a part at a time.
_BATCH = 65_536


class _Rows:
    """One part's rows, handed out in order, a block at a time."""

    def __init__(self, part: PartFile, file: pq.ParquetFile, target: str) -> None:
        self.part = part
        self.target = target
        self._batches: Iterator[pa.RecordBatch] = file.iter_batches(batch_size=_BATCH)
        self._batch: pa.RecordBatch | None = None
        self._offset = 0

    def take(self, count: int) -> list[pa.RecordBatch]:
        """The part's next `count` rows, as slices of its record batches."""
        out: list[pa.RecordBatch] = []
        while count:
            if self._batch is None or self._offset == self._batch.num_rows:
                self._batch = next(self._batches, None)
                self._offset = 0
                if self._batch is None:
                    raise SinkError(
                        f"{self.target}: part {self.part.path} ends before its index says "
                        f"({count} rows missing)"
                    )
            taken = min(count, self._batch.num_rows - self._offset)
            out.append(self._batch.slice(self._offset, taken))
            self._offset += taken
            count -= taken
        return out

    def exhausted(self) -> bool:
        """Whether every row of the part was taken."""
        if self._batch is not None and self._offset < self._batch.num_rows:
            return False
        return all(batch.num_rows == 0 for batch in self._batches)


def _schema(files: Sequence[pq.ParquetFile], parts: Sequence[PartFile], target: str) -> pa.Schema:
    """The parts' one schema (parts without rows do not count: a shard without events may
    have inferred none)."""
    schema: pa.Schema | None = None
    for file, part in zip(files, parts, strict=True):
        if file.metadata.num_rows == 0:
            continue
        if schema is None:
            schema = file.schema_arrow
        elif not file.schema_arrow.equals(schema):
            raise SinkError(
                f"{target}: part {part.path} has the columns ({_columns(file.schema_arrow)}), "
                f"an earlier part ({_columns(schema)}): the shards inferred different schemas; "
                "declare the sink's schema (`schema:` in a model file, schema= in Python)"
            )
    return schema if schema is not None else files[0].schema_arrow


def _columns(schema: pa.Schema) -> str:
    return ", ".join(f"{field.name}: {field.type}" for field in schema)


def _layout(files: Sequence[pq.ParquetFile], parts: Sequence[PartFile]) -> tuple[int, str]:
    """Row group size and compression: the parts' sink's, else those of the first part that
    has rows (its first group may be smaller than the sink's groups: a small shard's)."""
    if parts and parts[0].layout is not None:
        return parts[0].layout
    for file in files:
        meta = file.metadata
        if meta.num_row_groups and meta.num_rows:
            group = meta.row_group(0)
            codec = str(group.column(0).compression).lower()
            return max(group.num_rows, 1), "none" if codec == "uncompressed" else codec
    return 100_000, "zstd"


def _write_groups(
    writer: pq.ParquetWriter, pending: list[pa.RecordBatch], schema: pa.Schema, rows: int
) -> list[pa.RecordBatch]:
    """Write the whole row groups of `rows` rows that `pending` holds, as the sink writes
    them; return the rows left over (fewer than `rows`)."""
    table = pa.Table.from_batches(pending, schema)
    whole = table.num_rows - table.num_rows % rows
    if whole:
        writer.write_table(table.slice(0, whole), row_group_size=rows)
    return table.slice(whole).to_batches()


def merge_parquet_parts(target: str, parts: Sequence[PartFile]) -> int:
    """Merge the Parquet `parts` (in shard order) into `target`; the number of rows.

    Raises:
        SinkError: a part is missing or unreadable, its rows do not match its index, or
            the parts' schemas differ.
    """
    temporary = f"{target}.merging"
    written = 0
    try:
        files = [pq.ParquetFile(part.path) for part in parts]
        schema = _schema(files, parts, target)
        group_rows, compression = _layout(files, parts)
        rows = [_Rows(part, file, target) for part, file in zip(parts, files, strict=True)]
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        with pq.ParquetWriter(temporary, schema, compression=compression) as writer:
            for _, k, count, _ in heapq.merge(*(part_runs(p, k) for k, p in enumerate(parts))):
                pending.extend(rows[k].take(count))
                pending_rows += count
                written += count
                if pending_rows >= group_rows:
                    pending = _write_groups(writer, pending, schema, group_rows)
                    pending_rows %= group_rows
            if pending_rows:
                table = pa.Table.from_batches(pending, schema)
                writer.write_table(table, row_group_size=pending_rows)
        for part_rows in rows:
            if not part_rows.exhausted():
                raise SinkError(f"{target}: part {part_rows.part.path} has rows its index lacks")
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(exc, (OSError, pa.ArrowException)):
            raise SinkError(f"{target}: merging the shards' Parquet parts failed: {exc}") from exc
        raise
    os.replace(temporary, target)
    remove_parts(parts)
    return written
