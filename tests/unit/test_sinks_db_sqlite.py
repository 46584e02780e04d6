"""DbSink on SQLite (no server): batching, create_table, errors and exact ledgers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")

from dogesim.errors import SinkError  # noqa: E402
from dogesim.examples.banking import User, banking_simulation, event_row  # noqa: E402
from dogesim.model import Transition  # noqa: E402
from dogesim.sinks.db import DbSinkFactory, _normalise_url, column_type_for  # noqa: E402
from dogesim.sinks.memory import MemorySink  # noqa: E402

LOGIN = Transition("login", "offline", "online", 10)
T0 = 1_700_000_000_000


row_mapper = event_row


@pytest.fixture
def db(tmp_path: Path) -> tuple[str, Any]:
    """A SQLite file with an ``events`` table; yields (url, engine to read it back)."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE events (timestamp BIGINT, user_id INTEGER, balance INTEGER, "
            "loan_balance INTEGER, event VARCHAR(50))"
        )
        conn.exec_driver_sql("CREATE TABLE audit (id INTEGER)")
    yield url, engine
    engine.dispose()


def count(engine: Any, table: str = "events") -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())


def test_batches_commit_every_batch_size_rows(db: tuple[str, Any]) -> None:
    """Rows reach the table one batch (one transaction) at a time; close() writes the rest."""
    url, engine = db
    sink = DbSinkFactory(url).create("events", row_mapper, batch_size=3)
    for i in range(7):
        sink.collect(T0 + i, User(i, 10 * i, 0, 0), LOGIN)
        assert count(engine) == 3 * ((i + 1) // 3)
        assert sink.ledger.acknowledged == count(engine)
    sink.close()
    assert count(engine) == 7
    assert (sink.ledger.collected, sink.ledger.acknowledged, sink.ledger.failed) == (7, 7, 0)
    with engine.connect() as conn:
        first = conn.exec_driver_sql("SELECT * FROM events ORDER BY timestamp LIMIT 1").one()
    assert tuple(first) == (T0, 0, 0, 0, "login")


def test_a_table_read_while_another_shard_creates_it_is_read_again(
    db: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLAlchemy reads a SQLite table's columns, then checks it exists: a table another
    shard creates between the two reads shows with no columns (a CI run failed so, 'table
    'events' has columns []'). The race made certain: the first read sees no columns; the
    sink reads the table again and writes its rows."""
    url, engine = db
    factory = DbSinkFactory(url)
    dialect = type(factory.engine.dialect)
    truth = dialect.get_columns
    lies = [1]

    def get_columns(self: Any, connection: Any, name: str, *args: Any, **kw: Any) -> Any:
        if lies[0]:
            lies[0] -= 1
            return []
        return truth(self, connection, name, *args, **kw)

    monkeypatch.setattr(dialect, "get_columns", get_columns)
    sink = factory.create("events", row_mapper, batch_size=2)
    sink.collect(T0, User(1, 10, 0, 0), LOGIN)
    sink.close()
    assert lies == [0]
    assert count(engine) == 1 and sink.ledger.acknowledged == 1


def test_missing_table_lists_existing_tables(db: tuple[str, Any]) -> None:
    """A missing table fails at create(), naming it and the tables that do exist."""
    url, _ = db
    with pytest.raises(SinkError) as info:
        DbSinkFactory(url).create("evnets", row_mapper)
    message = str(info.value)
    assert "table 'evnets' does not exist" in message
    assert "existing tables: ['audit', 'events']" in message
    assert "create_table=True" in message


def test_unknown_column_is_named(db: tuple[str, Any]) -> None:
    """A row key that is not a column fails at the first event, naming it and the columns."""
    url, engine = db
    sink = DbSinkFactory(url).create("events", lambda ts, s, t: {"timestamp": ts, "usr": 1})
    with pytest.raises(SinkError, match=r"unknown column\(s\) \['usr'\]; table 'events' has"):
        sink.collect(T0, None, LOGIN)
    with pytest.raises(SinkError, match="0 rows committed to table 'events', 1 not"):
        sink.close()
    assert count(engine) == 0


def test_rows_must_keep_the_first_rows_keys(db: tuple[str, Any]) -> None:
    """A later row with other keys fails naming the missing and unknown keys."""
    url, _ = db
    rows = iter([{"timestamp": 1, "user_id": 2}, {"timestamp": 1, "bogus": 3}])
    sink = DbSinkFactory(url).create("events", lambda ts, s, t: next(rows))
    sink.collect(T0, None, LOGIN)
    with pytest.raises(SinkError) as info:
        sink.collect(T0, None, LOGIN)
    assert "unknown column(s) ['bogus']" in str(info.value)
    assert "missing column(s) ['user_id']" in str(info.value)
    with pytest.raises(SinkError, match="1 rows committed to table 'events', 1 not"):
        sink.close()


def test_mapper_must_return_a_mapping(db: tuple[str, Any]) -> None:
    """A mapper returning a tuple fails with a message saying a mapping is needed."""
    url, _ = db
    sink = DbSinkFactory(url).create("events", lambda ts, s, t: (ts, 1))
    with pytest.raises(SinkError, match="must return a mapping of column to value, got tuple"):
        sink.collect(T0, None, LOGIN)


def test_create_table_derives_column_types(tmp_path: Path) -> None:
    """create_table=True makes the table from the first row's Python types."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    row = {
        "n": 1,
        "x": 1.5,
        "s": "ü",
        "b": True,
        "at": dt.datetime(2024, 1, 2, 3, 4, 5),
        "meta": {"k": [1, 2]},
        "note": None,
    }
    sink = DbSinkFactory(url).create("fresh", lambda ts, s, t: row, create_table=True)
    sink.collect(T0, None, LOGIN)
    sink.close()
    engine = sa.create_engine(url)
    types = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("fresh")}
    expected = {
        "n": sa.BIGINT,
        "x": sa.FLOAT,
        "s": sa.TEXT,
        "b": sa.BOOLEAN,
        "at": sa.DATETIME,
        "meta": sa.JSON,
        "note": sa.TEXT,
    }
    assert list(types) == list(expected)
    for name, kind in expected.items():
        assert isinstance(types[name], kind), (name, types[name])
    table = sa.Table("fresh", sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(table)).one()._asdict() == row
    engine.dispose()


def test_in_memory_sqlite_keeps_its_rows_after_close() -> None:
    """An in-memory database survives the sinks' close(): the factory's engine still reads it."""
    factory = DbSinkFactory("sqlite://")
    sink = factory.create("mem", lambda ts, s, t: {"ts": ts}, batch_size=2, create_table=True)
    for i in range(5):
        sink.collect(T0 + i, None, LOGIN)
    sink.close()
    with factory.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM mem").scalar_one() == 5


def test_column_type_for() -> None:
    """bool is checked before int; unknown types fall back to Text."""
    assert isinstance(column_type_for(True), sa.Boolean)
    assert isinstance(column_type_for(3), sa.BigInteger)
    assert isinstance(column_type_for(dt.date(2024, 1, 1)), sa.Date)
    assert isinstance(column_type_for(b"x"), sa.LargeBinary)
    assert isinstance(column_type_for(object()), sa.Text)


def test_failed_batch_reports_exact_committed_count(tmp_path: Path) -> None:
    """A batch the database rejects fails with the committed count the table really holds."""
    url = f"sqlite:///{tmp_path / 'u.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE u (id INTEGER UNIQUE)")
    ids = iter([0, 1, 2, 3, 4, 5, 6, 7, 3, 9, 10])  # the duplicate 3 lands in the third batch
    sink = DbSinkFactory(url).create("u", lambda ts, s, t: {"id": next(ids)}, batch_size=3)
    for _ in range(6):
        sink.collect(T0, None, LOGIN)
    with pytest.raises(SinkError) as info:
        for _ in range(3):
            sink.collect(T0, None, LOGIN)
    assert "6 rows committed to table 'u', 3 not" in str(info.value)
    assert "UNIQUE constraint failed" in str(info.value)
    assert isinstance(info.value.__cause__, sa.exc.IntegrityError)
    with pytest.raises(SinkError, match=r"6 rows committed to table .u., 4 not"):
        sink.collect(T0, None, LOGIN)  # nothing more is written after a gap
    with pytest.raises(SinkError, match="6 rows committed to table 'u', 4 not"):
        sink.close()
    assert count(engine, "u") == 6 == sink.ledger.acknowledged
    assert sink.ledger.failed == 4
    engine.dispose()


