"""The Parquet file sink: events as rows of a columnar file, for large backfills.

- `ParquetSink`: buffers records and writes them as row groups (pyarrow, the ``parquet``
  extra); the columns come from the same mapper as the JSON Lines sink (`default_record`:
  timestamp, trigger, from/to state and the subject's fields as a ``subject`` struct).
- `ParquetSinkFactory`: sinks for named streams in one directory (``<name>.parquet``).
- `parquet_schema`: a `pyarrow.Schema` from a mapping of (dotted) field names to type names,
  e.g. ``{"timestamp": "int64", "subject.id": "int64"}`` (how model files declare one).
- `build_parquet`: the registry's builder for the ``parquet`` sink type.

Why it writes the way it does. A Parquet file is readable only once its footer is written,
so the sink writes to ``<path>.partial`` and, when it closes, writes the footer, fsyncs and
renames the file onto ``<path>`` (atomically). A run killed with ``kill -9`` leaves the
previous ``<path>`` (or none) untouched and a ``.partial`` without a footer, which nothing
reads: run again, or resume from a checkpoint. A checkpoint (``position()``) cuts a row group
and finishes the file the same way, so ``<path>`` then holds exactly the rows up to the
checkpoint; the next event continues in a new ``.partial`` that first copies those row groups
(a resumed run does the same, cut back to the checkpoint's rows). A sink used again after
``close()`` continues its file the same way, with a new ledger.

The ledger counts as acknowledged only rows of row groups in a finished (footer written,
fsynced, renamed) file. The schema is the one declared or, without one, the one pyarrow
infers from the first row group; a later record with a field outside it, or a value of
another type, fails alone (a `SinkError` naming the field, the event and the value, raised
when its row group is written) and the other rows of the group are written.

Importing this module imports pyarrow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import operator
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from dogesim.errors import RunError, SinkConfigError, SinkError, shown
from dogesim.sinks.base import LedgeredSink
from dogesim.sinks.records import Mapper, default_record

if TYPE_CHECKING:
    from dogesim.model import Transition
    from dogesim.sinks.registry import BuildContext

__all__ = [
    "DEFAULT_ROW_GROUP",
    "ParquetSink",
    "ParquetSinkFactory",
    "build_parquet",
    "parquet_schema",
]

#: Rows buffered before a row group is written (memory: a few hundred bytes per row).
DEFAULT_ROW_GROUP = 100_000

#: Conversion failures pyarrow raises for a value that does not fit its column.
_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError)


def parquet_schema(fields: Mapping[str, str] | pa.Schema, where: str = "parquet sink") -> pa.Schema:
    """A `pyarrow.Schema` from ``{field: type name}``; dotted names make struct fields.

    Type names are pyarrow's aliases (``int64``, ``double``, ``string``, ``bool``,
    ``timestamp[ms]``, ``date32`` ...). ``{"subject.id": "int64", "subject.name": "string"}``
    gives one ``subject`` struct column. A `pyarrow.Schema` is returned as it is.

    Raises:
        SinkConfigError: an unknown type name, or a field that is both a value and a struct.
    """
    if isinstance(fields, pa.Schema):
        return fields
    if not isinstance(fields, Mapping) or not fields:
        raise SinkConfigError(
            f"{where}: schema must be a non-empty mapping of field name to type name "
            f"(e.g. {{'timestamp': 'int64', 'subject.id': 'int64'}}), got {shown(fields)}"
        )
    tree: dict[str, Any] = {}
    for name, alias in fields.items():
        try:
            kind = pa.type_for_alias(str(alias))
        except (ValueError, KeyError):
            raise SinkConfigError(
                f"{where}: field {name!r} has type {alias!r}, which pyarrow does not know; "
                "give a type name such as int64, double, string, bool, timestamp[ms]"
            ) from None
        *parents, leaf = str(name).split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SinkConfigError(f"{where}: field {name!r}: {part!r} is not a struct")
        if isinstance(node.get(leaf), dict):
            raise SinkConfigError(f"{where}: field {name!r} is a struct and a value at once")
        node[leaf] = kind
    return pa.schema(_fields(tree))


def _outside(value: Any, kind: pa.DataType, path: str) -> tuple[str, Any] | None:
    """The first nested key of `value` (and its value) that the struct `kind` has no field
    for, as a dotted path; None when every key has one."""
    if not isinstance(value, Mapping) or not pa.types.is_struct(kind):
        return None
    for key, item in value.items():
        index = kind.get_field_index(key) if isinstance(key, str) else -1
        if index < 0:
            return f"{path}.{key}", item
        found = _outside(item, kind.field(index).type, f"{path}.{key}")
        if found is not None:
            return found
    return None


def _fields(tree: Mapping[str, Any]) -> list[pa.Field]:
    return [
        pa.field(name, pa.struct(_fields(kind)) if isinstance(kind, dict) else kind)
        for name, kind in tree.items()
    ]


class _Descriptor:
    """An OS file descriptor that `contextlib.closing` closes."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        os.close(self.fd)


