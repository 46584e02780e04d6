"""File sinks: events as JSON Lines or CSV, the embedded default output.

- `JsonLinesSink`: one JSON object per line, to a file or to standard output (``"-"``).
- `CsvSink`: one CSV row per event, with a header; nested values are flattened.
- `JsonLinesSinkFactory`, `CsvSinkFactory`: sinks for named streams in one directory
  (``<directory>/<name>.jsonl`` / ``.csv``).
- `default_record`, `flat_record`: the default mappers (event -> dict) of the two sinks.
- `FlushPoint`: one write of a sink's buffer (lines and bytes in the file), in
  ``sink.flush_points``.

`JsonLinesSink` and its factory live here; the rest is re-exported from where it lives:
`dogesim.sinks.file_base` (what both sinks share: buffer, flush points, fsync, positions),
`dogesim.sinks.csv_sink` (`CsvSink`), `dogesim.sinks.records` (the default records).

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

import functools
import itertools
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dogesim.errors import SinkError
from dogesim.sinks import file_base
from dogesim.sinks.csv_sink import CsvSink, CsvSinkFactory
from dogesim.sinks.encoding import (
    Unwritable,
    exact_encoder,
    json_block_encoder,
    json_line_encoder,
    json_lines_encoder,
)
from dogesim.sinks.file_base import FlushPoint, _FileSink, _keeping, _parts, _stream_path
from dogesim.sinks.records import (
    _NULL_SUBJECT,
    Mapper,
    _json_default,
    default_record,
    field_names,
    flat_record,
    subject_fields,
    subjects_fields,
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
    "subject_fields",
    "subjects_fields",
]


def _native_kernel() -> Any:
    """The engine's compiled kernel, or None (imported here, not at the module's import:
    the engine imports the sinks)."""
    from dogesim.engine import kernel

    return kernel.native()


@functools.lru_cache(maxsize=256)
def _field_keys(names: tuple[str, ...]) -> tuple[bytes, ...]:
    """What comes before each field's value in its JSON object: ``{"a":``, ``,"b":``, ..."""
    return tuple(
        ("{" if i == 0 else ",").encode() + json.dumps(name, ensure_ascii=False).encode() + b":"
        for i, name in enumerate(names)
    )


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
        return self._record_failed(
            timestamp, transition, f"cannot be written as JSON: {exc}", record
        )

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Write the event as one line."""
        record = self._record(timestamp, subject, transition)
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
        self._buffered_lines += 1
        if len(buffer) >= self._limit:
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
        native = self._native_writer(subjects, transitions)
        for part in _parts(subjects, transitions, file_base.KERNEL_PART if native else None):
            if native is None or not native(timestamp, *part):
                for piece in _parts(*part):
                    self._collect_part(timestamp, *piece)

    def _native_writer(
        self, subjects: Sequence[Any], transitions: Sequence[Transition]
    ) -> Callable[[int, Sequence[Any], Sequence[Transition]], bool] | None:
        """A writer of the tick's default-record lines by the engine's compiled kernel, or
        None where it cannot write them: no kernel, another mapper, not lists of one
        length, the first subject not a dataclass instance.

        The writer buffers a part's lines (`_kernel.json_lines`: fields read in C, the
        scattered subjects fetched ahead, no record and no list of the subjects made) and
        says True; False, buffering nothing, when a subject is of another type or a value is
        not one it writes exactly as json.dumps (the part then takes the Python path, its
        twin: `tests/unit/test_encoding_batch.py` holds the two to the same bytes)."""
        native = _native_kernel()
        if native is None or self.mapper is not default_record or not subjects:
            return None
        if type(subjects) is not list or type(transitions) is not list:
            return None
        if len(subjects) != len(transitions):
            return None
        kind = type(subjects[0])
        names = field_names(kind)
        if names is None:
            return None
        keys = _field_keys(names)

        def write(timestamp: int, part: Sequence[Any], moves: Sequence[Transition]) -> bool:
            heads = self._heads(timestamp, moves)
            if heads is None:
                return False
            lines = native.json_lines(heads, moves, part, kind, names, keys)
            if lines is None:
                return False
            self._take_lines(lines, len(part))
            return True

        return write

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
        cannot be made; the caller then makes the records. (The compiled kernel's writer,
        `_native_writer`, writes the same bytes where it can.)"""
        heads = self._heads(timestamp, transitions)
        if heads is None:
            return None
        fields = subjects_fields(subjects)
        if fields is None:
            return None
        body = self._encode_block(fields)
        if body is None:
            return None
        pieces = body.split(b"\n")
        pieces.pop()  # after the last line's newline
        parts = zip(map(heads.__getitem__, transitions), pieces, itertools.repeat(b"}\n"))
        return b"".join(itertools.chain.from_iterable(parts))

    def _heads(
        self, timestamp: int, transitions: Sequence[Transition]
    ) -> dict[Transition, bytes] | None:
        """Per transition of the tick, its default record's line up to ``"subject":``."""
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
        return heads

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
