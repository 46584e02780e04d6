"""SQL database sinks on SQLAlchemy 2 core: batched, one transaction per batch.

- `DbSinkFactory`: one engine for a database URL; ``create(table_name, row_mapper_function,
  batch_size)`` makes a `DbSink` per table (doge-datagen's call).
- `DbSink`: maps every event to a row and writes full batches. On PostgreSQL with psycopg 3 it
  streams each batch with ``COPY ... FROM STDIN`` (the fast path); on SQLite, MySQL/MariaDB
  and every other dialect it uses an executemany ``INSERT``.
- `column_type_for`: the column type ``create_table=True`` derives from a Python value.
- `reflect_table`: a table as the database has it, also while another process creates it.

Rows count as acknowledged only once their batch is committed, so when a batch fails the
`SinkError` says exactly how many rows the table holds from this sink. A sink whose batch
failed writes nothing more in that run: later rows are counted as not delivered, never
written out of order after a gap. A sink used again after ``close()`` reconnects (a new run,
with a new ledger); row mappers may return one reused dict (the values are buffered).

Importing this module imports SQLAlchemy; psycopg is imported only for PostgreSQL URLs.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import decimal
import json
import operator
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine

from dogesim.errors import RunError, SinkConfigError, SinkError
from dogesim.sinks.base import LedgeredSink
from dogesim.sinks.db_positions import (
    POSITIONS_TABLE,
    committed_rows,
    create_if_missing,
    ensure_table,
    group_balance,
    record_rows,
    start_group,
)
from dogesim.sinks.urls import masked_url

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = ["DbSink", "DbSinkFactory", "RowMapper", "column_type_for", "reflect_table"]

#: Maps one event ``(timestamp, subject, transition)`` to a row: column name -> value.
RowMapper = Callable[[int, Any, "Transition"], Mapping[str, Any]]


def column_type_for(value: object) -> sa.types.TypeEngine[Any]:
    """The column type `create_table=True` gives a column whose first value is `value`.

    bool -> Boolean, int -> BigInteger, float -> Float, Decimal -> Numeric, str -> Text,
    datetime -> DateTime (with time zone when the value has one), date -> Date,
    bytes -> LargeBinary, dict/list -> JSON, anything else (including None) -> Text.
    """
    if isinstance(value, bool):
        return sa.Boolean()
    if isinstance(value, int):
        return sa.BigInteger()
    if isinstance(value, float):
        return sa.Float()
    if isinstance(value, decimal.Decimal):
        return sa.Numeric()
    if isinstance(value, str):
        return sa.Text()
    if isinstance(value, _dt.datetime):
        return sa.DateTime(timezone=value.tzinfo is not None)
    if isinstance(value, _dt.date):
        return sa.Date()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return sa.LargeBinary()
    if isinstance(value, (dict, list)):
        return sa.JSON()
    return sa.Text()


def _parse_url(text: str) -> URL:
    """Parse a URL string; a password may hold ``@`` (the last ``@`` ends the user part)."""
    scheme, sep, rest = text.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not sep or not at or "@" not in userinfo or "/" in userinfo:
        return sa.make_url(text)
    user, _, password = userinfo.partition(":")
    return sa.make_url(f"{scheme}://{hostpart}").set(
        username=unquote(user), password=unquote(password) if password else None
    )


def _normalise_url(db_url: str | URL) -> URL:
    """Parse `db_url`; a bare ``postgresql://`` means psycopg 3 unless psycopg2 is installed.

    Raises:
        SinkConfigError: the URL cannot be parsed or its port is not a number; the message
            shows the URL with its password hidden, or not at all when it is not a URL.
    """
    try:
        url = db_url if isinstance(db_url, URL) else _parse_url(str(db_url))
    except sa_exc.ArgumentError:
        raise SinkConfigError(
            f"database URL {masked_url(str(db_url))} is not a valid SQLAlchemy URL "
            "(expected e.g. postgresql://user:password@host:5432/db or sqlite:///file.db)"
        ) from None
    except ValueError:
        port = str(db_url).rsplit("@", 1)[-1].split("/", 1)[0].rpartition(":")[2]
        raise SinkConfigError(
            f"database URL {masked_url(str(db_url))}: the port {port!r} is not a number "
            "(expected e.g. host:5432)"
        ) from None
    if url.drivername in ("postgresql", "postgres"):
        try:
            import psycopg2  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: F401
        except ImportError:
            url = url.set(drivername="postgresql+psycopg")
        else:
            url = url.set(drivername="postgresql")
    return url


def reflect_table(engine: Engine, name: str, schema: str | None) -> sa.Table:
    """Table `name` as the database has it. SQLAlchemy reads a SQLite table's columns and
    then checks that the table exists, so a table another connection creates between the two
    (another shard of the run) shows with no columns; a table never has none: it is read
    again, for a bounded time (5 s). Used wherever a sink reads a table another shard may be
    creating: when the sink is made and after its own create.

    Raises:
        sqlalchemy.exc.NoSuchTableError: there is no such table.
    """
    for _ in range(100):
        reflected = sa.Table(name, sa.MetaData(), autoload_with=engine, schema=schema)
        if len(reflected.columns):
            break
        time.sleep(0.05)
    return reflected


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class DbSinkFactory:
    """Creates `DbSink` s writing to one database, sharing one SQLAlchemy engine.

    The engine connects once when the factory is made, so a wrong URL, host or password fails
    here, with the URL (password hidden) in the message. When the last sink created by the
    factory is closed, the engine's pooled connections are closed (it reconnects if used
    again), except for an in-memory SQLite database, which would vanish with them.

    Args:
        db_url: a SQLAlchemy URL. ``postgresql://`` uses psycopg 3 (``postgresql+psycopg``)
            when psycopg2 is not installed.
        engine_kwargs: passed to `sqlalchemy.create_engine`.

    Raises:
        SinkError: the URL cannot be parsed, its driver is not installed, or the database
            cannot be reached.
    """

    def __init__(
        self, db_url: str | URL, *, engine_kwargs: Mapping[str, Any] | None = None
    ) -> None:
        self.url = _normalise_url(db_url)
        shown = self.url.render_as_string(hide_password=True)
        try:
            self.engine: Engine = sa.create_engine(self.url, **dict(engine_kwargs or {}))
        except sa_exc.NoSuchModuleError as exc:
            raise SinkConfigError(
                f"database URL {shown}: SQLAlchemy has no dialect {self.url.drivername!r}"
            ) from exc
        except ImportError as exc:
            raise SinkConfigError(
                f"database URL {shown}: the driver for {self.url.drivername!r} is not installed "
                f"({exc}); install it (e.g. pip install 'dogesim[postgres]')"
            ) from exc
        except (sa_exc.ArgumentError, TypeError) as exc:
            raise SinkConfigError(f"database URL {shown}: cannot create an engine: {exc}") from exc
        try:
            with self.engine.connect():
                pass
        except sa_exc.SQLAlchemyError as exc:
            self.engine.dispose()
            raise SinkConfigError(
                f"cannot connect to database {shown}: {_first_line(exc)}"
            ) from exc
        self.shown_url = shown
        self.use_copy = self.engine.dialect.name == "postgresql" and self.engine.driver == "psycopg"
        self._open_sinks = 0
        self._in_memory = self.engine.dialect.name == "sqlite" and self.url.database in (
            None,
            "",
            ":memory:",
        )

    def create(
        self,
        table_name: str,
        row_mapper_function: RowMapper,
        batch_size: int = 1000,
        *,
        create_table: bool = False,
        schema: str | None = None,
    ) -> DbSink:
        """A sink writing rows to `table_name`.

        Args:
            table_name: the table; it must exist unless `create_table` is true.
            row_mapper_function: ``(timestamp, subject, transition) -> {column: value}``; every
                row must have the same keys, all of them columns of the table.
            batch_size: rows per transaction.
            create_table: create a missing table, with columns derived from the first row
                (see `column_type_for`).
            schema: the schema (PostgreSQL) or attached database the table lives in.

        Raises:
            SinkError: the table does not exist (listing the tables that do), or `batch_size`
                is not a positive integer.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise SinkConfigError(
                f"table {table_name!r}: batch_size must be an integer >= 1, got {batch_size!r}"
            )
        table: sa.Table | None
        try:
            table = reflect_table(self.engine, table_name, schema)
        except sa_exc.NoSuchTableError:
            if not create_table:
                raise SinkConfigError(self._missing_table_message(table_name, schema)) from None
            table = None
        except sa_exc.SQLAlchemyError as exc:
            raise SinkConfigError(
                f"cannot read table {table_name!r} in {self.shown_url}: {_first_line(exc)}"
            ) from exc
        self._open_sinks += 1
        return DbSink(
            self,
            table_name,
            row_mapper_function,
            batch_size,
            table=table,
            schema=schema,
        )

    def _missing_table_message(self, table_name: str, schema: str | None) -> str:
        try:
            existing = sorted(sa.inspect(self.engine).get_table_names(schema=schema))
        except sa_exc.SQLAlchemyError as exc:
            existing = [f"<cannot list tables: {_first_line(exc)}>"]
        where = f"schema {schema!r} of " if schema else ""
        return (
            f"table {table_name!r} does not exist in {where}{self.shown_url}; existing tables: "
            f"{existing or 'none'} (create it first, or pass create_table=True)"
        )

    def _release(self) -> None:
        self._open_sinks -= 1
        if self._open_sinks <= 0:
            self._open_sinks = 0
            if not self._in_memory:
                self.engine.dispose()