class _DefaultColumns:
    """`default_record`'s columns for subjects of one dataclass, buffered without a dict
    per event: the timestamp, the transition and the subject's field values (read when the
    event is collected, as `default_record` reads them)."""

    def __init__(self) -> None:
        self.cls: type | None = None
        self.names: tuple[str, ...] = ()
        self.get: Callable[[Any], tuple[Any, ...]] = tuple
        self.clear()

    def clear(self) -> None:
        self.stamps: list[int] = []
        self.transitions: list[Transition] = []
        self.values: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self.stamps)

    def accepts(self, subject: Any) -> bool:
        """Whether `subject` can join the buffer (of its class, or the first of one)."""
        if type(subject) is self.cls:
            return True
        if self.stamps or not dataclasses.is_dataclass(subject) or isinstance(subject, type):
            return False
        names = tuple(f.name for f in dataclasses.fields(subject))
        if not names:
            return False
        getter = operator.attrgetter(*names)
        # attrgetter of one name gives the value, of several a tuple: always a tuple.
        self.get = getter if len(names) > 1 else (lambda obj: (getter(obj),))
        self.cls, self.names = type(subject), names
        return True

    def rows(self) -> list[Mapping[str, Any]]:
        """The buffered events as `default_record` dicts (for the row-by-row path)."""
        names = self.names
        return [
            {
                "timestamp": timestamp,
                "trigger": transition.trigger,
                "from_state": transition.from_state,
                "to_state": transition.to_state,
                "subject": dict(zip(names, values, strict=True)),
            }
            for timestamp, transition, values in zip(
                self.stamps, self.transitions, self.values, strict=True
            )
        ]

    def table(self, schema: pa.Schema | None) -> pa.Table:
        """The buffered events as a table of `schema` (inferred when None).

        Raises:
            one of `_CONVERSION_ERRORS` (or KeyError): a value does not fit, or the schema
            has other columns; the caller then takes the row-by-row path, which says why.
        """
        transitions = self.transitions
        columns = {
            "timestamp": self.stamps,
            "trigger": [t.trigger for t in transitions],
            "from_state": [t.from_state for t in transitions],
            "to_state": [t.to_state for t in transitions],
        }
        fields = list(zip(*self.values, strict=True))
        if schema is None:
            arrays = [pa.array(values) for values in columns.values()]
            subject = pa.StructArray.from_arrays(
                [pa.array(values) for values in fields], names=list(self.names)
            )
            return pa.Table.from_arrays([*arrays, subject], names=[*columns, "subject"])
        arrays = [
            pa.array(values, type=schema.field(name).type) for name, values in columns.items()
        ]
        struct = schema.field("subject").type
        subject = pa.StructArray.from_arrays(
            [
                pa.array(values, type=struct.field(name).type)
                for name, values in zip(self.names, fields, strict=True)
            ],
            fields=list(struct),
        )
        return pa.Table.from_arrays([*arrays, subject], schema=schema)


