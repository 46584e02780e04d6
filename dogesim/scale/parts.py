"""Part files: each shard writes its own, the driver merges them into the file asked for.

- `PartFile`: one shard's part of one output (its path, its index, the target it merges into).
- `PartSink`: wraps the file sink writing a part; passes every event (or a tick's batch,
  `collect_many`) on and keeps the part's
  index: the run-length encoding ``(timestamp, lines)`` of the timestamps of its lines,
  written next to it (``<part>.idx``, a ``.npy`` array) on close. It is a positioned sink
  (`dogesim.sinks.offsets`): a checkpoint holds the inner file's position and the index up
  to it, so a resumed shard cuts its part back and continues the index exactly.
- `part_path(target, shard, shards)`: where shard `shard` writes its part of `target`.
- `merge_parts(target, parts)`: the k-way merge (`heapq.merge`) of the parts, in shard order,
  into `target`: lines ordered by (timestamp, shard, order within the shard), so the merged
  bytes are a function of the parts only, never of which worker wrote which part or when
  (Parquet parts: rows in the same order, `dogesim.scale.parquet_parts`).
- `part_runs(part, k)`: a part's index as ``(timestamp, shard, lines, bytes)`` blocks.

A target ending in ``.gz`` or ``.zst`` (``events.jsonl.gz``) has plain parts (a part's name
ends in ``.part-NNNNN-of-NNNNN``, so its sink does not compress): the merge copies a part's
blocks by their byte sizes, which compressed parts would first have to be decompressed for.
The merge compresses the merged lines as a one-process file sink does, one complete gzip
member / zstd frame per ``BUFFER_BYTES`` of whole lines, so the merged file decompresses to
the plain merge's bytes and a cut copy of it loses whole lines only.

Why an index rather than parsing each line's timestamp: a record's mapper decides what a
line holds (it may have no timestamp at all), and merging whole runs of lines of one tick
costs per block, not per line. A CSV part starts with its header line; the merged file has
it once (every part must have the same one).
"""

from __future__ import annotations

import contextlib
import heapq
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from dogesim.errors import SinkError
from dogesim.sinks import file_base
from dogesim.sinks.base import DeliveryLedger, batch_collector, ledger_of
from dogesim.sinks.compression import compression_of, member_compressor

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = ["PartFile", "PartSink", "merge_parts", "part_path", "part_runs", "remove_parts"]


def part_path(target: str, shard: int, shards: int) -> str:
    """The part of `target` that shard `shard` of `shards` writes, next to `target`."""
    return f"{target}.part-{shard:05d}-of-{shards:05d}"


@dataclass(frozen=True)
class PartFile:
    """One shard's part of one merged output.

    Attributes:
        target: the absolute path of the file the parts merge into.
        name: the ledger name of the merged output (``jsonl:<target as given>``).
        path: the part file.
        header: the part's first line is a header (CSV), not an event.
        columnar: the part is a Parquet file (rows, not lines), merged by
            `dogesim.scale.parquet_parts.merge_parquet_parts`.
        layout: a Parquet part's sink's ``(row_group_size, compression)``, which the merged
            file is written with (None: read from the parts).
    """

    target: str
    name: str
    path: str
    header: bool
    columnar: bool = False
    layout: tuple[int, str] | None = None

    @property
    def index(self) -> str:
        """The part's index file: ``(timestamp, lines)`` runs as a ``.npy`` array."""
        return f"{self.path}.idx"


