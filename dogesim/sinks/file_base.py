"""What the file sinks share: the buffered, ledgered writing of lines to a file.

- `_FileSink`: the base of `JsonLinesSink` and `CsvSink` (buffer, flush points, fsync at
  close, a torn last line cut off, compression by suffix, checkpoint positions).
- `FlushPoint`: one write of a sink's buffer.
- `BUFFER_BYTES`, `TICK_PART`, `KERNEL_PART`: the write buffer's size; the events of a tick
  taken at once (by the compiled kernel).
- `_parts`, `_keeping`, `_stream_path`: helpers of the two sinks and their factories.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import io
import itertools
import os
import stat
import sys
import types
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from dogesim.errors import RunError, SinkConfigError, SinkError
from dogesim.sinks.base import LedgeredSink
from dogesim.sinks.compression import SUFFIXES, compression_of, member_compressor
from dogesim.sinks.records import Mapper, default_record, flat_record

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = [
    "BUFFER_BYTES",
    "KERNEL_PART",
    "TICK_PART",
    "FlushPoint",
]

#: Write buffer of the file sinks, in bytes (fewer, larger writes).
BUFFER_BYTES = 1 << 20

#: Events of a tick made into records and encoded together by ``collect_many``, at most: a
#: large tick is taken in parts, one after the other (its records and their block stay
#: small, in the processor's cache).
TICK_PART = 2048

#: Events of a tick whose default records' lines the compiled kernel writes in one call, at
#: most (it makes no records, so its parts can be larger; a huge tick's block stays bounded).
KERNEL_PART = 1 << 13


def _fsync(fd: int) -> None:
    """fsync a real file; pipes, terminals and devices cannot be synced."""
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EROFS, errno.ENOTSUP):
            raise


class FlushPoint(NamedTuple):
    """The file after one write of the sink's buffer (or the fsync of ``close()``).

    Attributes:
        lines: this run's complete lines in the file.
        offset: the file's size in bytes (compressed bytes for ``.gz``/``.zst``).
        synced: True for the fsync at ``close()``; from there on the lines are durable.
    """

    lines: int
    offset: int
    synced: bool = False


class _FileSink(LedgeredSink):
    """Shared plumbing: encoded lines buffered, written in large blocks, counted exactly.

    Lines are encoded to UTF-8 as they are collected (a line that cannot be encoded fails
    there, alone; a mapper that reuses its dict is read before the next event) and appended
    to one buffer, which is written to an unbuffered file whenever it holds `BUFFER_BYTES`.
    The sink knows where each buffered line ends, so when a write stops short (disk full,
    file size limit) it counts exactly the complete lines that reached the file and cuts the
    torn last one off. For a compressed file (``.gz``, ``.zst``) each block is one complete
    gzip member / zstd frame, and a block cut short is cut off whole. Nothing is written
    after a failed write: later events are counted as lost. Each write is recorded in
    `flush_points`.

    An interrupt (a second Ctrl-C) may land anywhere, even between a write and its count, so
    the block being written is remembered until it is settled, and `_settle` (run again by
    ``close()``) measures a regular file itself to count what it holds.
    """

    def __init__(self, kind: str, path: str | os.PathLike[str], *, append: bool) -> None:
        #: bytes buffered before a write (`BUFFER_BYTES` when the sink was made; tests
        #: lower the module's value to see many writes)
        self._limit = BUFFER_BYTES
        self.path = path
        self._owned = path != "-"
        name = f"{kind}:{'<stdout>' if not self._owned else os.fspath(path)}"
        super().__init__(name)
        self._kind = kind
        compression = compression_of(path)
        where = f"{kind} sink {os.fspath(path)!r}"
        self.compression = compression
        self._compress = member_compressor(compression, where) if compression else None
        self._buffer = bytearray()
        # Where each buffered line ends, from the buffer's start: kept for CSV, whose quoted
        # cells may hold newlines. A JSON line holds none, so there every b"\n" ends a line
        # and the ends are found in the block only when a write stops short.
        self._ends: list[int] = []
        self._newline_ends = kind == "jsonl"
        # JSON lines in the buffer, counted as they are added (counting the b"\n"s of each
        # block written cost a tenth of a large run's encoding). CSV counts its `_ends`.
        self._buffered_lines = 0
        self._written = 0  # complete lines of this run in the file
        self._offset = 0  # the file's size at the last complete line (or block)
        self._broken: SinkError | None = None
        self._file: io.FileIO | None = None
        #: The file after each write of this run: lines, bytes, whether fsynced.
        self.flush_points: list[FlushPoint] = []
        # The block being written: (lines written, file offset) before it, the block, where
        # its units end (lines, the one compressed block, or None: at each b"\n") and the
        # lines it holds.
        self._inflight: tuple[int, int, bytes | bytearray, list[int] | None, int] | None = None
        self.mapper: Mapper = default_record
        # Whether the mapper's records can be made for a whole tick before any is encoded:
        # None until a tick of two or more events shows whether it returns new objects.
        self._ahead: bool | None = None
        self._open(append)

    def _open(self, append: bool) -> None:
        if not self._owned:
            return
        try:
            self._file = open(self.path, "ab" if append else "wb", buffering=0)  # noqa: SIM115
            self._offset = self._file.seek(0, os.SEEK_END)
        except OSError as exc:
            raise SinkConfigError(
                f"{self._kind} sink: cannot open {os.fspath(self.path)!r}: {exc}"
            ) from exc

    def _record(self, timestamp: int, subject: Any, transition: Transition) -> Any:
        """The first steps of ``collect``: reopen after close, count the event, map it."""
        if self._closed:
            self.reopen()
        self.ledger.collected += 1
        try:
            return self.mapper(timestamp, subject, transition)
        except Exception as exc:
            raise self.event_failed(exc, timestamp, "the mapper") from exc

    def _record_failed(
        self, timestamp: int, transition: Transition, why: str, record: Any
    ) -> SinkError:
        """Count the current event as failed because its record `why`; the error names it."""
        self.ledger.failed += 1
        return SinkError(
            f"sink {self.ledger.sink}: event {transition.trigger!r} at {timestamp} {why}; "
            f"record {record!r}",
            [self.ledger],
        )

    def _add(self, data: bytes, *, event: bool = True) -> None:
        """Buffer one encoded line (`event`: it is an event's line, not a header)."""
        if not self._owned:
            self._write_stdout(data, event)
            return
        buffer = self._buffer
        buffer += data
        self._buffered_lines += event
        if event and not self._newline_ends:
            self._ends.append(len(buffer))
        if len(buffer) >= self._limit:
            self._flush_buffer()

    def _take(self, lines: list[bytes]) -> None:
        """Buffer the lines of as many events, collected now, writing the buffer where
        `_add` one line at a time would (a write is rare: at most once per `BUFFER_BYTES`)."""
        buffer = self._buffer
        size = sum(map(len, lines))
        if len(buffer) + size >= self._limit or not self._owned:
            for line in lines:
                self.ledger.collected += 1
                self._add(line)
            return
        if not self._newline_ends:
            ends = itertools.accumulate(map(len, lines), initial=len(buffer))
            next(ends)
            self._ends.extend(ends)
        self.ledger.collected += len(lines)
        self._buffered_lines += len(lines)
        buffer += b"".join(lines)

    def _take_lines(self, block: bytes | bytearray, lines: int | None = None) -> None:
        """Buffer a block of JSON lines (each b"\n" ends one; `lines` of them when known),
        collected now, writing the buffer after the line where `_add` one at a time would."""
        if len(self._buffer) + len(block) < self._limit:
            taken = block.count(b"\n") if lines is None else lines
            self.ledger.collected += taken
            self._buffered_lines += taken
            self._buffer += block
            return
        start = 0
        while start < len(block):
            # One by one, the write follows the line that fills the buffer to BUFFER_BYTES.
            need = max(self._limit - len(self._buffer), 1)
            end = block.find(b"\n", start + need - 1) + 1 or len(block)
            if lines is not None and end - start > len(block) - end:
                # The lines after the chunk are fewer bytes to count than the chunk's.
                taken = lines - block.count(b"\n", end)
            else:
                taken = block.count(b"\n", start, end)
            if lines is not None:
                lines -= taken
            self.ledger.collected += taken
            self._buffered_lines += taken
            with memoryview(block) as view:  # the chunk copied once, into the buffer
                self._buffer += view[start:end]
            start = end
            if len(self._buffer) >= self._limit:
                self._flush_buffer()

    def _flush_buffer(self) -> None:
        """Write the buffered lines; on failure count what reached the file and raise."""
        data, ends, held = self._buffer, self._ends, self._buffered_lines
        self._buffer, self._ends, self._buffered_lines = bytearray(), [], 0
        if self._broken is not None:
            raise self._broken
        if not data or self._file is None:
            return
        block: bytes | bytearray = data
        lines = held if self._newline_ends else len(ends)
        units: list[int] | None = None if self._newline_ends else ends
        if self._compress is not None:
            # One self-contained member: on a short write it is cut off whole.
            block = self._compress(bytes(data))
            units = [len(block)]
        written, offset = self._written, self._offset
        self._inflight = (written, offset, block, units, lines)
        done = 0
        view = memoryview(block)
        try:
            while done < len(block):
                taken = self._file.write(view[done:])
                if not taken:  # never for a blocking file; refuse to spin if it happens
                    raise OSError(errno.EIO, "the file took no bytes")
                done += taken
        except OSError as exc:
            self._settle(done)
            self._broken = self._write_failed(exc)
            raise self._broken from exc
        finally:
            view.release()
        # Absolute values: settling again after an interrupt here gives the same.
        self._written = written + lines
        self._offset = offset + len(block)
        self._inflight = None
        self.flush_points.append(FlushPoint(self._written, self._offset))

    def _settle(self, counted: int = 0) -> None:
        """Count the complete lines of the block in flight and cut a torn one off.

        Args:
            counted: bytes of the block the writes reported; a regular file is measured
                instead (an interrupt may have struck before a write's count was added).
        """
        if self._inflight is None or self._file is None:
            return
        written, offset, block, units, lines = self._inflight
        done = counted
        with contextlib.suppress(OSError):
            status = os.fstat(self._file.fileno())
            if stat.S_ISREG(status.st_mode):
                done = min(status.st_size - offset, len(block))
        if units is None:  # JSON lines: each b"\n" ends one
            keep = block.rfind(b"\n", 0, done) + 1
            complete = block.count(b"\n", 0, keep)
        else:
            whole = bisect.bisect_right(units, done)
            keep = units[whole - 1] if whole else 0
            # A compressed block is one unit: all its lines or none.
            complete = whole if self._compress is None else (lines if whole else 0)
        if keep < done:
            with contextlib.suppress(OSError):  # a device (/dev/full) cannot be truncated
                os.ftruncate(self._file.fileno(), offset + keep)
        self._written, self._offset = written + complete, offset + keep
        self._inflight = None
        self.flush_points.append(FlushPoint(self._written, self._offset))
        self._account()

    def _write_stdout(self, data: bytes, event: bool) -> None:
        """Standard output gets each line at once (live runs are watched there)."""
        if self._broken is not None:
            raise self._broken
        try:
            sys.stdout.write(data.decode("utf-8"))
        except (OSError, ValueError) as exc:
            self._broken = self._write_failed(exc)
            raise self._broken from exc
        self._written += event

    def _account(self) -> None:
        """Every line in the file is acknowledged; every other collected event is lost."""
        self.ledger.acknowledged = self._written
        self.ledger.failed = self.ledger.collected - self._written

    def _write_failed(self, exc: BaseException) -> SinkError:
        self._account()
        book = self.ledger
        return SinkError(
            f"sink {book.sink}: write failed after {book.collected} events: {exc}; "
            f"{self._written} complete lines are in the file (a torn last line is cut off), "
            f"{book.failed} events lost",
            [book],
        )

    def _close(self) -> None:
        try:
            self._flush_buffer()
            self._seal_if_empty()
            if self._file is not None:
                _fsync(self._file.fileno())
                self.flush_points.append(FlushPoint(self._written, self._offset, True))
            else:
                sys.stdout.flush()
        except OSError as exc:
            if self._broken is None:
                self._broken = self._write_failed(exc)
            raise self._broken from exc
        finally:
            self._settle()
            self._account()
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None

    def _seal_if_empty(self) -> None:
        """A compressed file that got no line gets one empty member (gzip) or frame (zstd):
        0 bytes are no valid compressed file, and every reader would call it cut short."""
        if self._compress is None or self._file is None or self._offset:
            return
        block = self._compress(b"")
        self._file.write(block)
        self._offset = len(block)
        self.flush_points.append(FlushPoint(self._written, self._offset))

    def _reopen(self) -> None:
        self._buffer, self._ends, self._buffered_lines = bytearray(), [], 0
        self._written = 0
        self._broken = None
        self._inflight = None
        self.flush_points = []
        self._open(append=True)

    def _tick_records(
        self, timestamp: int, subjects: Sequence[Any], transitions: Sequence[Transition]
    ) -> tuple[list[Any], Exception | None]:
        """The tick's records, up to the first the mapper fails to make, and its error."""
        mapper = self.mapper
        records: list[Any] = []
        try:
            if isinstance(mapper, types.FunctionType):
                # A Python loop calls a Python function a quarter faster than map() does
                # (no new interpreter loop per call); both keep what was made before a raise.
                append = records.append
                for subject, transition in zip(subjects, transitions, strict=False):
                    append(mapper(timestamp, subject, transition))
            else:
                records.extend(map(mapper, itertools.repeat(timestamp), subjects, transitions))
        except Exception as exc:
            return records, exc
        return records, None

    def _fresh(self, records: list[Any]) -> bool:
        """No object among the records made ahead twice (the default mappers make new dicts
        for each event, unchecked)."""
        if self.mapper is default_record or self.mapper is flat_record:
            return True
        return len(set(map(id, records))) == len(records)

    def _learn(self, seen: list[Any] | None) -> None:
        """After a tick read record by record while unsure (`seen`: its records), decide
        whether the mapper's records may be made ahead: no object returned twice."""
        if seen is not None and len(seen) > 1:
            # `seen` holds them all, so a repeated id is one object returned twice.
            self._ahead = len(set(map(id, seen))) == len(seen)

    # -- checkpoint positions (dogesim.sinks.offsets) ---------------------------------------

    def output_identity(self) -> str:
        """The file's absolute path (``<stdout>`` for standard output)."""
        if not self._owned:
            return f"{self._kind}:<stdout>"
        return f"{self._kind}:{os.path.abspath(os.fspath(self.path))}"

    def position(self) -> dict[str, Any]:
        """Flush and fsync the lines collected so far; the file's size and line count (for
        a compressed file: the newline bytes in its compressed bytes, a check all the same)."""
        if not self._owned:
            return {"offset": None, "lines": None}  # standard output cannot be cut back
        if self._file is not None:
            self._flush_buffer()
            _fsync(self._file.fileno())
        lines, crc = self._scan_up_to(self._offset)
        return {"offset": self._offset, "lines": lines, "crc32": crc}

    def restore_position(self, position: Mapping[str, Any]) -> None:
        """Cut the file back to the checkpoint's offset (lines past it were written after the
        checkpoint, by a run that then died), checking it holds the checkpoint's lines."""
        offset, lines = position.get("offset"), position.get("lines")
        if not self._owned or offset is None:
            return
        where = os.path.abspath(os.fspath(self.path))
        if self._file is None:
            raise RunError(f"{where}: a sink's position is restored while it is open")
        size = os.fstat(self._file.fileno()).st_size
        if size < offset:
            raise RunError(
                f"{where} holds {size} bytes, the checkpoint was taken at {offset}: the file "
                "was cut or replaced since; resume needs the file the run wrote"
            )
        self._scanned = (0, 0, 0)
        found, crc = self._scan_up_to(offset)
        if found != lines:
            raise RunError(
                f"{where} holds {found} lines up to byte {offset}, the checkpoint counted "
                f"{lines}: the file was changed since; resume needs the file the run wrote"
            )
        saved = position.get("crc32")  # absent in checkpoints written before it was kept
        if saved is not None and saved != crc:
            raise RunError(
                f"{where}: its bytes up to byte {offset} differ from the checkpoint's (CRC-32 "
                f"{crc:08x}, the checkpoint's {int(saved):08x}): the file was edited since; "
                "resume needs the file the run wrote"
            )
        if size > offset:
            os.ftruncate(self._file.fileno(), offset)
            _fsync(self._file.fileno())
        self._offset = offset

    def _scan_up_to(self, offset: int) -> tuple[int, int]:
        """The newlines in the file before `offset` and the CRC-32 of those bytes, scanned
        on from the last scan (a checkpoint reads only what was written since the last)."""
        counted_to, lines, crc = getattr(self, "_scanned", (0, 0, 0))
        if offset < counted_to:
            counted_to, lines, crc = 0, 0, 0
        with open(self.path, "rb") as handle:
            handle.seek(counted_to)
            remaining = offset - counted_to
            while remaining > 0:
                chunk = handle.read(min(remaining, self._limit))
                if not chunk:
                    break
                lines += chunk.count(b"\n")
                crc = zlib.crc32(chunk, crc)
                remaining -= len(chunk)
        self._scanned = (offset, lines, crc)
        return lines, crc


def _parts(
    subjects: Sequence[Any], transitions: Sequence[Transition], size: int | None = None
) -> Iterator[tuple[Sequence[Any], Sequence[Transition]]]:
    """The tick's pairs in parts of at most `size` (`TICK_PART` by default; zip's rule: as
    many as the shorter sequence), taken one after the other as the events one by one."""
    size = TICK_PART if size is None else size
    n = min(len(subjects), len(transitions))
    if n == len(subjects) == len(transitions) and n <= size:
        yield subjects, transitions
        return
    for start in range(0, n, size):
        end = min(start + size, n)
        yield subjects[start:end], transitions[start:end]


def _keeping(items: Iterable[Any], kept: list[Any]) -> Iterator[Any]:
    """`items`, each appended to `kept` as it is taken."""
    for item in items:
        kept.append(item)
        yield item


def _stream_path(directory: Path, name: str, suffix: str, compression: str | None) -> Path:
    """``<directory>/<name><suffix>[.gz|.zst]``; a name already ending so is kept."""
    if compression is not None:
        known = {kind: ext for ext, kind in reversed(SUFFIXES.items())}
        if compression not in known:
            raise SinkConfigError(
                f"file sink factory: unknown compression {compression!r}; "
                f"give one of {', '.join(sorted(known))} or None"
            )
        suffix += known[compression]
    directory.mkdir(parents=True, exist_ok=True)
    return directory / (name if name.endswith(suffix) else name + suffix)
