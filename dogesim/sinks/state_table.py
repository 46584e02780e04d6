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

Checkpoints (`dogesim.sinks.offsets`): the sink's position is the state and ``updated_at``
of every row it holds. A resumed run hands it the checkpoint's subjects (`reconcile`)
before it goes on, and the sink brings the table back to the checkpoint in one
transaction: rows the run changed or deleted after it are written again as they were, and
the rows of newcomers it inserted after it are deleted — whether the run stopped cleanly
(nothing to do) or was killed. Only this run's rows are touched: its subjects', and
newcomers' whose keys continue the progression of its subjects' integer keys (``0, 1,
2, ...``; ``k, k + S, ...`` in shard ``k`` of ``S``).

Importing this module imports SQLAlchemy (the ``db`` extra).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
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

LOGGER = logging.getLogger(__name__)

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
        # The rows this sink holds, key -> (updated_at, state), and the latest time it wrote:
        # its checkpoint position. Not complete when it resumed a run that kept none.
        self._held: dict[Any, tuple[int, str]] = {}
        self._latest: int = 0
        self._complete = True
        self._saved: Mapping[str, Any] | None = None

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
        row = self._row(stamp, subject, self.initial_state)
        self._hold(row[self.key_column], stamp, self.initial_state)
        self._queue_statement("insert", row)

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
            key = getattr(subject, self.key)
            self._hold(key, timestamp, None)
            self._queue_statement("delete", {"b_key": key})
            return
        row = self._row(timestamp, subject, transition.to_state)
        self._hold(row[self.key_column], timestamp, transition.to_state)
        params = {f"b_{name}": value for name, value in row.items()}
        params["b_key"] = row[self.key_column]
        self._queue_statement("update", params)

    def _hold(self, key: Any, stamp: int, state: str | None) -> None:
        """Note the row of `key` as it will be (None: deleted), for the position."""
        if state is None:
            self._held.pop(key, None)
        else:
            self._held[key] = (stamp, state)
        self._latest = max(self._latest, stamp)

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
        where = self._by_key(table)
        self._statements = {
            "insert": table.insert(),
            "update": table.update()
            .where(where)
            .values({name: sa.bindparam(f"b_{name}") for name in first}),
            "delete": table.delete().where(where),
        }

    def _by_key(self, table: sa.Table) -> Any:
        """The condition of a statement about one subject's row: its key, bound as
        ``b_key``."""
        return table.c[self.key_column] == sa.bindparam("b_key")

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

    # -- checkpoint positions (dogesim.sinks.offsets) ---------------------------------------
    # Rows are committed batch by batch, also in a checkpointed run (a change-data-capture
    # table is read while it is written). A run killed after a checkpoint leaves rows
    # changed after it, so a resume first brings the table back (`reconcile`).

    def output_identity(self) -> str:
        """The database (password masked) and the table."""
        schema = f"{self.schema}." if self.schema else ""
        return f"state_table:{self.factory.shown_url}/{schema}{self.table_name}"

    def position(self) -> dict[str, Any]:
        """Commit the statements so far; the rows held (keys, ``updated_at`` and states,
        None when they cannot be told: keys that are not strings or integers, or a resume
        from a checkpoint that kept none) and the latest time written."""
        self.flush()
        keys = list(self._held)
        if not self._complete or not all(type(k) in (int, str) for k in keys):
            return {"keys": None, "latest": self._latest}
        held = self._held.values()
        return {
            "keys": keys,
            "stamps": [stamp for stamp, _ in held],
            "states": [state for _, state in held],
            "latest": self._latest,
        }

    def restore_position(self, position: Mapping[str, Any]) -> None:
        """Take the rows held at the checkpoint; `reconcile` then brings the table back to
        them."""
        self._saved = position
        keys = position.get("keys")
        self._complete = keys is not None
        held = zip(keys or (), position.get("stamps", ()), position.get("states", ()), strict=True)
        self._held = {key: (int(stamp), str(state)) for key, stamp, state in held}
        self._latest = int(position.get("latest", 0))

    def reconcile(self, subjects: Sequence[Any]) -> None:
        """Bring the table back to the checkpoint of a resumed run, whose `subjects` (all it
        had made, in order) are given: in one transaction, the rows of its subjects that
        differ from the checkpoint's (changed or deleted since) are written again as they
        were, and those of newcomers made after it are deleted. A resume from a checkpoint
        that kept no rows (an older one) changes nothing.

        Raises:
            SinkError: the database refused it (nothing is changed).
        """
        if self._saved is None or not self._complete:
            self._complete = False
            return
        keys = [getattr(subject, self.key) for subject in subjects]
        try:
            found = self._rows_found()
            restore = self._rows_changed_since(keys, subjects, found)
            drop = self._newcomers_after(keys, found)
            if restore or drop:
                self._rewrite(restore, drop)
        except (sa_exc.SQLAlchemyError, SinkConfigError) as exc:
            raise SinkError(
                f"sink {self.ledger.sink}: bringing table {self.table_name!r} back to the "
                f"checkpoint failed: {_first_line(exc)}",
                [self.ledger],
            ) from exc
        if restore or drop:
            LOGGER.warning(
                "sink %s: table %r brought back to the checkpoint: %d rows written as they "
                "were, %d rows of later newcomers deleted",
                self.ledger.sink,
                self.table_name,
                len(restore),
                len(drop),
            )

    def _rows_found(self) -> dict[Any, tuple[int, str]]:
        """Every row of the table: key -> (updated_at, state)."""
        if self.table is None:
            self.table = self._existing_table()
            if self.table is None:
                return {}
        c = self.table.c
        missing = [name for name in (self.key_column, "updated_at", "state") if name not in c]
        if missing:
            raise SinkConfigError(
                f"table {self.table_name!r} has no column(s) {', '.join(map(repr, missing))}"
            )
        query = sa.select(c[self.key_column], c["updated_at"], c["state"])
        with self.engine.connect() as conn:
            return {key: (stamp, state) for key, stamp, state in conn.execute(query)}

    def _rows_changed_since(
        self, keys: list[Any], subjects: Sequence[Any], found: Mapping[Any, tuple[int, str]]
    ) -> list[dict[str, Any]]:
        """The checkpoint's rows of the subjects whose row in `found` is not that (changed
        or deleted since): a row's ``updated_at`` and state tell, as every later statement
        is dated later."""
        rows = []
        for key, subject in zip(keys, subjects, strict=True):
            kept = self._held.get(key)
            if kept is not None and found.get(key) != kept:
                rows.append(self._row(kept[0], subject, kept[1]))
        return rows

    def _newcomers_after(self, keys: list[Any], found: Mapping[Any, tuple[int, str]]) -> list[Any]:
        """The keys in `found` of newcomers made after the checkpoint: when the subjects'
        keys are integers ``a, a + d, a + 2d, ...`` (a run's counter ids; ``d`` is the number
        of shards), the next ones of that progression, on rows written since it."""
        if len(keys) < 2 or not all(type(k) is int for k in keys):
            return []
        first, step = keys[0], keys[1] - keys[0]
        if step < 1 or any(k != first + step * i for i, k in enumerate(keys)):
            return []
        after = first + step * len(keys)
        return [
            key
            for key, (stamp, _) in found.items()
            if type(key) is int
            and key >= after
            and (key - first) % step == 0
            and stamp >= self._latest
        ]

    def _rewrite(self, restore: list[dict[str, Any]], drop: list[Any]) -> None:
        """Delete the rows of `drop` and of `restore`, then insert `restore`, in one
        transaction."""
        if restore and not self._statements:
            self._prepare(restore[0])
        table = self.table
        assert table is not None
        delete = table.delete().where(self._by_key(table))  # also when no statement is made
        gone = [*drop, *(row[self.key_column] for row in restore)]
        with self.engine.begin() as conn:
            conn.execute(delete, [{"b_key": key} for key in gone])
            if restore:
                conn.execute(table.insert(), restore)


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
