"""File sinks: events as JSON Lines or CSV, the embedded default output.

- `JsonLinesSink`: one JSON object per line, to a file or to standard output (``"-"``).
- `CsvSink`: one CSV row per event, with a header; nested values are flattened.
- `JsonLinesSinkFactory`, `CsvSinkFactory`: sinks for named streams in one directory
  (``<directory>/<name>.jsonl`` / ``.csv``).
- `default_record`, `flat_record`: the default mappers (event -> dict) of the two sinks.

Both sinks write through a large buffer, and ``close()`` flushes and fsyncs the file before it
counts the events as acknowledged. Output is deterministic: the same events give the same
bytes (JSON with fixed separators, keys in mapper order, UTF-8 without escaping).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as _dt
import enum
import errno
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from dogesim.errors import SinkConfigError, SinkError
from dogesim.sinks.base import LedgeredSink

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = [
    "CsvSink",
    "CsvSinkFactory",
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

_FIELDS_CACHE: dict[type, tuple[str, ...]] = {}


def subject_fields(subject: Any) -> Any:
    """The subject as a dict of its fields, or its ``str()`` when it has none.

    Dataclasses give their fields (shallow: nested values are converted when written),
    mappings their items, other objects their ``vars()``; objects without attributes (ints,
    strings, slotted classes) are written as ``str(subject)``.
    """
    cls = type(subject)
    names = _FIELDS_CACHE.get(cls)
    if names is None:
        if dataclasses.is_dataclass(subject) and not isinstance(subject, type):
            names = tuple(f.name for f in dataclasses.fields(subject))
            _FIELDS_CACHE[cls] = names
        elif isinstance(subject, Mapping):
            return dict(subject)
        else:
            try:
                return dict(vars(subject))
            except TypeError:
                return str(subject)
    return {name: getattr(subject, name) for name in names}


def default_record(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
    """The default record: timestamp, trigger, from_state, to_state and the subject's fields."""
    return {
        "timestamp": timestamp,
        "trigger": transition.trigger,
        "from_state": transition.from_state,
        "to_state": transition.to_state,
        "subject": subject_fields(subject),
    }


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
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
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON serializable")


def _fsync(stream: IO[Any]) -> None:
    """fsync a real file; pipes, terminals and in-memory streams cannot be synced."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EROFS, errno.ENOTSUP):
            raise


class _FileSink(LedgeredSink):
    """Shared plumbing: the open stream, the ledger and flush+fsync on close."""

    def __init__(self, kind: str, path: str | os.PathLike[str], mode: str, newline: str) -> None:
        self.path = path
        self._owned = path != "-"
        name = f"{kind}:{'<stdout>' if not self._owned else os.fspath(path)}"
        super().__init__(name)
        if self._owned:
            try:
                self._stream: IO[str] = open(  # noqa: SIM115 - closed by close()
                    path, mode, encoding="utf-8", newline=newline, buffering=BUFFER_BYTES
                )
            except OSError as exc:
                raise SinkConfigError(
                    f"{kind} sink: cannot open {os.fspath(path)!r}: {exc}"
                ) from exc
        else:
            self._stream = sys.stdout

    def _write_failed(self, exc: OSError) -> SinkError:
        self.ledger.failed = self.ledger.collected
        return SinkError(
            f"sink {self.ledger.sink}: write failed after {self.ledger.collected} events: {exc}; "
            f"0 of them confirmed on disk",
            [self.ledger],
        )

    def _close(self) -> None:
        try:
            self._stream.flush()
            _fsync(self._stream)
            if self._owned:
                self._stream.close()
        except OSError as exc:
            raise self._write_failed(exc) from exc
        finally:
            if self._owned and not self._stream.closed:
                with contextlib.suppress(OSError):
                    self._stream.close()
        # Every line handed to the stream is now on disk; rejected events never were.
        self.ledger.acknowledged = self.ledger.collected - self.ledger.failed


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
        super().__init__("jsonl", path, "a" if append else "w", "\n")
        self.mapper: Mapper = mapper if mapper is not None else default_record
        self._encode = json.JSONEncoder(
            ensure_ascii=False,
            separators=(",", ":"),
            sort_keys=False,
            allow_nan=False,
            default=_json_default,
        ).encode
        self._write = self._stream.write

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Write the event as one line."""
        record = self.mapper(timestamp, subject, transition)
        self.ledger.collected += 1
        try:
            line = self._encode(record)
        except (TypeError, ValueError) as exc:
            self.ledger.failed += 1
            raise SinkError(
                f"sink {self.ledger.sink}: event {transition.trigger!r} at {timestamp} cannot be "
                f"written as JSON: {exc}; record {record!r}",
                [self.ledger],
            ) from exc
        try:
            self._write(line + "\n")
        except OSError as exc:
            raise self._write_failed(exc) from exc