def test_banking_run_equals_memory_sink(db: tuple[str, Any]) -> None:
    """A seeded banking run into SQLite holds exactly the rows of a MemorySink run."""
    url, engine = db
    sink = DbSinkFactory(url).create("events", row_mapper, batch_size=50)
    result = banking_simulation([sink], subjects=200, ticks=600, seed=3, timestamp_start=T0).run()
    memory = MemorySink(row_mapper)
    banking_simulation([memory], subjects=200, ticks=600, seed=3, timestamp_start=T0).run()
    with engine.connect() as conn:
        rows = [r._asdict() for r in conn.exec_driver_sql("SELECT * FROM events ORDER BY rowid")]
    assert len(memory.events) > 100
    assert rows == memory.events
    assert result.ledgers[0].acknowledged == len(rows)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("not a url", "is not a valid SQLAlchemy URL"),
        ("nosuchdb://x/y", "SQLAlchemy has no dialect 'nosuchdb'"),
        ("mysql://u:secret@127.0.0.1/db", "driver for 'mysql' is not installed"),
    ],
)
def test_bad_urls(url: str, match: str) -> None:
    """Unparseable URLs, unknown dialects and missing drivers fail at the factory."""
    with pytest.raises(SinkError, match=match) as info:
        DbSinkFactory(url)
    assert "secret" not in str(info.value)


