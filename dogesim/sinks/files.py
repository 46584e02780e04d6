"""File sinks: events as JSON Lines or CSV, the embedded default output.

- `JsonLinesSink`: one JSON object per line, to a file or to standard output (``"-"``).
- `CsvSink`: one CSV row per event, with a header; nested values are flattened.
- `JsonLinesSinkFactory`, `CsvSinkFactory`: sinks for named streams in one directory
  (``<directory>/<name>.jsonl`` / ``.csv``).
- `default_record`, `flat_record`: the default mappers (event -> dict) of the two sinks.
- `FlushPoint`: one write of a sink's buffer (lines and bytes in the file), in
  ``sink.flush_points``.

Both sinks also take the events of one tick in one call, ``collect_many(timestamp, subjects,
transitions)`` (the engine's batch path, `dogesim.sinks.base.batch_collector`): the same
bytes, ledger, flush points and errors as ``collect`` called for each event in turn, with
the tick's lines encoded in one pass and added to the buffer at once.

Both sinks encode each line to UTF-8 when it is collected (a line that cannot be encoded, such
as one holding a lone surrogate, fails alone as a `SinkError`), JSON through orjson where it
gives the standard library's bytes (`dogesim.sinks.encoding`), and write through a 1 MiB
buffer; ``close()`` flushes and fsyncs the file before it counts the lines as acknowledged.
When the disk fills up the ledger counts exactly the complete lines in the file, and a torn
last line is cut off. A path ending in ``.gz`` or ``.zst`` is compressed as it is written, one
gzip member / zstd frame per buffer (`dogesim.sinks.compression`), so a block the disk cut
short is cut off whole and the file holds complete lines only. Standard output (``"-"``) gets
every line at once. A sink used again after ``close()`` appends to its file (a CSV header is
not repeated), with a new ledger. Output is deterministic: the same events give the same
bytes (JSON with fixed separators, keys in mapper order, UTF-8 without escaping, exactly as
``json.dumps``), with or without orjson.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import dataclasses
import datetime as _dt
import enum
import errno
import io
import itertools
import os
import stat
import sys
import types
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from dogesim.errors import RunError, SinkConfigError, SinkError
from dogesim.sinks.base import LedgeredSink
from dogesim.sinks.compression import SUFFIXES, compression_of, member_compressor
from dogesim.sinks.csv_encoding import csv_lines
from dogesim.sinks.encoding import (
    Unwritable,
    exact_encoder,
    json_block_encoder,
    json_line_encoder,
    json_lines_encoder,
)

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = [
    "CsvSink",
    "CsvSinkFactory",
    "FlushPoint",
    "JsonLinesSink",
    "JsonLinesSinkFactory",
    "Mapper",
    "default_record",
    "flat_record",
]

#: Turns one event ``(timestamp, subject, transition)`` into the record that is written.
Mapper = Callable[[int, Any, "Transition"], Mapping[str, Any]]

#: Write buffer of the file sinks, in bytes (fewer, larger writes).
BUFFER_BYTES = 1 << 20

#: Events of a tick made into records and encoded together by ``collect_many``, at most: a
#: large tick is taken in parts, one after the other (its records and their block stay
#: small, in the processor's cache).
TICK_PART = 2048

#: Per dataclass: a function giving an instance's fields as a dict (compiled once per class).
_FIELDS_CACHE: dict[type, Callable[[Any], dict[str, Any]]] = {}


def _fields_reader(names: tuple[str, ...]) -> Callable[[Any], dict[str, Any]]:
    """``obj -> {name: obj.name, ...}`` for these field names, in their order.

    Generated as one dict display, the way `dataclasses` generates ``__init__``: ten times
    faster than zipping names with an attrgetter's tuple, which matters once per event.
    """
    body = ", ".join(f"{name!r}: obj.{name}" for name in names)
    namespace: dict[str, Any] = {}
    exec(f"def fields_of(obj):\n    return {{{body}}}\n", namespace)
    reader: Callable[[Any], dict[str, Any]] = namespace["fields_of"]
    return reader


def subject_fields(subject: Any) -> Any:
    """The subject as a dict of its fields, or its ``str()`` when it has none.

    Dataclasses give their fields (shallow: nested values are converted when written),
    mappings their items, other objects their ``vars()``; objects without attributes (ints,
    strings, slotted classes) are written as ``str(subject)``.
    """
    reader = _FIELDS_CACHE.get(type(subject))
    if reader is not None:
        return reader(subject)
    if dataclasses.is_dataclass(subject) and not isinstance(subject, type):
        names = tuple(f.name for f in dataclasses.fields(subject))
        # Field names are identifiers (a class body cannot declare others).
        reader = _FIELDS_CACHE[type(subject)] = _fields_reader(names)
        return reader(subject)
    if isinstance(subject, Mapping):
        return dict(subject)
    try:
        return dict(vars(subject))
    except TypeError:
        return str(subject)


def default_record(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
    """The default record: timestamp, trigger, from_state, to_state and the subject's fields."""
    return {
        "timestamp": timestamp,
        "trigger": transition.trigger,
        "from_state": transition.from_state,
        "to_state": transition.to_state,
        "subject": subject_fields(subject),
    }


