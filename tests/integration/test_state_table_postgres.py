"""StateTableSink against a real PostgreSQL: writers creating one table at the same moment
(the shards of a run) all write, and a move of a subject with no row is failed, not lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")
psycopg = pytest.importorskip("psycopg")

from dogesim.errors import SinkError  # noqa: E402
from dogesim.model import Transition  # noqa: E402
from dogesim.sinks.state_table import StateTableSink  # noqa: E402
from tests.integration.services import db_url, libpq_db_url, unique_name  # noqa: E402

pytestmark = pytest.mark.db

T0 = 1_700_000_000_000
UP = Transition("upgrade", "free", "paid", 5)


def sql(statement: str) -> list[tuple[Any, ...]]:
    """Run one statement on a fresh connection (autocommit) and return its rows."""
    with psycopg.connect(libpq_db_url(), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(statement)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def names() -> Iterator[list[str]]:
    """Fresh table names, each dropped afterwards."""
    made: list[str] = []
    yield made
    for name in made:
        sql(f"DROP TABLE IF EXISTS {name}")


def _insert_together(url: str, table: str, writers: int) -> list[str]:
    """`writers` sinks that found no table insert their first row at once (each creates
    the table); the errors they met."""
    sinks = [
        StateTableSink(url, table, initial_state="free", create_table=True) for _ in range(writers)
    ]
    barrier, errors = threading.Barrier(writers), []

    def write(ident: int) -> None:
        barrier.wait()
        try:
            sinks[ident].created(SimpleNamespace(id=ident), T0)
            sinks[ident].close()
        except SinkError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_writers_creating_one_table_at_once_all_write(names: list[str]) -> None:
    """Eight writers create each of six fresh tables at the same moment: every insert is
    acknowledged and every table holds eight rows (before the fix, nine rounds in ten had
    a loser: its CREATE TABLE failed on PostgreSQL's catalogue)."""
    for _ in range(6):
        names.append(unique_name("dogesim_state").replace("-", "_"))
        assert _insert_together(db_url(), names[-1], 8) == []
        assert sql(f"SELECT count(*) FROM {names[-1]}") == [(8,)]


def test_an_update_of_a_subject_with_no_row_is_failed(names: list[str]) -> None:
    """PostgreSQL counts the rows of a batch: the one update that matched none is failed,
    the other statements acknowledged and committed."""
    names.append(unique_name("dogesim_state").replace("-", "_"))
    sink = StateTableSink(db_url(), names[-1], initial_state="free", create_table=True)
    sink.created(SimpleNamespace(id=1), T0)
    sink.collect(T0 + 1, SimpleNamespace(id=2), UP)
    sink.collect(T0 + 2, SimpleNamespace(id=1), UP)
    with pytest.raises(SinkError, match="1 update matched no row"):
        sink.flush()
    assert (sink.ledger.acknowledged, sink.ledger.failed) == (2, 1)
    with pytest.raises(SinkError, match="lost 1 of 3"):
        sink.close()
    assert sql(f"SELECT id, state FROM {names[-1]}") == [(1, "paid")]