def test_unreachable_database_fails_at_factory(tmp_path: Path) -> None:
    """A database that cannot be opened fails when the factory is made, naming the URL."""
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"
    with pytest.raises(SinkError, match="cannot connect to database sqlite:///"):
        DbSinkFactory(url)


def test_bad_batch_size(db: tuple[str, Any]) -> None:
    """batch_size must be a positive integer."""
    with pytest.raises(SinkError, match="batch_size must be an integer >= 1, got 0"):
        DbSinkFactory(db[0]).create("events", row_mapper, batch_size=0)


def test_postgresql_url_means_psycopg3() -> None:
    """postgresql:// maps to the psycopg 3 driver when psycopg2 is not installed."""
    pytest.importorskip("psycopg")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        expected = "postgresql+psycopg"
    else:
        expected = "postgresql"
    assert _normalise_url("postgresql://u:p@h:5432/db").drivername == expected
    assert _normalise_url("postgresql+psycopg://u:p@h/db").drivername == "postgresql+psycopg"


def test_one_sink_reused_by_two_runs_delivers_both(db: tuple[str, Any]) -> None:
    """One sink given to two simulations run in turn: the table holds both runs' rows."""
    url, engine = db
    sink = DbSinkFactory(url).create("events", row_mapper, batch_size=4)
    first = banking_simulation([sink], subjects=20, ticks=120, seed=5, timestamp_start=T0)
    second = banking_simulation([sink], subjects=20, ticks=120, seed=7, timestamp_start=T0)
    one, two = first.run(), second.run()
    expected = []
    for seed in (5, 7):
        memory = MemorySink(row_mapper)
        banking_simulation([memory], subjects=20, ticks=120, seed=seed, timestamp_start=T0).run()
        expected += memory.events
    with engine.connect() as conn:
        rows = [r._asdict() for r in conn.exec_driver_sql("SELECT * FROM events ORDER BY rowid")]
    assert two.ledgers[0].collected % 4 != 0  # the second run ends with a partial batch
    assert rows == expected
    assert one.ledgers[0].acknowledged + two.ledgers[0].acknowledged == len(rows)
    assert one.ledgers[0].ok and two.ledgers[0].ok


def test_interrupt_inside_close_keeps_the_committed_count(db: tuple[str, Any]) -> None:
    """A KeyboardInterrupt in close() propagates; the ledger says exactly what was committed."""
    url, engine = db
    factory = DbSinkFactory(url)
    sink = factory.create("events", row_mapper, batch_size=3)
    for i in range(7):
        sink.collect(T0 + i, User(i, 0, 0, 0), LOGIN)

    def interrupt(*args: Any) -> None:
        raise KeyboardInterrupt

    sa.event.listen(factory.engine, "before_cursor_execute", interrupt)
    with pytest.raises(KeyboardInterrupt):
        sink.close()
    sa.event.remove(factory.engine, "before_cursor_execute", interrupt)
    assert count(engine) == 6
    assert (sink.ledger.collected, sink.ledger.acknowledged, sink.ledger.failed) == (7, 6, 1)
    with pytest.raises(SinkError, match=r"close\(\) was interrupted \(KeyboardInterrupt\)"):
        sink.close()


def test_url_password_with_at_sign_is_parsed_whole() -> None:
    """A password containing '@' is the password, not part of the host."""
    url = _normalise_url("sqlite+pysqlite://user:p@ss:w@rd@localhost:5432/db")
    assert (url.username, url.password, url.host, url.port) == (
        "user",
        "p@ss:w@rd",
        "localhost",
        5432,
    )


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("postgresql://u:s3cr@t@127.0.0.1:1/db", "cannot connect to database"),
        ("postgresql://u:s3cr@t@127.0.0.1:port/db", r"port 'port' is not a number"),
        ("postgresql://u:s3cret@127.0.0.1:54x/db", r"port '54x' is not a number"),
        ("not a url s3cret", r"database URL \(not shown"),
        ("postgresql//u:s3cret@host/db", r"database URL \(not shown"),
    ],
)
def test_db_urls_never_show_the_password(url: str, match: str) -> None:
    """Errors about a DB URL hide the password wholly (also one with '@', or a bad port)."""
    pytest.importorskip("psycopg")
    with pytest.raises(SinkError, match=match) as info:
        DbSinkFactory(url, engine_kwargs={"connect_args": {"connect_timeout": 2}})
    assert isinstance(info.value, ValueError)
    assert "s3cr" not in str(info.value) and "t@127" not in str(info.value)