#: PostgreSQL types whose psycopg dumper COPY may be told about up front (``set_types``),
#: which makes ``write_row`` about 1.5x faster. JSON columns are sent as text.
_TYPED_COPY_OIDS = frozenset(
    {16, 17, 20, 21, 23, 25, 700, 701, 1042, 1043, 1082, 1083, 1114, 1184, 1700, 2950}
)
_JSON_OIDS = frozenset({114, 3802})
_TEXT_OID = 25


class DbSink(LedgeredSink):
    """Writes one row per event to a table, `batch_size` rows per transaction.

    Made by `DbSinkFactory.create`; see there for the arguments. The row keys are checked
    against the table's columns at the first event (unknown columns raise `SinkError` naming
    them), and every later row must have the same keys.
    """

    def __init__(
        self,
        factory: DbSinkFactory,
        table_name: str,
        row_mapper_function: RowMapper,
        batch_size: int,
        *,
        table: sa.Table | None,
        schema: str | None = None,
    ) -> None:
        super().__init__(f"db:{table_name}")
        self.factory = factory
        self.engine = factory.engine
        self.table_name = table_name
        self.schema = schema
        self.table = table
        self.row_mapper_function = row_mapper_function
        self.batch_size = batch_size
        self.use_copy = factory.use_copy
        self.columns: tuple[str, ...] = ()
        self._batch: list[Any] = []
        self._ncols = -1
        self._getter: Callable[[Mapping[str, Any]], Any] = tuple
        self._json_positions: tuple[int, ...] = ()
        self._copy_sql: Any = None
        self._copy_sql_binary: Any = None
        self._copy_binary = False
        self._copy_types: list[int] | None = None
        self._broken: BaseException | None = None
        self._broken_rows = 0
        #: Set by `key_positions`: this writer's key in the positions table; the rows it
        #: has committed (counted with or without a key).
        self._position_key: str | None = None
        self._position_group = ""
        self._key_rows = 0
        self._errors: tuple[type[BaseException], ...] = (sa_exc.SQLAlchemyError,)
        if self.use_copy:
            import psycopg

            self._errors = (sa_exc.SQLAlchemyError, psycopg.Error)

    # -- collecting ------------------------------------------------------------------------

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Map the event to a row; write the batch when it is full."""
        if self._closed:
            self.reopen()
        self.ledger.collected += 1
        if self._broken is not None:
            self.ledger.failed += 1
            raise self._broken_error()
        try:
            row = self.row_mapper_function(timestamp, subject, transition)
        except Exception as exc:
            raise self.event_failed(exc, timestamp, "the row mapper") from exc
        try:
            # Same number of keys and every column present: the same keys as the first row.
            if len(row) != self._ncols:
                raise KeyError
            values = self._getter(row)
        except (KeyError, TypeError):
            values = self._check_row(row, transition, timestamp)
        # The values, not the mapping: a mapper may fill and return one dict every time.
        self._batch.append(values)
        if len(self._batch) >= self.batch_size:
            self._submit()

    def _check_row(self, row: Any, transition: Transition, timestamp: int) -> Any:
        """Start on the first row; for any other row, raise naming the keys at fault."""
        where = f"table {self.table_name!r}: row for event {transition.trigger!r} at {timestamp}"
        if not isinstance(row, Mapping):
            self.ledger.failed += 1
            raise SinkError(
                f"{where}: the row mapper must return a mapping of column to value, "
                f"got {type(row).__name__} {row!r}",
                [self.ledger],
            )
        known = [c.name for c in self.table.columns] if self.table is not None else []
        if self._ncols < 0:
            unknown = [k for k in row if k not in known] if self.table is not None else []
            if unknown:
                self.ledger.failed += 1
                raise SinkError(
                    f"{where}: unknown column(s) {unknown}; table {self.table_name!r} has "
                    f"columns {known}",
                    [self.ledger],
                )
            self._start(row)
            return self._getter(row)
        keys = set(row)
        first = set(self.columns)
        self.ledger.failed += 1
        detail = []
        extra = sorted(map(str, keys - first))
        if extra:
            really_unknown = [k for k in extra if k not in known]
            detail.append(
                f"unknown column(s) {really_unknown} (table columns {known})"
                if really_unknown
                else f"column(s) {extra} that the first row did not have"
            )
        missing = sorted(first - keys)
        if missing:
            detail.append(f"missing column(s) {missing}")
        raise SinkError(
            f"{where}: {'; '.join(detail)}. Every row must have the keys of the first row "
            f"{list(self.columns)} (use None for NULL); row {dict(row)!r}",
            [self.ledger],
        )

    def _start(self, first_row: Mapping[str, Any]) -> None:
        """Fix the column list from the first row (creating the table if asked to)."""
        columns = tuple(first_row)
        if self.table is None:
            self._create_table(first_row)
        assert self.table is not None
        if len(columns) == 1:
            only = columns[0]
            self._getter = lambda row: (row[only],)
        else:
            self._getter = operator.itemgetter(*columns)
        if self.use_copy:
            self._prepare_copy(columns)
        self.columns = columns
        self._ncols = len(columns)

    def _prepare_copy(self, columns: tuple[str, ...]) -> None:
        """The COPY statement, and the column types when psycopg can be told them up front."""
        from psycopg import sql

        assert self.table is not None
        target = (
            sql.Identifier(self.schema, self.table_name)
            if self.schema
            else sql.Identifier(self.table_name)
        )
        names = sql.SQL(", ").join(sql.Identifier(name) for name in columns)
        self._copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(target, names)
        # With the column types known, the binary format spares the server the text parsing.
        self._copy_sql_binary = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            target, names
        )
        self._json_positions = tuple(
            i for i, name in enumerate(columns) if isinstance(self.table.c[name].type, sa.JSON)
        )
        try:
            with self.engine.connect() as conn:
                raw = conn.connection.driver_connection
                with raw.cursor() as cursor:  # type: ignore[union-attr]
                    cursor.execute(sql.SQL("SELECT {} FROM {} LIMIT 0").format(names, target))
                    oids = [column.type_code for column in cursor.description or ()]
                conn.rollback()
        except self._errors as exc:
            self.ledger.failed += 1
            raise SinkError(
                f"table {self.table_name!r}: cannot read its column types: {_first_line(exc)}",
                [self.ledger],
            ) from exc
        types = [_TEXT_OID if oid in _JSON_OIDS else oid for oid in oids]
        typed = len(types) == len(columns) and all(oid in _TYPED_COPY_OIDS for oid in types)
        self._copy_types = types if typed else None
        # Binary COPY needs each value in its column's binary format: not for JSON columns,
        # which go as text (jsonb's binary format is not its text).
        self._copy_binary = typed and not any(oid in _JSON_OIDS for oid in oids)

    def _create_table(self, first_row: Mapping[str, Any]) -> None:
        table = sa.Table(
            self.table_name,
            sa.MetaData(),
            *(sa.Column(name, column_type_for(value)) for name, value in first_row.items()),
            schema=self.schema,
        )
        try:
            create_if_missing(self.engine, table)  # the shards of a run race to create it
            # Reflect: another process may have created it first, with other columns.
            self.table = reflect_table(self.engine, self.table_name, self.schema)
        except sa_exc.SQLAlchemyError as exc:
            self.ledger.failed += 1
            raise SinkError(
                f"table {self.table_name!r}: cannot create it in {self.factory.shown_url}: "
                f"{_first_line(exc)}",
                [self.ledger],
            ) from exc
        unknown = [k for k in first_row if k not in self.table.columns]
        if unknown:
            self.ledger.failed += 1
            raise SinkError(
                f"table {self.table_name!r}: unknown column(s) {unknown}; the table has columns "
                f"{[c.name for c in self.table.columns]}",
                [self.ledger],
            )

    # -- writing ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the pending rows in one transaction.

        Raises:
            SinkError: the batch failed (now or earlier), with the exact committed count.
        """
        if self._batch and self._broken is None:
            self._submit()
        if self._broken is not None:
            raise self._broken_error()

    def _submit(self) -> None:
        """Write the batch in one transaction and count it; raise `SinkError` on failure."""
        rows = self._batch
        self._batch = []
        # Besides the backend's errors, psycopg's dumpers raise these for a value that does
        # not fit the column's type on the client side (e.g. a str for a bigint column).
        dumping: tuple[type[BaseException], ...] = (TypeError, ValueError, OverflowError)
        caught = self._errors + dumping
        try:
            try:
                self._write(rows)
            except caught as exc:
                # Typed (and binary) COPY refuses such values, which PostgreSQL itself would
                # parse from text: redo the batch (rolled back) untyped, as text.
                client_side = isinstance(exc, dumping) or getattr(exc, "sqlstate", "") is None
                if self._copy_types is None or not client_side:
                    raise
                self._copy_types = None
                self._write(rows)
        except caught as exc:
            # Nothing is written after a failed batch: no gap in the middle of the data.
            self._broken, self._broken_rows = exc, len(rows)
            self.ledger.failed += len(rows)
            raise self._broken_error() from exc

    def _broken_error(self) -> SinkError:
        exc = self._broken
        assert exc is not None
        error = self._error(f"a batch of {self._broken_rows} rows failed: {_first_line(exc)}")
        error.__cause__ = exc
        return error

    def _write(self, rows: list[Any]) -> None:
        """One transaction: COPY on PostgreSQL/psycopg, an executemany INSERT elsewhere.

        The rows are counted as acknowledged right after the commit returns, with nothing in
        between, so an interrupt (a second Ctrl-C) can hardly fall between a commit and its
        count; an interrupted transaction is rolled back and its rows count as lost.
        """
        if getattr(self, "_deferred", False):
            self._write_uncommitted(rows)
            return
        self._write_committed(rows)

    def _write_committed(self, rows: list[Any]) -> None:
        with self.engine.connect() as conn:
            transaction = conn.begin()
            self._insert(conn, rows)
            self._record_key_rows(conn, len(rows))
            transaction.commit()
            self._key_rows += len(rows)
            self.ledger.acknowledged += len(rows)

    def _record_key_rows(self, conn: Connection, added: int) -> None:
        """With a position key, its committed rows plus `added`, in `conn`'s transaction."""
        if self._position_key is not None:
            record_rows(
                conn, self.schema, self._position_key, self._key_rows + added, self._position_group
            )

    def _insert(self, conn: Connection, rows: list[Any]) -> None:
        """The rows into the table within `conn`'s transaction (COPY or INSERT)."""
        if self.use_copy:
            self._copy(conn, rows)
            return
        assert self.table is not None
        columns = self.columns
        conn.execute(self.table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])

    def _copy(self, conn: Connection, rows: list[Any]) -> None:
        import psycopg

        raw = conn.connection.driver_connection
        json_positions = self._json_positions
        try:
            binary = self._copy_binary and self._copy_types is not None
            statement = self._copy_sql_binary if binary else self._copy_sql
            with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
                if self._copy_types is not None:
                    copy.set_types(self._copy_types)
                write_row = copy.write_row
                if json_positions:
                    for row in rows:
                        values = list(row)
                        for i in json_positions:
                            if values[i] is not None:
                                values[i] = json.dumps(values[i])
                        write_row(values)
                else:
                    for row in rows:
                        write_row(row)
        except psycopg.Error:
            # The raw connection bypassed SQLAlchemy's error handling: tell the pool when it
            # is dead, so nobody is handed it again.
            if raw is None or raw.closed or raw.broken:
                conn.invalidate()
            raise

    def _error(self, cause: str) -> SinkError:
        committed = self.ledger.acknowledged
        lost = self.ledger.collected - committed
        return SinkError(
            f"sink {self.ledger.sink}: {cause}; {committed} rows committed to table "
            f"{self.table_name!r}, {lost} not",
            [self.ledger],
        )

    def _close(self) -> None:
        try:
            if self._batch and self._broken is None:
                with contextlib.suppress(SinkError):  # counted; reported below
                    self._submit()
            with contextlib.suppress(SinkError):  # counted; reported below
                self._commit_held()
            if not self.ledger.ok:
                self.ledger.failed += self.ledger.pending
                if self._broken is not None:
                    raise self._broken_error()
                raise self._error("rows were rejected")
        finally:
            self._batch = []
            self.factory._release()

    def _reopen(self) -> None:
        # A new run: the factory's engine reconnects on first use; an old failure is history.
        self.factory._open_sinks += 1
        self._batch = []
        self._broken, self._broken_rows = None, 0

    # -- checkpoint positions (dogesim.sinks.offsets) ---------------------------------------
    # With checkpoints on, rows are committed only at a checkpoint (`position`) or at close:
    # a run killed in between leaves no row past the last checkpoint, so a resume neither
    # duplicates nor has to guess which rows to delete. Batches go into one open
    # transaction; on SQLite, which has one writer per file (several sinks may share it),
    # they wait in memory and are written in one transaction at the checkpoint.

    def defer_commits(self) -> None:
        """Commit only at checkpoints (`position`) and at close."""
        self._deferred = True
        self._uncommitted = 0
        self._held: tuple[Connection, Any] | None = None
        self._held_rows: list[Any] = []

    def abandon_uncommitted(self) -> None:
        """Roll back the rows since the last checkpoint (the run failed; they count as
        failed, and a resume from that checkpoint writes them again)."""
        if not getattr(self, "_deferred", False):
            return
        self.ledger.failed += len(self._batch)
        self._batch = []
        self._drop_held()

    def output_identity(self) -> str:
        """The database (password masked) and the table."""
        schema = f"{self.schema}." if self.schema else ""
        return f"db:{self.factory.shown_url}/{schema}{self.table_name}"

    def key_positions(
        self, key: str, group: str, *, resuming: bool = False, must_be_new: bool = False
    ) -> None:
        """Make this sink's position the rows it has committed itself, kept under `key` in
        the table ``dogesim_positions`` beside its table and updated in the transaction of
        its rows (`dogesim.sinks.db_positions`): for writers of one table that checkpoint
        apart, the shards of a sharded run, whose total row count tells no shard's rows.
        The writers of one run share `group`, whose base (the table's rows before them) lets
        a resume check the table as a whole.

        A fresh writer starts at 0 rows, committed at once; `must_be_new` (a shard of a
        resumed run that has no checkpoint) refuses a key that already has rows: they were
        committed with no checkpoint to continue from. A `resuming` sink takes its count
        from its checkpoint (`restore_position`).

        Raises:
            SinkError: the positions table cannot be created or written.
            RunError: `must_be_new` and the key has rows.
        """
        try:
            ensure_table(self.engine, self.schema)
            if not resuming:
                if must_be_new and (found := committed_rows(self.engine, self.schema, key)):
                    raise RunError(
                        f"sink {self.ledger.sink}: {found} rows of table "
                        f"{self.table_name!r} are committed under {key!r} in "
                        f"{POSITIONS_TABLE}, but that shard has no checkpoint to continue "
                        "them from; restore the table, or start the run again"
                    )
                with self.engine.begin() as conn:
                    record_rows(conn, self.schema, key, 0, group)
                start_group(self.engine, self.schema, group, self.table_name)
        except sa_exc.SQLAlchemyError as exc:
            raise self._error(
                f"keeping its position in the table {POSITIONS_TABLE!r} failed: {_first_line(exc)}"
            ) from exc
        self._position_key, self._position_group, self._key_rows = key, group, 0

    def position(self) -> dict[str, Any]:
        """Commit the rows collected so far; the rows the table holds (with a position key,
        the rows this sink committed)."""
        self.flush()
        self._commit_held()
        if self._position_key is not None:
            return self._keyed(self._key_rows)
        return {"table_rows": self._count_rows()}

    def planned_position(self) -> dict[str, Any]:
        """The rows the table will hold once `commit_position` has committed the rows
        collected so far (written, not yet committed); with a position key, the rows this
        sink will have committed."""
        self.flush()
        uncommitted = getattr(self, "_uncommitted", 0)
        if self._position_key is not None:
            return self._keyed(self._key_rows + uncommitted)
        return {"table_rows": self._count_rows() + uncommitted}

    def commit_position(self) -> None:
        """Commit the rows written since the last checkpoint (see `planned_position`)."""
        self._commit_held()

    def _keyed(self, rows: int) -> dict[str, Any]:
        return {"writer": self._position_key, "group": self._position_group, "writer_rows": rows}

    def holds_position(self, position: Mapping[str, Any]) -> bool:
        """Whether the table holds exactly the rows of `position`."""
        if "writer_rows" in position:
            return bool(self._writer_rows(position) == position["writer_rows"])
        return bool(self._count_rows() == position.get("table_rows"))

    def restore_position(self, position: Mapping[str, Any]) -> None:
        """Check the table holds exactly the rows it held at the checkpoint (deleting
        nothing: rows cannot be told apart), else `RunError`; a keyed position (see
        `key_positions`) is checked against its writer's committed rows and taken on."""
        if "writer_rows" in position:
            committed, kept = self._writer_rows(position), int(position["writer_rows"])
            if committed != kept:
                raise RunError(
                    f"sink {self.ledger.sink}: {POSITIONS_TABLE} records {committed} rows "
                    f"committed by {position['writer']!r} into table {self.table_name!r}, "
                    f"{kept} at the checkpoint: it was changed since; restore the "
                    "table first"
                )
            group = str(position.get("group", ""))
            self._check_group(group)
            self._position_key, self._position_group = str(position["writer"]), group
            self._key_rows = kept
            return
        found, expected = self._count_rows(), position.get("table_rows")
        if found != expected:
            raise RunError(
                f"sink {self.ledger.sink}: table {self.table_name!r} holds {found} rows, "
                f"{expected} at the checkpoint: rows were added or removed since (by another "
                "writer, or by a run that did not checkpoint); restore the table first"
            )

    def _check_group(self, group: str) -> None:
        """The table holds its base plus every committed row of the run's writers, else
        `RunError` (rows were deleted or added by someone else since)."""
        if not group:
            return
        try:
            found, expected = group_balance(self.engine, self.schema, group, self.table_name)
        except sa_exc.SQLAlchemyError as exc:
            raise self._error(f"reading {POSITIONS_TABLE} failed: {_first_line(exc)}") from exc
        if expected is not None and found != expected:
            raise RunError(
                f"sink {self.ledger.sink}: table {self.table_name!r} holds {found} rows, but "
                f"the rows it held before the run plus those the run's shards committed are "
                f"{expected}: rows were added or removed since; restore the table first"
            )

    def _writer_rows(self, position: Mapping[str, Any]) -> int:
        """The rows committed under the position's writer key."""
        try:
            return committed_rows(self.engine, self.schema, str(position["writer"]))
        except sa_exc.SQLAlchemyError as exc:
            raise self._error(f"reading {POSITIONS_TABLE} failed: {_first_line(exc)}") from exc

    def _count_rows(self) -> int:
        table = sa.table(self.table_name, schema=self.schema)
        try:
            with self.engine.connect() as conn:
                if not sa.inspect(conn).has_table(self.table_name, schema=self.schema):
                    return 0
                return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
        except sa_exc.SQLAlchemyError as exc:
            raise self._error(f"counting the table's rows failed: {_first_line(exc)}") from exc

    def _write_uncommitted(self, rows: list[Any]) -> None:
        """`rows` into the held transaction (opened at the first batch), not committed."""
        self._uncommitted += len(rows)
        if self.engine.dialect.name == "sqlite":
            self._held_rows.extend(rows)
            return
        if self._held is None:
            conn = self.engine.connect()
            self._held = (conn, conn.begin())
        # A savepoint per batch: a failed batch (which `_submit` may redo, or counts as
        # failed) is rolled back alone, the batches before it stay in the transaction.
        savepoint = self._held[0].begin_nested()
        try:
            self._insert(self._held[0], rows)
            savepoint.commit()
        except BaseException:
            self._uncommitted -= len(rows)
            with contextlib.suppress(Exception):
                savepoint.rollback()
            raise

    def _commit_held(self) -> None:
        """Commit what was written since the last checkpoint; `SinkError` if it fails."""
        if not getattr(self, "_deferred", False):
            return
        if self._broken is not None:  # nothing is written after a failed batch
            self._drop_held()
            return
        rows, self._held_rows = self._held_rows, []
        held, self._held = self._held, None
        count, self._uncommitted = self._uncommitted, 0
        try:
            if held is not None:
                self._record_key_rows(held[0], count)
                held[1].commit()
                self._key_rows += count
            elif rows:
                self._write_committed(rows)
                return  # counted there
        except self._errors as exc:
            self._broken, self._broken_rows = exc, count
            self.ledger.failed += count
            raise self._broken_error() from exc
        finally:
            if held is not None:
                with contextlib.suppress(Exception):
                    held[0].close()
        self.ledger.acknowledged += count

    def _drop_held(self) -> None:
        """Roll back what was written since the last checkpoint (counted as failed)."""
        self.ledger.failed += self._uncommitted
        self._uncommitted = 0
        self._held_rows = []
        held, self._held = self._held, None
        if held is not None:
            with contextlib.suppress(Exception):
                held[1].rollback()
                held[0].close()
