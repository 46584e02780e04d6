"""Per-writer row counts kept beside a table, committed in the transaction of the rows they count.

- `POSITIONS_TABLE`: the side table's name, ``dogesim_positions``.
- `ensure_table(engine, schema)`: create the side table when it is missing (safe when
  several processes do it at once).
- `committed_rows(engine, schema, key)`: the rows committed under `key` (0 when none).
- `record_rows(conn, schema, key, rows)`: set `key`'s count inside `conn`'s open transaction.

Why. A checkpointed `DbSink` commits its rows only at checkpoints, so a crash leaves nothing
past the last one; on its own its position is the table's row count. When several shards
write one table, each with checkpoints of its own, that count mixes them all and says nothing
about any one shard. Each writer (a shard's sink, named by a key such as its checkpoint's
path) therefore also keeps the number of rows it has committed in ``dogesim_positions``,
updated in the same transaction as the rows: a shard's rows and its count are committed
together or not at all, so at a resume the count tells exactly which of the shard's two
candidate checkpoints (the last one and a pending one) the table holds.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

__all__ = ["POSITIONS_TABLE", "committed_rows", "ensure_table", "record_rows"]

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
            sa.Column("committed_rows", sa.BigInteger, nullable=False),
            schema=schema,
        )
    return table


def ensure_table(engine: Engine, schema: str | None) -> None:
    """Create the side table unless it exists.

    Two shards starting together may both try: PostgreSQL can then refuse the second
    ``CREATE TABLE IF NOT EXISTS`` (a unique violation in its catalogue); the table is there
    all the same, which is checked before the error is passed on."""
    table = _table(schema)
    try:
        table.create(engine, checkfirst=True)
    except sa_exc.SQLAlchemyError:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(POSITIONS_TABLE, schema=schema):
                raise


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


def record_rows(conn: Connection, schema: str | None, key: str, rows: int) -> None:
    """Set `key`'s committed rows to `rows` in `conn`'s open transaction (commits with it).

    An UPDATE, then an INSERT when no row was there: each key has one writer, so the two
    cannot race (no dialect-specific upsert is needed)."""
    table = _table(schema)
    updated = conn.execute(table.update().where(table.c.writer == key).values(committed_rows=rows))
    if updated.rowcount == 0:
        conn.execute(table.insert().values(writer=key, committed_rows=rows))