class CsvSink(_FileSink):
    """Writes every event as one CSV row, after a header line.

    Args:
        path: the file to write.
        mapper: turns ``(timestamp, subject, transition)`` into a flat mapping of column to
            value; `flat_record` when omitted.
        fieldnames: the columns, in order; taken from the first record when omitted. A record
            with a key outside them is an error; a missing key gives an empty cell.

    Raises:
        SinkError: the file cannot be opened, or a record has keys that are not columns.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        mapper: Mapper | None = None,
        *,
        fieldnames: Sequence[str] | None = None,
    ) -> None:
        if path == "-":
            raise SinkConfigError(
                "csv sink: CSV cannot go to standard output ('-'); give a file path"
            )
        super().__init__("csv", path, "w", "")
        self.mapper: Mapper = mapper if mapper is not None else flat_record
        self.fieldnames: list[str] | None = list(fieldnames) if fieldnames is not None else None
        self._writer: csv.DictWriter[str] | None = None
        if self.fieldnames is not None:
            self._start(self.fieldnames)

    def _start(self, fieldnames: list[str]) -> csv.DictWriter[str]:
        self.fieldnames = fieldnames
        writer = csv.DictWriter(
            self._stream, fieldnames, restval="", extrasaction="raise", lineterminator="\n"
        )
        writer.writeheader()
        self._writer = writer
        return writer

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Write the event as one row."""
        record = self.mapper(timestamp, subject, transition)
        self.ledger.collected += 1
        writer = self._writer
        try:
            if writer is None:
                writer = self._start(list(record))
            writer.writerow(record)
        except ValueError as exc:
            self.ledger.failed += 1
            unknown = [key for key in record if key not in (self.fieldnames or ())]
            raise SinkError(
                f"sink {self.ledger.sink}: event {transition.trigger!r} at {timestamp} has "
                f"keys {unknown} that are not columns {self.fieldnames}; record {record!r}",
                [self.ledger],
            ) from exc
        except OSError as exc:
            raise self._write_failed(exc) from exc


class JsonLinesSinkFactory:
    """Creates `JsonLinesSink` s for named streams in one directory.

    Args:
        directory: where the files go; created when missing.
        append: passed to every sink.
    """

    suffix = ".jsonl"

    def __init__(self, directory: str | os.PathLike[str], *, append: bool = False) -> None:
        self.directory = Path(directory)
        self.append = append

    def path_for(self, name: str) -> Path:
        """The file for stream `name`: ``<directory>/<name>.jsonl`` (suffix kept if given)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory / (name if name.endswith(self.suffix) else name + self.suffix)

    def create(self, name: str, mapper: Mapper | None = None) -> JsonLinesSink:
        """A sink writing stream `name`; `mapper` as in `JsonLinesSink`."""
        return JsonLinesSink(self.path_for(name), mapper, append=self.append)


class CsvSinkFactory:
    """Creates `CsvSink` s for named streams in one directory.

    Args:
        directory: where the files go; created when missing.
    """

    suffix = ".csv"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path_for(self, name: str) -> Path:
        """The file for stream `name`: ``<directory>/<name>.csv`` (suffix kept if given)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory / (name if name.endswith(self.suffix) else name + self.suffix)

    def create(
        self,
        name: str,
        mapper: Mapper | None = None,
        *,
        fieldnames: Sequence[str] | None = None,
    ) -> CsvSink:
        """A sink writing stream `name`; `mapper` and `fieldnames` as in `CsvSink`."""
        return CsvSink(self.path_for(name), mapper, fieldnames=fieldnames)
