"""`CsvSink` and `CsvSinkFactory`: one CSV row per event, after a header line.

Rows are the `csv` module's (`csv.writer`, ``lineterminator="\\n"``); a tick's rows are built
column by column where that gives the same text (`dogesim.sinks.csv_encoding`). The header
row quotes a name holding a lone ``"\\r"`` on every Python version (`cr_quoted`), and a
continued file's header is read back with its line ends untranslated, so the sink always
reads its own header back. See `dogesim.sinks.files` for what every file sink guarantees.
"""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dogesim.errors import SinkConfigError, SinkError
from dogesim.sinks.csv_encoding import cr_quoted, csv_lines
from dogesim.sinks.file_base import _FileSink, _keeping, _parts, _stream_path
from dogesim.sinks.records import Mapper, flat_record

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = [
    "CsvSink",
    "CsvSinkFactory",
]


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
        text = self._row.text
        # Quoted as every version quotes it, so that a continuing sink reads it back.
        self._add_text(cr_quoted(fieldnames) if "\r" in text else text, timestamp, event=False)
        return writer

    def _header_in_file(self) -> list[str]:
        """The columns of the file being continued (its first row)."""
        from dogesim.sinks.compression import CompressedFileError, open_text

        where = os.fspath(self.path)
        # Line ends untranslated: a quoted header cell may hold "\r\n" or "\r". A file cut
        # short (a killed run's) is cut back to its checkpoint after this: read its lines.
        try:
            with open_text(self.path, newline="", cut_short="complete") as handle:
                header = next(csv.reader(handle), None)
        except CompressedFileError as exc:
            raise SinkConfigError(f"csv sink {where!r}: the file to continue: {exc}") from None
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
        unknown = [key for key in record if key not in self._columns]
        why = f"has keys {unknown} that are not columns {self.fieldnames}"
        return self._record_failed(timestamp, transition, why, record)

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Write the event as one row."""
        record = self._record(timestamp, subject, transition)
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
            cells = list(map(record.get, self._order))
            writer.writerow(cells)
        except Exception as exc:  # a value whose str() raises, a csv.Error
            raise self.event_failed(exc, timestamp, "writing the CSV row") from exc
        text = self._row.text
        if "\r" in text:  # rare: one substring test on the common path
            text = cr_quoted(cells)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise self.event_failed(exc, timestamp, "encoding the line as UTF-8") from exc
        # `_add`, inlined: this is the per-event path (a CSV sink always writes a file).
        buffer = self._buffer
        buffer += data
        self._ends.append(len(buffer))
        if len(buffer) >= self._limit:
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
        if len(data) != len(text) or len(buffer) + len(data) >= self._limit:
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
                if "\r" in texts[-1]:
                    texts[-1] = cr_quoted(list(map(record.get, order)))

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
