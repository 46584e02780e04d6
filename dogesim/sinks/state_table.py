"""A state table: one SQL row per subject, kept up to date for change-data-capture pipelines.

- `StateTableSink`: inserts a row when a subject is created (`created`, or a factory wrapped
  by `track`), updates it on each move and deletes it when the subject reaches a final state
  (churn). Statements are written in order, `batch_size` per transaction.
- `build_state_table`: the registry's builder (type ``state_table``).
- `StateTableLedger`: the sink's ledger, counted per statement (``collected`` statements
  issued, ``acknowledged`` committed; an update or delete that matched no row is
  ``failed``), with ``inserts``, ``updates`` and ``deletes``.

A row holds the subject's key (``key_column``, the primary key), its state (``state``), the
time of its last change (``updated_at``, epoch ms) and the columns `columns` gives
(``subject -> {column: value}``; by default the subject's fields). After a run the table
holds exactly the subjects that exist, each in its final state.

The sink must receive every move of its population (list it on every transition, e.g. in
``default_sinks``), or the table falls behind; a model file checks that when it is loaded.
Subjects start in `initial_state`, so the sink cannot follow a population whose initial
state is a mix.

Importing this module imports SQLAlchemy (the ``db`` extra).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from dogesim.engine import clock
from dogesim.errors import SinkConfigError, SinkError
from dogesim.sinks.base import DeliveryLedger, LedgeredSink
from dogesim.sinks.db import DbSinkFactory, _first_line, column_type_for, reflect_table
from dogesim.sinks.db_positions import create_if_missing
from dogesim.sinks.records import subject_fields

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = ["StateTableLedger", "StateTableSink", "build_state_table"]

#: Statement kinds, in the order the ledger names them.
_KINDS = ("insert", "update", "delete")


@dataclass
class StateTableLedger(DeliveryLedger):
    """A ledger counted per statement, with the statements of each kind issued."""

    inserts: int = 0
    updates: int = 0
    deletes: int = 0

    def summary(self) -> str:
        """The base summary plus the statements per kind."""
        return (
            f"{super().summary()}; inserts {self.inserts}, updates {self.updates}, "
            f"deletes {self.deletes}"
        )


def _all_fields(subject: Any) -> Mapping[str, Any]:
    fields = subject_fields(subject)
    return fields if isinstance(fields, Mapping) else {"subject": fields}


class StateTableSink(LedgeredSink):
    """Keeps one row per subject in table `table` of database `url`.

    Args:
        url: a SQLAlchemy database URL (``sqlite:///state.db``, ``postgresql://...``).
        table: the table.
        initial_state: the state subjects are created in.
        final_states: the states in which a subject no longer exists: its row is deleted.
        key: the subject attribute that identifies it (``id``).
        key_column: the column holding it (the key attribute's name by default).
        columns: ``subject -> {column: value}`` for the other columns (the subject's
            fields when None); called at each insert and update.
        batch_size: statements per transaction.
        create_table: create a missing table, typed from the first row
            (`dogesim.sinks.db.column_type_for`); with an existing table, every column the
            rows name must exist.
        schema: the schema (PostgreSQL) the table lives in.

    Raises:
        SinkConfigError: the URL or table is unusable, or an argument is wrong.
    """

    def __init__(
        self,
        url: str,
        table: str,
        *,
        initial_state: str,
        final_states: Iterable[str] = (),
        key: str = "id",
        key_column: str | None = None,
        columns: Callable[[Any], Mapping[str, Any]] | None = None,
        batch_size: int = 1000,
        create_table: bool = False,
        schema: str | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise SinkConfigError(
                f"state table {table!r}: batch_size must be an integer >= 1, got {batch_size!r}"
            )
        super().__init__(f"state_table:{table}")
        self.ledger: StateTableLedger = StateTableLedger(self.ledger.sink)
        self.factory = DbSinkFactory(url)
        self.factory._open_sinks += 1  # released at close, as for the factory's own sinks
        self.engine = self.factory.engine
        self.table_name = table
        self.schema = schema
        self.initial_state = initial_state
        self.final_states = frozenset(final_states)
        self.key = key
        self.key_column = key_column or key
        self.columns = columns or _all_fields
        self.batch_size = batch_size
        self.create_table = create_table
        self.table: sa.Table | None = self._existing_table()
        self._statements: dict[str, Any] = {}
        self._queue: list[tuple[str, dict[str, Any]]] = []
        self._last_time: int = 0

    def _existing_table(self) -> sa.Table | None:
        try:
            return reflect_table(self.engine, self.table_name, self.schema)
        except sa_exc.NoSuchTableError:
            if not self.create_table:
                raise SinkConfigError(
                    self.factory._missing_table_message(self.table_name, self.schema)
                ) from None
            return None
        except sa_exc.SQLAlchemyError as exc:
            raise SinkConfigError(
                f"cannot read table {self.table_name!r} in {self.factory.shown_url}: "
                f"{_first_line(exc)}"
            ) from exc

    # -- the three statements ---------------------------------------------------------------

    def _row(self, timestamp: int, subject: Any, state: str) -> dict[str, Any]:
        row = {self.key_column: getattr(subject, self.key), "state": state}
        row["updated_at"] = timestamp
        for name, value in self.columns(subject).items():
            if name != self.key:
                row.setdefault(name, value)
        return row

    def _queue_statement(self, kind: str, params: dict[str, Any]) -> None:
        book = self.ledger
        book.collected += 1
        setattr(book, f"{kind}s", getattr(book, f"{kind}s") + 1)
        self._queue.append((kind, params))
        if len(self._queue) >= self.batch_size:
            self.flush()

    def created(self, subject: Any, timestamp: int | None = None) -> None:
        """Insert the row of a new `subject` (in `initial_state`).

        Args:
            subject: the new subject.
            timestamp: its creation time; by default the time of the tick being handled
                (`dogesim.engine.current_time`), or the last time this sink saw.
        """
        if self._closed:
            self.reopen()
        now = timestamp if timestamp is not None else clock.current_time()
        stamp = self._last_time if now is None else now
        self._queue_statement("insert", self._row(stamp, subject, self.initial_state))

    def track(self, factory: Callable[[], Any]) -> Callable[[], Any]:
        """`factory`, inserting each subject it makes (pass it as the subject factory)."""

        def create() -> Any:
            subject = factory()
            self.created(subject)
            return subject

        return create

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Update the subject's row to its new state, or delete it in a final state."""
        if self._closed:
            self.reopen()
        self._last_time = timestamp
        if transition.to_state in self.final_states:
            self._queue_statement("delete", {"b_key": getattr(subject, self.key)})
            return
        row = self._row(timestamp, subject, transition.to_state)
        params = {f"b_{name}": value for name, value in row.items()}
        params["b_key"] = row[self.key_column]
        self._queue_statement("update", params)

    # -- writing ----------------------------------------------------------------------------

    def _prepare(self, first: Mapping[str, Any]) -> None:
        """The table (created from the first row when asked) and the three statements."""
        if self.table is None:
            self.table = self._create(first)
        table = self.table
        missing = [name for name in first if name not in table.c]
        if missing:
            raise SinkConfigError(
                f"sink {self.ledger.sink}: table {self.table_name!r} has no column(s) "
                f"{', '.join(map(repr, missing))}; its columns: {', '.join(table.c.keys())}"
            )
        where = table.c[self.key_column] == sa.bindparam("b_key")
        self._statements = {
            "insert": table.insert(),
            "update": table.update()
            .where(where)
            .values({name: sa.bindparam(f"b_{name}") for name in first}),
            "delete": table.delete().where(where),
        }

    def _create(self, first: Mapping[str, Any]) -> sa.Table:
        """The table, created typed from `first` unless it exists: the shards of a run race
        to create it, and one may have created it first (with other columns, which
        `_prepare` then names)."""
        table_columns = [
            sa.Column(name, column_type_for(value), primary_key=name == self.key_column)
            for name, value in first.items()
        ]
        create_if_missing(
            self.engine,
            sa.Table(self.table_name, sa.MetaData(), *table_columns, schema=self.schema),
        )
        return reflect_table(self.engine, self.table_name, self.schema)

    def _first_row(self, queue: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        for kind, params in queue:
            if kind == "insert":
                return params
            if kind == "update":
                return {k[2:]: v for k, v in params.items() if k != "b_key"}
        return {self.key_column: None, "state": "", "updated_at": 0}

    def flush(self) -> None:
        """Write the queued statements in one transaction, in order.

        An update or delete that matches no row (the subject has none: it was never
        inserted, or someone else removed it) changed nothing: it counts as failed, and the
        others as acknowledged once committed.

        Raises:
            SinkError: the database refused them (they count as failed), or some matched
                no row (those count as failed).
        """
        queue, self._queue = self._queue, []
        if not queue:
            return
        try:
            if not self._statements:
                self._prepare(self._first_row(queue))
            with self.engine.begin() as conn:
                unmatched = self._execute(conn, queue)
        except (sa_exc.SQLAlchemyError, SinkConfigError) as exc:
            self.ledger.failed += len(queue)
            raise SinkError(
                f"sink {self.ledger.sink}: writing {len(queue)} statements to table "
                f"{self.table_name!r} failed: {_first_line(exc)}; {self.ledger.summary()}",
                [self.ledger],
            ) from exc
        missed = sum(unmatched.values())
        self.ledger.acknowledged += len(queue) - missed
        self.ledger.failed += missed
        if missed:
            raise SinkError(self._unmatched_message(unmatched), [self.ledger])

    def _execute(
        self, conn: sa.Connection, queue: list[tuple[str, dict[str, Any]]]
    ) -> dict[str, int]:
        """Run `queue` in `conn`, each run of one kind in one call; the updates and deletes
        that matched no row, per kind."""
        unmatched = {"update": 0, "delete": 0}
        start = 0
        while start < len(queue):
            kind = queue[start][0]
            end = start
            while end < len(queue) and queue[end][0] == kind:
                end += 1
            params = [p for _, p in queue[start:end]]
            if kind == "insert":
                conn.execute(self._statements[kind], params)
            else:
                unmatched[kind] += len(params) - self._changed(conn, kind, params)
            start = end
        return unmatched

    def _changed(self, conn: sa.Connection, kind: str, params: list[dict[str, Any]]) -> int:
        """The rows an update or delete of each of `params` changed (one call when the
        driver counts the rows of a batch, else one statement each)."""
        statement = self._statements[kind]
        if conn.dialect.supports_sane_multi_rowcount or len(params) == 1:
            return int(conn.execute(statement, params).rowcount)
        return sum(int(conn.execute(statement, p).rowcount) for p in params)

    def _unmatched_message(self, unmatched: Mapping[str, int]) -> str:
        counts = " and ".join(f"{n} {kind}{'s' * (n > 1)}" for kind, n in unmatched.items() if n)
        return (
            f"sink {self.ledger.sink}: {counts} matched no row in table {self.table_name!r} "
            f"(a subject with no row: not inserted by this sink, or removed by someone else); "
            f"counted as failed; {self.ledger.summary()}"
        )

    def _close(self) -> None:
        try:
            with contextlib.suppress(SinkError):  # counted; the ledger check reports it
                self.flush()
        finally:
            self._queue = []
            self.factory._release()

    def _reopen(self) -> None:
        self.ledger = StateTableLedger(self.ledger.sink)
        self.factory._open_sinks += 1
        self._queue = []


def _picked(names: list[str]) -> Callable[[Any], Mapping[str, Any]]:
    """A `columns` function reading the attributes `names` of a subject."""

    def columns(subject: Any) -> Mapping[str, Any]:
        return {name: getattr(subject, name, None) for name in names}

    return columns


def build_state_table(settings: Mapping[str, Any], context: Any) -> StateTableSink:
    """A `StateTableSink` from registry settings (``url``, ``table``, ``initial_state``, ...).

    ``columns`` names the subject attributes to keep (all of its fields when missing). A
    model file fills ``initial_state`` and ``final_states`` in from its model.

    Raises:
        SinkConfigError: ``initial_state`` is missing, or the database or table is unusable.
    """
    if "initial_state" not in settings:
        raise SinkConfigError(
            f"{context.where}: a state_table sink needs initial_state (the state subjects "
            "are created in); a model file sets it from its initial_state"
        )
    names = settings.get("columns")
    return StateTableSink(
        settings["url"],
        settings["table"],
        initial_state=settings["initial_state"],
        final_states=settings.get("final_states", ()),
        key=settings.get("key", "id"),
        key_column=settings.get("key_column"),
        columns=_picked(list(names)) if names is not None else None,
        batch_size=settings.get("batch_size", 1000),
        create_table=settings.get("create_table", False),
        schema=settings.get("schema"),
    )
