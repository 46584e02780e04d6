"""Per-writer row counts kept beside a table, committed in the transaction of the rows they count.

- `POSITIONS_TABLE`: the side table's name, ``dogesim_positions``.
- `create_if_missing(engine, table)`: create a table (the side table, a sink's own) when it
  is missing, safe when several processes do it at once.
- `ensure_table(engine, schema)`: the side table, created when missing.
- `committed_rows(engine, schema, key)`: the rows committed under `key` (0 when none).
- `record_rows(conn, schema, key, rows, group)`: set `key`'s count inside `conn`'s open
  transaction.
- `start_group(engine, schema, group, table)`: note the rows `table` held before the
  writers of `group` began, once per group.
- `group_balance(engine, schema, group, table)`: the table's rows, and the rows it held
  before plus what the group's writers committed (equal unless someone else changed it).

Why. A checkpointed `DbSink` commits its rows only at checkpoints, so a crash leaves nothing
past the last one; on its own its position is the table's row count. When several shards
write one table, each with checkpoints of its own, that count mixes them all and says nothing
about any one shard. Each writer (a shard's sink, named by a key the run's manifest fixes)
therefore also keeps the number of rows it has committed in ``dogesim_positions``, updated in
the same transaction as the rows: a shard's rows and its count are committed together or not
at all, so at a resume the count tells exactly which of the shard's checkpoints the table
holds. The writers of one run share a group, whose first writer records the table's rows
before any of them wrote: the table's count then always equals that base plus the group's
counts, which a resume checks (rows deleted or added by someone else are refused).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

__all__ = [
    "POSITIONS_TABLE",
    "committed_rows",
    "create_if_missing",
    "ensure_table",
    "group_balance",
    "record_rows",
    "start_group",
]

POSITIONS_TABLE = "dogesim_positions"

_TABLES: dict[str | None, sa.Table] = {}


def _table(schema: str | None) -> sa.Table:
    """The side table of `schema` (one `MetaData` per schema, made once)."""
    table = _TABLES.get(schema)
    if table is None:
        table = _TABLES[schema] = sa.Table(
            POSITIONS_TABLE,
            sa.MetaData(),
            sa.Column("writer", sa.String(1000), primary_key=True),
            # the run's group of a shard's writer; None for a group's base row
            sa.Column("run_group", sa.String(1000), nullable=True, index=True),
            sa.Column("committed_rows", sa.BigInteger, nullable=False),
            schema=schema,
        )
    return table


def create_if_missing(engine: Engine, table: sa.Table) -> None:
    """Create `table` unless it exists, also when other processes try at the same moment
    (the shards of a run): the loser's ``CREATE TABLE`` fails (PostgreSQL: a unique
    violation in its catalogue; SQLite: "already exists") though the table is there, which
    is checked before the error is passed on."""
    try:
        with engine.begin() as conn:
            table.create(conn, checkfirst=True)
    except sa_exc.SQLAlchemyError:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table.name, schema=table.schema):
                raise


def ensure_table(engine: Engine, schema: str | None) -> None:
    """Create the side table unless it exists (`create_if_missing`)."""
    create_if_missing(engine, _table(schema))


def committed_rows(engine: Engine, schema: str | None, key: str) -> int:
    """The rows committed under `key` (0 when it has none, or the side table is missing)."""
    table = _table(schema)
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(POSITIONS_TABLE, schema=schema):
            return 0
        found = conn.execute(
            sa.select(table.c.committed_rows).where(table.c.writer == key)
        ).scalar_one_or_none()
    return int(found) if found is not None else 0


def record_rows(conn: Connection, schema: str | None, key: str, rows: int, group: str) -> None:
    """Set `key`'s committed rows to `rows` in `conn`'s open transaction (commits with it).

    An UPDATE, then an INSERT when no row was there: each key has one writer, so the two
    cannot race (no dialect-specific upsert is needed)."""
    table = _table(schema)
    updated = conn.execute(table.update().where(table.c.writer == key).values(committed_rows=rows))
    if updated.rowcount == 0:
        conn.execute(table.insert().values(writer=key, run_group=group, committed_rows=rows))


def _balance(
    conn: Connection, schema: str | None, group: str, table_name: str
) -> tuple[int, int, int | None]:
    """In one statement (one snapshot): the table's rows, the rows the group's writers
    committed, and the group's base (None before it is recorded)."""
    positions = _table(schema)
    if sa.inspect(conn).has_table(table_name, schema=schema):
        rows: sa.ColumnElement[int] = (
            sa.select(sa.func.count())
            .select_from(sa.table(table_name, schema=schema))
            .scalar_subquery()
        )
    else:
        rows = sa.literal(0)
    committed = (
        sa.select(sa.func.coalesce(sa.func.sum(positions.c.committed_rows), 0))
        .where(positions.c.run_group == group)
        .scalar_subquery()
    )
    base = (
        sa.select(positions.c.committed_rows)
        .where(positions.c.writer == f"{group}:base")
        .scalar_subquery()
    )
    found, total, kept = conn.execute(sa.select(rows, committed, base)).one()
    return int(found), int(total), None if kept is None else int(kept)


def start_group(engine: Engine, schema: str | None, group: str, table_name: str) -> None:
    """Record, once per `group`, the rows `table_name` held before the group's writers
    committed any: its count now less what they have committed so far (one snapshot), so
    any writer of the group may be the first to call this."""
    with engine.begin() as conn:
        found, committed, base = _balance(conn, schema, group, table_name)
        if base is not None:
            return
        try:
            with conn.begin_nested():
                conn.execute(
                    _table(schema)
                    .insert()
                    .values(
                        writer=f"{group}:base", run_group=None, committed_rows=found - committed
                    )
                )
        except sa_exc.IntegrityError:
            pass  # another writer of the group recorded it first (the same count)


def group_balance(
    engine: Engine, schema: str | None, group: str, table_name: str
) -> tuple[int, int | None]:
    """The table's rows, and its base plus the group's committed rows (None without a
    recorded base)."""
    with engine.connect() as conn:
        found, committed, base = _balance(conn, schema, group, table_name)
    return found, None if base is None else base + committed