class ParquetSink(LedgeredSink):
    """Writes events as rows of a Parquet file, one row group per `row_group_size` rows.

    Args:
        path: the ``.parquet`` file (written as ``<path>.partial`` until ``close()``).
        mapper: ``(timestamp, subject, transition) -> mapping`` of column to value;
            `default_record` (the JSON Lines sink's record) when omitted. Nested mappings
            become struct columns.
        schema: the columns and their types (`pyarrow.Schema` or a `parquet_schema`
            mapping); inferred from the first row group when omitted.
        row_group_size: rows per row group (rows are buffered until then).
        compression: the Parquet codec (``zstd``, ``snappy``, ``gzip``, ``none`` ...).
        append: continue an existing file (its row groups are kept) instead of replacing it.

    Raises:
        SinkConfigError: a bad setting, or the directory cannot be written.
        SinkError: a mapper error (at once) or a record that does not fit the schema (when
            its row group is written), each counted as failed; a write that fails.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        mapper: Mapper | None = None,
        *,
        schema: Mapping[str, str] | pa.Schema | None = None,
        row_group_size: int = DEFAULT_ROW_GROUP,
        compression: str = "zstd",
        append: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        super().__init__(f"parquet:{self.path}")
        where = f"parquet sink {self.path!r}"
        if isinstance(row_group_size, bool) or not isinstance(row_group_size, int):
            raise SinkConfigError(f"{where}: row_group_size must be an integer >= 1")
        if row_group_size < 1:
            raise SinkConfigError(f"{where}: row_group_size must be >= 1, got {row_group_size}")
        self.mapper: Mapper = mapper if mapper is not None else default_record
        # The default mapper makes a new dict per event; any other may reuse one (copied).
        self._fresh = mapper is None
        # The default record of dataclass subjects is buffered column by column (faster).
        self._columns: _DefaultColumns | None = _DefaultColumns() if mapper is None else None
        self.schema: pa.Schema | None = (
            parquet_schema(schema, where) if schema is not None else None
        )
        self.row_group_size = row_group_size
        self.compression = compression
        self.partial = self.path + ".partial"
        #: Rows per row group in the file so far (this run's and the ones continued).
        self.row_groups: list[int] = []
        self._rows: list[Mapping[str, Any]] = []
        self._first = 0  # this run's number of the first buffered row's event
        self._writer: pq.ParquetWriter | None = None
        self._base: int | None = None  # rows of earlier runs in the file (once opened)
        self._durable = 0  # this run's rows in the last finished file
        self._broken: SinkError | None = None
        self._continue = append and os.path.exists(self.path)
        self._restore_groups: int | None = None  # a checkpoint's row groups
        self._check_directory(where)

    def _check_directory(self, where: str) -> None:
        if self.path == "-":
            raise SinkConfigError(f"{where}: Parquet cannot go to standard output; give a file")
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
            raise SinkConfigError(f"{where}: cannot write to the directory {directory!r}")

    # -- collecting ------------------------------------------------------------------------

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Map the event and buffer its row; a full buffer is written as a row group."""
        if self._closed:
            self.reopen()
        self.ledger.collected += 1
        columns = self._columns
        if columns is not None:
            if type(subject) is columns.cls or columns.accepts(subject):
                # Appended here, not in a method: this is the per-event path.
                stamps = columns.stamps
                stamps.append(timestamp)
                columns.transitions.append(transition)
                columns.values.append(columns.get(subject))
                if len(stamps) >= self.row_group_size:
                    self._write_group()
                return
            # Another kind of subject: rows from here on (in this run).
            self._rows.extend(columns.rows())
            self._columns = None
        try:
            record = self.mapper(timestamp, subject, transition)
            # A copy: a mapper may fill and return the same dict for every event.
            self._rows.append(record if self._fresh else dict(record))
        except Exception as exc:
            raise self.event_failed(exc, timestamp, "the mapper") from exc
        if len(self._rows) >= self.row_group_size:
            self._write_group()

    def collect_many(
        self, timestamp: int, subjects: Sequence[Any], transitions: Sequence[Transition]
    ) -> None:
        """``collect`` for each (subject, transition) of one tick, in order: the default
        columns of subjects of one dataclass are appended a row group's room at a time."""
        columns = self._columns
        if columns is None or self._closed or not self._one_kind(columns, subjects):
            collect = self.collect
            for subject, transition in zip(subjects, transitions, strict=True):
                collect(timestamp, subject, transition)
            return
        start, count = 0, len(subjects)
        while start < count:
            end = min(count, start + self.row_group_size - len(columns.stamps))
            self.ledger.collected += end - start
            columns.stamps.extend(itertools.repeat(timestamp, end - start))
            columns.transitions.extend(transitions[start:end])
            columns.values.extend(map(columns.get, subjects[start:end]))
            if len(columns.stamps) >= self.row_group_size:
                self._write_group()
            start = end

    @staticmethod
    def _one_kind(columns: _DefaultColumns, subjects: Sequence[Any]) -> bool:
        """Whether every subject can join the column buffer (one dataclass, the buffer's)."""
        if not subjects or not columns.accepts(subjects[0]):
            return False
        cls = columns.cls
        return all(type(subject) is cls for subject in subjects)

    # -- row groups ------------------------------------------------------------------------

    def _write_group(self) -> None:
        """Write the buffered rows as one row group; rows that do not fit fail alone."""
        first = self._first
        self._first = self.ledger.collected
        table = self._column_table()
        rows, self._rows = self._rows, []
        if self._broken is not None:
            self.ledger.failed += len(rows) + (0 if table is None else table.num_rows)
            raise self._broken
        bad = None
        if table is None:
            if not rows:
                return
            table, bad = self._table(rows, first)
        if table.num_rows:
            self._write_table(table)
        if bad is not None:
            raise bad

    def _column_table(self) -> pa.Table | None:
        """The buffered default columns as a table, or None when there are none (or they
        do not convert: they then go to the rows, whose path says why)."""
        columns = self._columns
        if columns is None or not len(columns):
            return None
        if self.schema is None and self._continue:
            self.schema = pq.read_schema(self.path)
        try:
            table = columns.table(self.schema)
        except (*_CONVERSION_ERRORS, KeyError):
            self._rows.extend(columns.rows())
            table = None
        else:
            if self.schema is None:
                self.schema = table.schema
        columns.clear()
        return table

    def _table(
        self, rows: list[Mapping[str, Any]], first: int
    ) -> tuple[pa.Table, SinkError | None]:
        """The rows as a table of the schema (the file's when continuing one, else inferred
        now when none was declared) and the error for the rows that do not fit it (counted
        as failed), if any."""
        if self.schema is None and self._continue:
            self.schema = pq.read_schema(self.path)
        if self.schema is None:
            # Mixed types within the first group are found row by row below.
            with contextlib.suppress(*_CONVERSION_ERRORS):
                self.schema = pa.Table.from_pylist(rows).schema
        schema = self.schema
        if schema is not None:
            names = set(schema.names)
            # pyarrow drops keys a struct has no field for: they are looked for first.
            structs = [field for field in schema if pa.types.is_struct(field.type)]
            try:
                if all(row.keys() <= names for row in rows) and not any(
                    _outside(row.get(field.name), field.type, field.name)
                    for field in structs
                    for row in rows
                ):
                    return pa.Table.from_pylist(rows, schema=schema), None
            except _CONVERSION_ERRORS:
                pass
        return self._sift(rows, first)

    def _sift(
        self, rows: list[Mapping[str, Any]], number: int
    ) -> tuple[pa.Table, SinkError | None]:
        """The slow path: check row by row, keep the rows that fit, explain the first misfit
        (`number`: this run's count of events before the first row)."""
        good: list[Mapping[str, Any]] = []
        first: str | None = None
        failed = 0
        for index, row in enumerate(rows, start=number + 1):
            problem = self._misfit(row)
            if problem is None:
                good.append(row)
                continue
            failed += 1
            if first is None:
                at = f" at {shown(row['timestamp'])}" if "timestamp" in row else ""
                first = f"event #{index} of this run{at}: {problem}"
        self.ledger.failed += failed
        schema = self.schema
        assert schema is not None
        table = pa.Table.from_pylist(good, schema=schema)
        if first is None:
            return table, None
        book = self.ledger
        error = SinkError(
            f"sink {book.sink}: {failed} of {len(rows)} rows of a row group do not fit the "
            f"schema and were not written; the first, {first}; columns {schema}; declare a "
            f"schema (schema=...) when the first rows do not show every type; {book.summary()}",
            [book],
        )
        return table, error

    def _misfit(self, row: Mapping[str, Any]) -> str | None:
        """Why `row` does not fit the schema (naming the field and the value), or None."""
        if self.schema is None:
            try:
                self.schema = pa.Table.from_pylist([dict(row)]).schema
            except _CONVERSION_ERRORS as exc:
                return f"cannot be stored in Parquet: {exc}"
        schema = self.schema
        extra = [key for key in row if key not in schema.names]
        if extra:
            return f"field {extra[0]!r} is not a column (value {shown(row[extra[0]])})"
        for field in schema:
            value = row.get(field.name)
            nested = _outside(value, field.type, field.name)
            if nested is not None:
                return f"field {nested[0]!r} is not a column (value {shown(nested[1])})"
            try:
                pa.array([value], type=field.type)
            except _CONVERSION_ERRORS as exc:
                return f"field {field.name!r} = {shown(value)} is not {field.type} ({exc})"
        return None

    def _write_table(self, table: pa.Table) -> None:
        try:
            if self._writer is None:
                self._writer = self._open_writer()
            self._writer.write_table(table, row_group_size=table.num_rows)
        except (OSError, pa.ArrowException) as exc:
            self.ledger.failed += table.num_rows
            self._fail(exc)
        self.row_groups.append(table.num_rows)

    def _open_writer(self) -> pq.ParquetWriter:
        """A writer on ``<path>.partial``, holding the earlier file's row groups first."""
        if self.schema is None and self._continue:
            self.schema = pq.read_schema(self.path)
        assert self.schema is not None
        earlier = pq.ParquetFile(self.path) if self._continue else None
        schema = self.schema
        if earlier is not None and earlier.schema_arrow != schema:
            raise SinkError(
                f"sink {self.ledger.sink}: the file to continue has columns "
                f"{earlier.schema_arrow}, this run's schema is {schema}; continue it with "
                "the same schema",
                [self.ledger],
            )
        writer = pq.ParquetWriter(self.partial, schema, compression=self.compression)
        self.row_groups = []
        if earlier is not None:
            keep = self._kept_groups(earlier)
            for index in range(keep):
                group = earlier.read_row_group(index)
                writer.write_table(group, row_group_size=max(group.num_rows, 1))
                self.row_groups.append(group.num_rows)
            earlier.close()
        if self._base is None:
            self._base = sum(self.row_groups)
        return writer

    def _kept_groups(self, earlier: pq.ParquetFile) -> int:
        """The earlier file's row groups to copy: all, or those up to a restored checkpoint."""
        groups = earlier.metadata.num_row_groups
        return groups if self._restore_groups is None else self._restore_groups

    def _fail(self, exc: BaseException) -> None:
        book = self.ledger
        self._broken = SinkError(
            f"sink {book.sink}: writing {self.partial} failed after {book.collected} events: "
            f"{exc}; the file keeps the rows of its last finished state ({self._durable} of "
            f"this run), {book.collected - self._durable} events lost",
            [book],
        )
        self._abandon_writer()
        book.acknowledged = self._durable
        book.failed = book.collected - self._durable
        raise self._broken from exc

    def _abandon_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        with contextlib.suppress(OSError):
            os.unlink(self.partial)

    def _finish(self) -> None:
        """Write the footer, fsync, rename onto `path`: the rows so far are durable."""
        writer, self._writer = self._writer, None
        if writer is None:
            if self._continue and self._restore_groups is None:
                return  # nothing new: the file stays as it is
            writer = self._open_writer() if self._continue else self._empty_writer()
        try:
            writer.close()
            with open(self.partial, "rb") as written:
                os.fsync(written.fileno())
            os.replace(self.partial, self.path)
            # The rename is durable once the directory is synced.
            directory = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
            with contextlib.closing(_Descriptor(directory)):
                os.fsync(directory)
        except OSError as exc:
            self._fail(exc)
        self._durable = sum(self.row_groups) - (self._base or 0)
        self.ledger.acknowledged = self._durable
        self._continue = True
        self._restore_groups = None

    def _empty_writer(self) -> pq.ParquetWriter:
        """A run without rows still leaves a readable file (with the declared columns)."""
        schema = self.schema if self.schema is not None else pa.schema([])
        self.row_groups = []
        return pq.ParquetWriter(self.partial, schema, compression=self.compression)

    # -- closing and reopening -------------------------------------------------------------

    def _close(self) -> None:
        try:
            self._write_group()
        finally:
            if self._broken is None:
                self._finish()
            else:
                self._abandon_writer()
            book = self.ledger
            book.acknowledged = self._durable
            book.failed = book.collected - self._durable

    def _reopen(self) -> None:
        self._rows, self._first = [], 0
        self._columns = _DefaultColumns() if self._fresh else None
        self._broken = None
        self._durable = 0
        self._base = None
        self._continue = os.path.exists(self.path)

    # -- checkpoint positions (dogesim.sinks.offsets) ---------------------------------------

    def output_identity(self) -> str:
        """The file's absolute path."""
        return f"parquet:{os.path.abspath(self.path)}"

    def position(self) -> dict[str, Any]:
        """Cut a row group and finish the file: it then holds every row collected so far."""
        self._write_group()
        self._finish()
        return {"rows": sum(self.row_groups), "row_groups": len(self.row_groups)}

    def restore_position(self, position: Mapping[str, Any]) -> None:
        """Continue the file from the checkpoint's rows (row groups past it are dropped when
        the next row group is written, and the file is checked to hold them)."""
        rows = position.get("rows")
        if rows is None:
            return
        if not os.path.exists(self.path):
            raise RunError(
                f"{self.path}: the checkpoint counted {rows} rows but the file is gone; resume "
                "needs the file the run wrote"
            )
        meta = pq.ParquetFile(self.path).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        total, keep = 0, 0
        while keep < len(sizes) and total < int(rows):
            total += sizes[keep]
            keep += 1
        if total != int(rows):
            raise RunError(
                f"{self.path} holds row groups of {sizes} rows, which do not end at the "
                f"checkpoint's {rows} rows: the file was changed since; resume needs the file "
                "the run wrote"
            )
        self._restore_groups = keep
        self._continue = True