#: Per dataclass: a function giving many instances' fields as dicts (compiled once per class).
_FIELDS_LIST_CACHE: dict[type, Callable[[Sequence[Any]], list[dict[str, Any]]]] = {}


def _fields_list_reader(names: tuple[str, ...]) -> Callable[[Sequence[Any]], list[dict[str, Any]]]:
    """``objs -> [{name: obj.name, ...}, ...]`` for these field names: `_fields_reader` as
    one list display, no Python call per object."""
    body = ", ".join(f"{name!r}: s.{name}" for name in names)
    namespace: dict[str, Any] = {}
    exec(f"def fields_of_all(subjects):\n    return [{{{body}}} for s in subjects]\n", namespace)
    reader: Callable[[Sequence[Any]], list[dict[str, Any]]] = namespace["fields_of_all"]
    return reader


def subjects_fields(subjects: Sequence[Any]) -> list[dict[str, Any]] | None:
    """`subject_fields` of each subject, made at once when all are instances of one
    dataclass (the engine's usual tick); None otherwise, or when reading a field fails."""
    kinds = set(map(type, subjects))
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    reader = _FIELDS_LIST_CACHE.get(kind)
    if reader is None:
        if not dataclasses.is_dataclass(kind):
            return None
        names = tuple(f.name for f in dataclasses.fields(kind))
        reader = _FIELDS_LIST_CACHE[kind] = _fields_list_reader(names)
    try:
        return reader(subjects)
    except Exception:
        return None  # the per-event path meets the failure at its event


#: Types written as they are, checked before the (slower) abstract Mapping test.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if type(value) in _SCALARS:
        out[prefix] = value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        _flatten(prefix, subject_fields(value), out)
    else:
        out[prefix] = value