class PartSink:
    """A file sink writing one shard's part, keeping the index the merge needs.

    Args:
        inner: the sink writing the part file (a `JsonLinesSink`, `CsvSink` or alike: one
            line per event, one optional header line).
        part: what the part is.

    The ledger is the inner sink's, named after the merged output.
    """

    def __init__(self, inner: Any, part: PartFile) -> None:
        self.inner = inner
        self.part = part
        self._collect = inner.collect
        self._collect_many = batch_collector(inner)
        self._stamps: list[int] = []
        self._counts: list[int] = []
        #: Lines the part held at the checkpoint a resumed shard continues from.
        self.restored_lines = 0
        ledger = ledger_of(inner)
        if ledger is not None:
            ledger.sink = part.name

    @property
    def ledger(self) -> DeliveryLedger | None:
        """The inner sink's ledger; in a resumed shard, the lines its part held at the
        checkpoint count as collected and acknowledged too (as in an uninterrupted run)."""
        ledger = ledger_of(self.inner)
        if ledger is None or not self.restored_lines:
            return ledger
        return replace(
            ledger,
            collected=ledger.collected + self.restored_lines,
            acknowledged=ledger.acknowledged + self.restored_lines,
        )

    # -- checkpoint positions (dogesim.sinks.offsets), the inner file's plus the index --------

    def output_identity(self) -> str:
        """The part file's identity (the inner sink's)."""
        return str(self.inner.output_identity())

    def position(self) -> dict[str, Any]:
        """The inner file's position, and the index runs up to it."""
        return {**self.inner.position(), "runs": [self._stamps[:], self._counts[:]]}

    def restore_position(self, position: Mapping[str, Any]) -> None:
        """Cut the part back to `position` and take its index runs."""
        self.inner.restore_position(position)
        stamps, counts = position.get("runs") or ([], [])
        self._stamps, self._counts = [int(v) for v in stamps], [int(v) for v in counts]
        self.restored_lines = sum(self._counts)

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Write the event through the inner sink, then count its line in the index."""
        self._collect(timestamp, subject, transition)
        self._count(timestamp, 1)

    def collect_many(
        self, timestamp: int, subjects: Sequence[Any], transitions: Sequence[Transition]
    ) -> None:
        """The events of one tick through the inner sink's `collect_many` (or one by one),
        counted in the index as `collect` would count them."""
        many = self._collect_many
        if many is None:
            for subject, transition in zip(subjects, transitions, strict=True):
                self.collect(timestamp, subject, transition)
            return
        many(timestamp, subjects, transitions)
        if subjects:
            self._count(timestamp, len(subjects))

    def _count(self, timestamp: int, lines: int) -> None:
        stamps = self._stamps
        if stamps and stamps[-1] == timestamp:
            self._counts[-1] += lines
        else:
            stamps.append(timestamp)
            self._counts.append(lines)

    def close(self) -> None:
        """Close the inner sink, then write the index (also when closing failed)."""
        try:
            self.inner.close()
        finally:
            runs = np.asarray([self._stamps, self._counts], dtype=np.int64).reshape(2, -1).T
            sizes = None
            if not self.part.columnar:
                sizes = block_sizes(self.part.path, runs[:, 1], header=self.part.header)
            if sizes is not None:
                runs = np.column_stack([runs, sizes])
            with open(self.part.index, "wb") as handle:
                np.save(handle, runs)


#: Bytes of a part read at a time when its blocks are measured.
_CHUNK = 1 << 24


def block_sizes(path: str, counts: np.ndarray, *, header: bool) -> np.ndarray | None:
    """The byte size of each block of `counts` lines of the part `path` (after its header
    line), or None when the file does not hold exactly those lines (the merge then reads
    lines and names the mismatch). Scanned in chunks, in the shard's process, so the merge
    in the driver copies blocks of bytes instead of splitting lines."""
    # The newline (numbered from 1) that ends the header, then each block.
    marks = np.cumsum(np.asarray(counts, dtype=np.int64)) + (1 if header else 0)
    if header:
        marks = np.concatenate([np.ones(1, dtype=np.int64), marks])
    ends = np.zeros(len(marks), dtype=np.int64)
    found = offset = 0
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                newlines = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
                inside = (marks > found) & (marks <= found + len(newlines))
                ends[inside] = offset + newlines[marks[inside] - found - 1] + 1
                found += len(newlines)
                offset += len(chunk)
    except OSError:
        return None
    last = int(ends[-1]) if len(marks) else 0
    if found != (int(marks[-1]) if len(marks) else 0) or offset != last:
        return None
    if header:
        return np.diff(ends)
    return np.diff(ends, prepend=0)


def part_runs(part: PartFile, k: int) -> Iterator[tuple[int, int, int, int]]:
    """The blocks of one part as ``(timestamp, shard, lines, bytes)`` in file order (bytes
    -1 when its index has no sizes)."""
    runs = np.load(part.index)
    if runs.shape[1:] == (3,):
        for stamp, count, size in runs.tolist():
            yield stamp, k, count, size
    else:
        for stamp, count in runs.tolist():
            yield stamp, k, count, -1


def _header(handle: IO[bytes], part: PartFile) -> bytes:
    return handle.readline() if part.header else b""


def _block_bytes(handle: IO[bytes], part: PartFile, target: str, count: int, size: int) -> bytes:
    """The next block of `count` lines, `size` bytes, of a part (checked: whole lines)."""
    data = handle.read(size)
    if len(data) != size or data.count(b"\n") != count:
        raise SinkError(
            f"{target}: part {part.path} does not hold the block its index says "
            f"({count} lines in {size} bytes)"
        )
    return data


def _block_lines(handle: IO[bytes], part: PartFile, target: str, count: int) -> list[bytes]:
    """The next block of `count` lines of a part (an index without sizes)."""
    lines = list(islice(handle, count))
    if len(lines) != count:
        raise SinkError(
            f"{target}: part {part.path} ends before its index says "
            f"(a block of {count} lines has {len(lines)})"
        )
    return lines


class _Members:
    """The merged lines of a compressed target, written as the file sinks write them: a
    member (frame) ends after the line that brings it to ``file_base.BUFFER_BYTES``, the
    rest is one at `flush`. Only whole lines are written (a part's blocks are checked)."""

    def __init__(self, out: IO[bytes], compress: Callable[[bytes], bytes]) -> None:
        self._out = out
        self._compress = compress
        self._buffer = bytearray()
        self._limit = file_base.BUFFER_BYTES  # read now, as a sink does (tests lower it)
        self._members = 0

    def write(self, data: bytes) -> None:
        """Buffer `data`, writing each member it completes."""
        buffer = self._buffer
        buffer += data
        while len(buffer) >= self._limit:
            end = buffer.find(b"\n", self._limit - 1) + 1
            if not end:
                return
            self._out.write(self._compress(bytes(buffer[:end])))
            self._members += 1
            del buffer[:end]

    def writelines(self, lines: Iterable[bytes]) -> None:
        """Buffer whole lines."""
        self.write(b"".join(lines))

    def flush(self) -> None:
        """Write what is buffered as the last member (an empty one when no line came: 0
        bytes are no valid compressed file, as for a sink), then flush the file."""
        if self._buffer or not self._members:
            self._out.write(self._compress(bytes(self._buffer)))
            self._members += 1
            self._buffer = bytearray()
        self._out.flush()


def _merged_writer(target: str, out: IO[bytes]) -> IO[bytes] | _Members:
    """Where the merged lines go: `out` itself, or compressed into it for a ``.gz``/``.zst``
    target (`dogesim.sinks.compression`)."""
    kind = compression_of(target)
    if kind is None:
        return out
    return _Members(out, member_compressor(kind, f"merging {target!r}"))


def merge_parts(target: str, parts: Sequence[PartFile]) -> int:
    """Merge `parts` (in shard order) into `target`; return the number of event lines.

    A ``.gz``/``.zst`` `target` is compressed as the file sinks compress (from plain parts,
    one member per ``file_base.BUFFER_BYTES`` of whole lines). The merged file is written
    beside `target` and renamed onto it once complete and fsynced, so a failed merge never
    leaves a partial `target`. The parts and their indexes are removed after a successful
    merge.

    Parquet parts (`PartFile.columnar`) are merged row group by row group instead
    (`dogesim.scale.parquet_parts`), in the same order.

    Raises:
        SinkError: a part is missing, its lines do not match its index, CSV headers differ,
            or the merged file cannot be written or put in place (`target` a directory).
    """
    if parts and parts[0].columnar:
        from dogesim.scale.parquet_parts import merge_parquet_parts

        return merge_parquet_parts(target, parts)
    temporary = f"{target}.merging"
    written = 0
    with contextlib.ExitStack() as stack:
        try:
            handles = [stack.enter_context(open(part.path, "rb")) for part in parts]
            file = stack.enter_context(open(temporary, "wb", buffering=1 << 20))
            out = _merged_writer(target, file)
            headers = {_header(handle, part) for handle, part in zip(handles, parts, strict=True)}
            headers.discard(b"")
            if len(headers) > 1:
                raise SinkError(f"{target}: the parts have different CSV headers {headers}")
            out.write(headers.pop() if headers else b"")
            blocks = heapq.merge(*(part_runs(part, k) for k, part in enumerate(parts)))
            for _, k, count, size in blocks:
                if size >= 0:
                    out.write(_block_bytes(handles[k], parts[k], target, count, size))
                else:
                    out.writelines(_block_lines(handles[k], parts[k], target, count))
                written += count
            for handle, part in zip(handles, parts, strict=True):
                if handle.readline():
                    raise SinkError(f"{target}: part {part.path} has lines its index lacks")
            out.flush()
            os.fsync(file.fileno())
            stack.close()
            # Inside the handler too: a target that is a directory fails here, at the end.
            os.replace(temporary, target)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.remove(temporary)
            if isinstance(exc, OSError):
                raise SinkError(f"{target}: merging the shards' parts failed: {exc}") from exc
            raise
    remove_parts(parts)
    return written


def remove_parts(parts: Sequence[PartFile]) -> None:
    """Delete part files and their indexes (missing ones are fine, also under a parent that
    is not a directory: a part that could not be created)."""
    for part in parts:
        for path in (part.path, part.index):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                os.remove(path)