class ParquetSinkFactory:
    """Creates `ParquetSink` s for named streams in one directory.

    Args:
        directory: where the files go; created when missing.
        row_group_size, compression: passed to every sink.
    """

    suffix = ".parquet"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        row_group_size: int = DEFAULT_ROW_GROUP,
        compression: str = "zstd",
    ) -> None:
        self.directory = Path(directory)
        self.row_group_size = row_group_size
        self.compression = compression

    def path_for(self, name: str) -> Path:
        """``<directory>/<name>.parquet`` (the suffix kept when `name` has it)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory / (name if name.endswith(self.suffix) else name + self.suffix)

    def create(
        self,
        name: str,
        mapper: Mapper | None = None,
        *,
        schema: Mapping[str, str] | pa.Schema | None = None,
    ) -> ParquetSink:
        """A sink writing stream `name`; `mapper` and `schema` as in `ParquetSink`."""
        return ParquetSink(
            self.path_for(name),
            mapper,
            schema=schema,
            row_group_size=self.row_group_size,
            compression=self.compression,
        )


def build_parquet(settings: Mapping[str, Any], context: BuildContext) -> ParquetSink:
    """A `ParquetSink` from registry settings; a resumed run continues the file."""
    path = Path(settings["path"])
    if path.parent != Path("."):
        path.parent.mkdir(parents=True, exist_ok=True)
    return ParquetSink(
        path,
        settings.get("mapper"),
        schema=settings.get("schema"),
        row_group_size=settings.get("row_group_size", DEFAULT_ROW_GROUP),
        compression=settings.get("compression", "zstd"),
        append=context.append or bool(settings.get("append", False)),
    )