def flat_record(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
    """The default CSV record: `default_record` with nested keys joined by dots.

    A `User(user_id=1, balance=5)` subject becomes the columns ``subject.user_id`` and
    ``subject.balance``.
    """
    out: dict[str, Any] = {}
    _flatten("", default_record(timestamp, subject, transition), out)
    return out


def _json_default(value: Any) -> Any:
    """Converts the values `json` cannot write by itself; anything else is an error."""
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return subject_fields(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, (Path, uuid.UUID)):
        return str(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON serializable")


#: How a default record's line ends when its subject is None.
_NULL_SUBJECT = b'"subject":null}\n'


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

    def _add(self, data: bytes, *, event: bool = True) -> None:
        """Buffer one encoded line (`event`: it is an event's line, not a header)."""
        if not self._owned:
            self._write_stdout(data, event)
            return
        buffer = self._buffer
        buffer += data
        if event and not self._newline_ends:
            self._ends.append(len(buffer))
        if len(buffer) >= BUFFER_BYTES:
            self._flush_buffer()

    def _take(self, lines: list[bytes]) -> None:
        """Buffer the lines of as many events, collected now, writing the buffer where
        `_add` one line at a time would (a write is rare: at most once per `BUFFER_BYTES`)."""
        buffer = self._buffer
        size = sum(map(len, lines))
        if len(buffer) + size >= BUFFER_BYTES or not self._owned:
            for line in lines:
                self.ledger.collected += 1
                self._add(line)
            return
        if not self._newline_ends:
            ends = itertools.accumulate(map(len, lines), initial=len(buffer))
            next(ends)
            self._ends.extend(ends)
        self.ledger.collected += len(lines)
        buffer += b"".join(lines)

    def _take_lines(self, block: bytes | bytearray, lines: int | None = None) -> None:
        """Buffer a block of JSON lines (each b"\n" ends one; `lines` of them when known),
        collected now, writing the buffer after the line where `_add` one at a time would."""
        if len(self._buffer) + len(block) < BUFFER_BYTES:
            self.ledger.collected += block.count(b"\n") if lines is None else lines
            self._buffer += block
            return
        start = 0
        while start < len(block):
            # One by one, the write follows the line that fills the buffer to BUFFER_BYTES.
            need = max(BUFFER_BYTES - len(self._buffer), 1)
            end = block.find(b"\n", start + need - 1) + 1 or len(block)
            chunk = block[start:end]
            self.ledger.collected += chunk.count(b"\n")
            self._buffer += chunk
            start = end
            if len(self._buffer) >= BUFFER_BYTES:
                self._flush_buffer()

    def _flush_buffer(self) -> None:
        """Write the buffered lines; on failure count what reached the file and raise."""
        data, ends = self._buffer, self._ends
        self._buffer, self._ends = bytearray(), []
        if self._broken is not None:
            raise self._broken
        if not data or self._file is None:
            return
        block: bytes | bytearray = data
        lines = data.count(b"\n") if self._newline_ends else len(ends)
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

    def _reopen(self) -> None:
        self._buffer, self._ends = bytearray(), []
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
        return {"offset": self._offset, "lines": self._lines_up_to(self._offset)}

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
        self._line_count = (0, 0)
        found = self._lines_up_to(offset)
        if found != lines:
            raise RunError(
                f"{where} holds {found} lines up to byte {offset}, the checkpoint counted "
                f"{lines}: the file was changed since; resume needs the file the run wrote"
            )
        if size > offset:
            os.ftruncate(self._file.fileno(), offset)
            _fsync(self._file.fileno())
        self._offset = offset

    def _lines_up_to(self, offset: int) -> int:
        """Newlines in the file before `offset`, counted on from the last count."""
        counted_to, lines = getattr(self, "_line_count", (0, 0))
        if offset < counted_to:
            counted_to, lines = 0, 0
        with open(self.path, "rb") as handle:
            handle.seek(counted_to)
            remaining = offset - counted_to
            while remaining > 0:
                chunk = handle.read(min(remaining, BUFFER_BYTES))
                if not chunk:
                    break
                lines += chunk.count(b"\n")
                remaining -= len(chunk)
        self._line_count = (offset, lines)
        return lines


class JsonLinesSink(_FileSink):
    """Writes every event as one JSON object per line (JSON Lines, UTF-8).

    Args:
        path: the file to write, or ``"-"`` for standard output.
        mapper: turns ``(timestamp, subject, transition)`` into a JSON-able mapping;
            `default_record` when omitted. Datetimes are written in ISO 8601, enums as their
            value, dataclasses as their fields, sets sorted; other objects are an error.
        append: add to an existing file instead of replacing it.

    Raises:
        SinkError: the file cannot be opened (at construction), an event cannot be written
            as JSON (naming the trigger and the value), or the disk write fails.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        mapper: Mapper | None = None,
        *,
        append: bool = False,
    ) -> None:
        super().__init__("jsonl", path, append=append)
        self.mapper = mapper if mapper is not None else default_record
        self._encode = json_line_encoder(_json_default)
        self._encode_many = json_lines_encoder(_json_default)
        self._encode_block = json_block_encoder(_json_default)
        self._exact = exact_encoder(_json_default)
        self._ahead = True if self.mapper is default_record else None

    def _unwritable(
        self, exc: Exception, timestamp: int, transition: Transition, record: Any
    ) -> SinkError:
        """Count the current event as failed: its record cannot be a JSON line."""
        if isinstance(exc, UnicodeEncodeError):
            return self.event_failed(exc, timestamp, "encoding the line as UTF-8")
        self.ledger.failed += 1
        return SinkError(
            f"sink {self.ledger.sink}: event {transition.trigger!r} at {timestamp} cannot be "
            f"written as JSON: {exc}; record {record!r}",
            [self.ledger],
        )

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Write the event as one line."""
        if self._closed:
            self.reopen()
        self.ledger.collected += 1
        try:
            record = self.mapper(timestamp, subject, transition)
        except Exception as exc:
            raise self.event_failed(exc, timestamp, "the mapper") from exc
        try:
            line = self._encode(record)
        except (TypeError, ValueError) as exc:
            raise self._unwritable(exc, timestamp, transition, record) from exc
        if self._file is None:
            self._add(line)
            return
        # `_add`, inlined: this is the per-event path (line ends are the b"\n"s).
        buffer = self._buffer
        buffer += line
        if len(buffer) >= BUFFER_BYTES:
            self._flush_buffer()

    def collect_many(
        self, timestamp: int, subjects: Sequence[Any], transitions: Sequence[Transition]
    ) -> None:
        """Write the events of one tick, as `collect` would one after the other.

        The tick's records are made first and encoded together in one orjson call where that
        gives the standard library's bytes (`json_block_encoder`), else one by one; the lines
        are buffered at once. A failing event stops the batch as it would stop the loop: the
        events before it are collected, it is counted as failed, the ones after it are not
        collected (their mapper may have run). A mapper that returns an object it returned
        before (one dict reused and refilled) is seen on the first tick of two or more events,
        which is read record by record as it always is, and the sink reads it so from then on.
        """
        if self._file is None:  # standard output: every line at once, as it comes
            collect = self.collect
            for subject, transition in zip(subjects, transitions, strict=False):
                collect(timestamp, subject, transition)
            return
        if self._closed:
            self.reopen()
        for part in _parts(subjects, transitions):
            self._collect_part(timestamp, *part)

    def _collect_part(
        self, timestamp: int, subjects: Sequence[Any], transitions: Sequence[Transition]
    ) -> None:
        """`collect_many` for at most `TICK_PART` events."""
        if self.mapper is default_record:
            block = self._default_block(timestamp, subjects, transitions)
            if block is not None:
                self._take_lines(block, min(len(subjects), len(transitions)))
                return
        if self._ahead:
            records, error = self._tick_records(timestamp, subjects, transitions)
            if self._fresh(records):
                self._write_records(records, error, timestamp, transitions)
                return
            # An object came twice: its earlier lines are lost once refilled, so this tick
            # (its mapper run again) and the ones after it are read record by record.
            self._ahead = False
        self._write_each(timestamp, subjects, transitions)

    def _default_block(
        self, timestamp: int, subjects: Sequence[Any], transitions: Sequence[Transition]
    ) -> bytes | None:
        """The default records' lines of a tick without making the records: each line is
        its record's head (timestamp, trigger, states and ``"subject":``, encoded exactly
        once per transition) and its subject's fields (the tick's from one block encoding,
        `json_block_encoder`), closed. None where the subjects' fields or their block
        cannot be made; the caller then makes the records."""
        fields = subjects_fields(subjects)
        if fields is None:
            return None
        body = self._encode_block(fields)
        if body is None:
            return None
        heads: dict[Transition, bytes] = dict.fromkeys(transitions, b"")
        for transition in heads:
            record = default_record(timestamp, None, transition) | {"subject": None}
            try:
                line = self._exact(record)
            except (TypeError, ValueError):
                return None
            if not line.endswith(_NULL_SUBJECT):  # pragma: no cover - the keys are fixed
                return None
            heads[transition] = line[: -len(b"null}\n")]
        pieces = body.split(b"\n")
        pieces.pop()  # after the last line's newline
        parts = zip(map(heads.__getitem__, transitions), pieces, itertools.repeat(b"}\n"))
        return b"".join(itertools.chain.from_iterable(parts))

    def _write_records(
        self,
        records: list[Any],
        error: Exception | None,
        timestamp: int,
        transitions: Sequence[Transition],
    ) -> None:
        """Buffer the lines of records made beforehand; then raise the mapper's `error`."""
        block: bytes | bytearray | None = self._encode_block(records)
        if block is None:
            block = self._encode_each(records, timestamp, transitions)
        self._take_lines(block, len(records))
        if error is not None:
            self.ledger.collected += 1
            raise self.event_failed(error, timestamp, "the mapper") from error

    def _write_each(
        self, timestamp: int, subjects: Sequence[Any], transitions: Sequence[Transition]
    ) -> None:
        """Buffer the tick's lines, each record encoded before the next is made; on a first
        tick of two or more events, learn whether the mapper returns new objects."""
        records: Iterable[Any] = map(
            self.mapper, itertools.repeat(timestamp), subjects, transitions
        )
        seen: list[Any] | None = None
        if self._ahead is None:
            seen = []
            records = _keeping(records, seen)
        block = self._encode_each(records, timestamp, transitions)
        # Every pair was encoded (zip's rule: as many as the shorter sequence).
        self._take_lines(block, min(len(subjects), len(transitions)))
        self._learn(seen)

    def _encode_each(
        self, records: Iterable[Any], timestamp: int, transitions: Sequence[Transition]
    ) -> bytearray:
        """The records' lines, each encoded before the next is taken. At a record JSON
        cannot hold, or an error of the iterable (the mapper's), the lines before it are
        buffered and it is counted as failed: the `SinkError` is raised."""
        block = bytearray()
        try:
            self._encode_many(records, block)
        except Unwritable as exc:
            self._take_lines(block)
            self.ledger.collected += 1
            transition = transitions[block.count(b"\n")]
            raise self._unwritable(exc.cause, timestamp, transition, exc.record) from exc.cause
        except Exception as exc:
            self._take_lines(block)
            self.ledger.collected += 1
            raise self.event_failed(exc, timestamp, "the mapper") from exc
        return block


def _parts(
    subjects: Sequence[Any], transitions: Sequence[Transition]
) -> Iterator[tuple[Sequence[Any], Sequence[Transition]]]:
    """The tick's pairs in parts of at most `TICK_PART` (zip's rule: as many as the shorter
    sequence), taken one after the other as the events one by one."""
    n = min(len(subjects), len(transitions))
    if n == len(subjects) == len(transitions) and n <= TICK_PART:
        yield subjects, transitions
        return
    for start in range(0, n, TICK_PART):
        end = min(start + TICK_PART, n)
        yield subjects[start:end], transitions[start:end]


def _keeping(items: Iterable[Any], kept: list[Any]) -> Iterator[Any]:
    """`items`, each appended to `kept` as it is taken."""
    for item in items:
        kept.append(item)
        yield item


class CsvSink(_FileSink):
    """Writes every event as one CSV row, after a header line.

    Args:
        path: the file to write.
        mapper: turns ``(timestamp, subject, transition)`` into a flat mapping of column to
            value; `flat_record` when omitted.
        fieldnames: the columns, in order; taken from the first record when omitted. A record
            with a key outside them is an error; a missing key gives an empty cell.
        append: continue an existing file (a resumed run): its header gives the columns and
            is not written again (a missing or empty file starts with a header as usual).

    Raises:
        SinkError: the file cannot be opened, or a record has keys that are not columns.
        SinkConfigError: appending to a file whose header is not the given `fieldnames`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        mapper: Mapper | None = None,
        *,
        fieldnames: Sequence[str] | None = None,
        append: bool = False,
    ) -> None:
        if path == "-":
            raise SinkConfigError(
                "csv sink: CSV cannot go to standard output ('-'); give a file path"
            )
        super().__init__("csv", path, append=append)
        self.mapper = mapper if mapper is not None else flat_record
        self._ahead = True if self.mapper is flat_record else None
        self.fieldnames: list[str] | None = list(fieldnames) if fieldnames is not None else None
        self._given = self.fieldnames
        self._row = _LastWrite()
        self._writer: Any = None
        self._columns: frozenset[str] = frozenset()
        self._order: tuple[str, ...] = ()
        #: The header is the continued file's (not written by this sink).
        self._header_from_file = append and self._offset > 0
        if self._header_from_file:
            self._adopt(self._header_in_file())
        elif self.fieldnames is not None:
            self._start(self.fieldnames, 0)

    def _adopt(self, fieldnames: list[str]) -> Any:
        # csv.writer with DictWriter's dialect: the same bytes, without its per-row Python.
        self.fieldnames = fieldnames
        self._order = tuple(fieldnames)
        self._columns = frozenset(fieldnames)
        self._writer = csv.writer(self._row, lineterminator="\n")
        return self._writer

    def _start(self, fieldnames: list[str], timestamp: int) -> Any:
        writer = self._adopt(fieldnames)
        writer.writerow(fieldnames)
        self._add_text(self._row.text, timestamp, event=False)
        return writer

    def _header_in_file(self) -> list[str]:
        """The columns of the file being continued (its first row)."""
        from dogesim.sinks.compression import open_text

        where = os.fspath(self.path)
        with open_text(self.path) as handle:
            header = next(csv.reader(handle), None)
        if not header:
            raise SinkConfigError(f"csv sink {where!r}: the file to continue has no header row")
        if self._given is not None and header != self._given:
            raise SinkConfigError(
                f"csv sink {where!r}: the file to continue has the columns {header}, not the "
                f"fieldnames {self._given}"
            )
        return header

    def restore_position(self, position: Mapping[str, Any]) -> None:
        """As for every file sink; cut back to before the file's header (no event yet), the
        header is written again."""
        super().restore_position(position)
        if position.get("offset") == 0 and self._header_from_file:
            self._header_from_file = False
            self._writer, self.fieldnames = None, self._given
            if self._given is not None:
                self._start(list(self._given), 0)

    def _add_text(self, text: str, timestamp: int, *, event: bool = True) -> None:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise self.event_failed(exc, timestamp, "encoding the line as UTF-8") from exc
        self._add(data, event=event)

    def _not_columns(
        self, record: Mapping[str, Any], timestamp: int, transition: Transition
    ) -> SinkError:
        """Count the current event as failed: its record has keys that are not columns."""
        self.ledger.failed += 1
        unknown = [key for key in record if key not in self._columns]
        return SinkError(
            f"sink {self.ledger.sink}: event {transition.trigger!r} at {timestamp} has "
            f"keys {unknown} that are not columns {self.fieldnames}; record {record!r}",
            [self.ledger],
        )

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Write the event as one row."""
        if self._closed:
            self.reopen()
        self.ledger.collected += 1
        try:
            record = self.mapper(timestamp, subject, transition)
        except Exception as exc:
            raise self.event_failed(exc, timestamp, "the mapper") from exc
        writer = self._writer
        if writer is None:
            writer = self._start(list(record), timestamp)
        try:
            fits = record.keys() <= self._columns
        except Exception as exc:  # not a mapping
            raise self.event_failed(exc, timestamp, "reading the mapper's record") from exc
        if not fits:
            raise self._not_columns(record, timestamp, transition)
        # A missing key is None, which csv writes as an empty cell (DictWriter's restval).
        try:
            writer.writerow(list(map(record.get, self._order)))
        except Exception as exc:  # a value whose str() raises, a csv.Error
            raise self.event_failed(exc, timestamp, "writing the CSV row") from exc
        try:
            data = self._row.text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise self.event_failed(exc, timestamp, "encoding the line as UTF-8") from exc
        # `_add`, inlined: this is the per-event path (a CSV sink always writes a file).
        buffer = self._buffer
        buffer += data
        self._ends.append(len(buffer))
        if len(buffer) >= BUFFER_BYTES:
            self._flush_buffer()

    def collect_many(
        self, timestamp: int, subjects: Sequence[Any], transitions: Sequence[Transition]
    ) -> None:
        """Write the events of one tick, as `collect` would one after the other.

        The tick's records are made first and their rows built column by column where that
        gives the writer's bytes (`csv_lines`), else through one `csv.writer` whose ``write``
        appends to a list; the rows are buffered at once. A failing event stops the batch as
        it would stop the loop: the events before it are collected, it is counted as failed,
        the ones after it are not collected (their mapper may have run). A mapper returning
        an object it returned before is read record by record, as `JsonLinesSink` does.
        """
        if self._closed:
            self.reopen()
        for part in _parts(subjects, transitions):
            self._collect_part(timestamp, *part)

    def _collect_part(
        self, timestamp: int, subjects: Sequence[Any], transitions: Sequence[Transition]
    ) -> None:
        """`collect_many` for at most `TICK_PART` events."""
        if self._writer is None and subjects:  # the first record names the columns
            self.collect(timestamp, subjects[0], transitions[0])
            subjects, transitions = subjects[1:], transitions[1:]
        if self._ahead:
            records, error = self._tick_records(timestamp, subjects, transitions)
            if self._fresh(records):
                built = csv_lines(records, self._order, self._columns)
                if built is None or not self._take_text(*built):
                    self._write_rows(records, error, timestamp, transitions)
                elif error is not None:
                    self.ledger.collected += 1
                    raise self.event_failed(error, timestamp, "the mapper") from error
                return
            self._ahead = False  # an object came twice: see JsonLinesSink.collect_many
        made: Iterable[Any] = map(self.mapper, itertools.repeat(timestamp), subjects, transitions)
        seen: list[Any] | None = [] if self._ahead is None else None
        self._write_rows(
            made if seen is None else _keeping(made, seen), None, timestamp, transitions
        )
        self._learn(seen)

    def _take_text(self, text: str, lines: list[str]) -> bool:
        """Buffer these rows (text lines, `text` their join), collected now; False, taking
        none, when one cannot be encoded as UTF-8 (the writer's path then finds which)."""
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            return False
        buffer = self._buffer
        if len(data) != len(text) or len(buffer) + len(data) >= BUFFER_BYTES:
            # Not ASCII (lengths in bytes differ), or a write falls inside: line by line.
            self._take(list(map(str.encode, lines)))
            return True
        ends = itertools.accumulate(map(len, lines), initial=len(buffer))
        next(ends)
        self._ends.extend(ends)
        self.ledger.collected += len(lines)
        buffer += data
        return True

    def _write_rows(
        self,
        records: Iterable[Any],
        error: Exception | None,
        timestamp: int,
        transitions: Sequence[Transition],
    ) -> None:
        """Buffer the records' rows made by the writer, up to the first that fails; then
        raise its error, or the mapper's `error` (it failed after the last record)."""
        texts: list[str] = []
        rows = self._batch_rows(texts)
        failure: tuple[Exception, str] | None = None
        try:
            rows(records)
        except _BadRow as bad:
            failure = bad.cause, bad.what
        except Exception as exc:
            failure = exc, "the mapper"
        if failure is None and error is not None:
            failure = error, "the mapper"
        lines, encode_error = _utf8(texts)
        self._take(lines)
        if encode_error is not None:
            self.ledger.collected += 1
            what = "encoding the line as UTF-8"
            raise self.event_failed(encode_error, timestamp, what) from encode_error
        if failure is not None:
            self.ledger.collected += 1
            cause, what = failure
            if isinstance(cause, _NotColumns):
                raise self._not_columns(cause.record, timestamp, transitions[len(lines)])
            raise self.event_failed(cause, timestamp, what) from cause

    def _batch_rows(self, texts: list[str]) -> Callable[[Any], None]:
        """``rows(records)``: each record's CSV row appended to `texts`, one record after
        the other; raises `_BadRow` for a row that fails, a mapper's error as it is."""
        writerow = csv.writer(_Appender(texts.append), lineterminator="\n").writerow
        columns, order = self._columns, self._order

        def rows(records: Any) -> None:
            for record in records:
                try:
                    fits = record.keys() <= columns
                except Exception as exc:  # not a mapping
                    raise _BadRow(exc, "reading the mapper's record") from exc
                if not fits:
                    raise _BadRow(_NotColumns(record), "")
                try:
                    # A missing key is None, an empty cell (DictWriter's restval).
                    writerow(map(record.get, order))
                except Exception as exc:  # a value whose str() raises, a csv.Error
                    raise _BadRow(exc, "writing the CSV row") from exc

        return rows


class _BadRow(Exception):
    """A row of a batch failed (`cause`, in the step `what`); the rows before it are written."""

    def __init__(self, cause: Exception, what: str) -> None:
        super().__init__(repr(cause))
        self.cause = cause
        self.what = what


class _NotColumns(Exception):
    """A record of a batch has keys that are not columns."""

    def __init__(self, record: Mapping[str, Any]) -> None:
        super().__init__("keys that are not columns")
        self.record = record


class _Appender:
    """A write target for `csv.writer` that appends each row's text to a list."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write


def _utf8(texts: list[str]) -> tuple[list[bytes], UnicodeEncodeError | None]:
    """The rows encoded to UTF-8, up to the first that cannot be, and its error."""
    try:
        return list(map(str.encode, texts)), None
    except UnicodeEncodeError:
        lines: list[bytes] = []
        for text in texts:
            try:
                lines.append(text.encode("utf-8"))
            except UnicodeEncodeError as exc:
                return lines, exc
        raise  # pragma: no cover - the whole failed, so one row fails


class _LastWrite:
    """A write target for `csv.DictWriter` that keeps the one line it was last given.

    The csv module writes each row with a single ``write`` call, so the sink can take the
    row's text and buffer it like any other line.
    """

    text = ""

    def write(self, text: str) -> int:
        self.text = text
        return len(text)


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


class JsonLinesSinkFactory:
    """Creates `JsonLinesSink` s for named streams in one directory.

    Args:
        directory: where the files go; created when missing.
        append: passed to every sink.
        compression: ``"gzip"`` or ``"zstd"`` to write ``<name>.jsonl.gz`` / ``.jsonl.zst``.
    """

    suffix = ".jsonl"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        append: bool = False,
        compression: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.append = append
        self.compression = compression

    def path_for(self, name: str) -> Path:
        """The file for stream `name`: ``<directory>/<name>.jsonl`` (suffix kept if given)."""
        return _stream_path(self.directory, name, self.suffix, self.compression)

    def create(self, name: str, mapper: Mapper | None = None) -> JsonLinesSink:
        """A sink writing stream `name`; `mapper` as in `JsonLinesSink`."""
        return JsonLinesSink(self.path_for(name), mapper, append=self.append)


class CsvSinkFactory:
    """Creates `CsvSink` s for named streams in one directory.

    Args:
        directory: where the files go; created when missing.
        compression: ``"gzip"`` or ``"zstd"`` to write ``<name>.csv.gz`` / ``.csv.zst``.
    """

    suffix = ".csv"

    def __init__(
        self, directory: str | os.PathLike[str], *, compression: str | None = None
    ) -> None:
        self.directory = Path(directory)
        self.compression = compression

    def path_for(self, name: str) -> Path:
        """The file for stream `name`: ``<directory>/<name>.csv`` (suffix kept if given)."""
        return _stream_path(self.directory, name, self.suffix, self.compression)

    def create(
        self,
        name: str,
        mapper: Mapper | None = None,
        *,
        fieldnames: Sequence[str] | None = None,
    ) -> CsvSink:
        """A sink writing stream `name`; `mapper` and `fieldnames` as in `CsvSink`."""
        return CsvSink(self.path_for(name), mapper, fieldnames=fieldnames)
