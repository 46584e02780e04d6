"""DbSink against a real PostgreSQL (COPY through psycopg 3): exact rows, exact failure counts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")
psycopg = pytest.importorskip("psycopg")

from dogesim.errors import SinkError  # noqa: E402
from dogesim.examples.banking import User, banking_simulation, event_row  # noqa: E402
from dogesim.model import Transition  # noqa: E402
from dogesim.sinks.base import EventSink  # noqa: E402
from dogesim.sinks.db import DbSinkFactory  # noqa: E402
from dogesim.sinks.memory import MemorySink  # noqa: E402
from tests.integration.services import db_url, libpq_db_url, unique_name  # noqa: E402

pytestmark = pytest.mark.db

T0 = 1_700_000_000_000
LOGIN = Transition("login", "offline", "online", 10)
SEED = 99
SUBJECTS = 500
TICKS = 1000


row_mapper = event_row


def reference(mapper: Any = row_mapper) -> list[Any]:
    memory = MemorySink(mapper)
    banking_simulation(
        [memory], subjects=SUBJECTS, ticks=TICKS, seed=SEED, timestamp_start=T0
    ).run()
    assert len(memory.events) > 500
    return memory.events


def sql(statement: str) -> list[tuple[Any, ...]]:
    """Run one statement on a fresh connection (autocommit) and return its rows."""
    with psycopg.connect(libpq_db_url(), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(statement)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def table() -> Iterator[str]:
    """A fresh events table (with an id giving insertion order), dropped afterwards."""
    name = unique_name("dogesim_pg").replace("-", "_")
    sql(
        f"CREATE TABLE {name} (id bigserial PRIMARY KEY, timestamp bigint, user_id bigint, "
        "balance bigint, loan_balance bigint, event varchar(50))"
    )
    yield name
    sql(f"DROP TABLE IF EXISTS {name}")


def read_rows(name: str) -> list[dict[str, Any]]:
    columns = ["timestamp", "user_id", "balance", "loan_balance", "event"]
    rows = sql(f"SELECT {', '.join(columns)} FROM {name} ORDER BY id")
    return [dict(zip(columns, row, strict=True)) for row in rows]


def test_factory_uses_copy_for_postgresql_url() -> None:
    """A bare postgresql:// URL gets psycopg 3, and with it the COPY path."""
    factory = DbSinkFactory(db_url())
    assert factory.engine.driver == "psycopg"
    assert factory.use_copy
    factory.engine.dispose()


def test_banking_run_equals_memory_sink(table: str) -> None:
    """A seeded banking run via COPY holds exactly the MemorySink rows, in order."""
    sink = DbSinkFactory(db_url()).create(table, row_mapper, batch_size=333)
    result = banking_simulation(
        [sink], subjects=SUBJECTS, ticks=TICKS, seed=SEED, timestamp_start=T0
    ).run()
    expected = reference()
    assert read_rows(table) == expected
    ledger = result.ledgers[0]
    assert (ledger.collected, ledger.acknowledged, ledger.failed) == (len(expected),) * 2 + (0,)


def test_create_table_with_json_and_text(tmp_path: Any) -> None:
    """create_table=True on PostgreSQL: derived columns, JSON values round-trip via COPY."""
    name = unique_name("dogesim_new").replace("-", "_")

    def mapper(ts: int, u: User, t: Transition) -> dict[str, Any]:
        return {
            "ts": ts,
            "who": str(u.user_id),
            "ok": u.balance > 500,
            "ratio": u.balance / 7,
            "user": {"id": u.user_id, "tags": ["a", "ü"]},
        }

    try:
        sink = DbSinkFactory(db_url()).create(name, mapper, batch_size=100, create_table=True)
        banking_simulation([sink], subjects=100, ticks=500, seed=SEED, timestamp_start=T0).run()
        expected = MemorySink(mapper)
        banking_simulation([expected], subjects=100, ticks=500, seed=SEED, timestamp_start=T0).run()
        rows = sql(f'SELECT ts, who, ok, ratio, "user" FROM {name}')
        got = sorted(
            ({"ts": r[0], "who": r[1], "ok": r[2], "ratio": r[3], "user": r[4]} for r in rows),
            key=json.dumps,
        )
        assert got == sorted(expected.events, key=json.dumps)
        types = dict(
            sql(
                "SELECT column_name, data_type FROM information_schema.columns "
                f"WHERE table_name = '{name}'"
            )
        )
        assert types == {
            "ts": "bigint",
            "who": "text",
            "ok": "boolean",
            "ratio": "double precision",
            "user": "json",
        }
    finally:
        sql(f"DROP TABLE IF EXISTS {name}")


def test_values_psycopg_would_not_type_still_load(table: str) -> None:
    """Digits as strings for a bigint column: PostgreSQL parses them, the sink still loads."""
    rows = iter([{"timestamp": str(T0 + i), "user_id": i, "event": "x"} for i in range(10)])
    sink = DbSinkFactory(db_url()).create(table, lambda ts, s, t: next(rows), batch_size=4)
    for _ in range(10):
        sink.collect(T0, None, Transition("x", "a", "a", 1))
    sink.close()
    assert [r[0] for r in sql(f"SELECT timestamp FROM {table} ORDER BY id")] == [
        T0 + i for i in range(10)
    ]


class KillConnectionAfter(EventSink):
    """After `n` events, terminates the sink's server connection with pg_terminate_backend."""

    def __init__(self, n: int, application_name: str) -> None:
        self.n = n
        self.application_name = application_name
        self.seen = 0
        self.killed: list[tuple[Any, ...]] = []

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        self.seen += 1
        if self.seen == self.n:
            self.killed = sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE application_name = '{self.application_name}'"
            )


def test_connection_killed_mid_run_reports_exact_committed_count(table: str) -> None:
    """pg_terminate_backend mid-run: the run fails, and the committed count it reports is
    what the table holds."""
    app = unique_name("dogesim-kill")
    factory = DbSinkFactory(db_url(), engine_kwargs={"connect_args": {"application_name": app}})
    sink = factory.create(table, row_mapper, batch_size=100)
    killer = KillConnectionAfter(n=1050, application_name=app)
    with pytest.raises(SinkError) as info:
        banking_simulation(
            [sink, killer], subjects=SUBJECTS, ticks=TICKS, seed=SEED, timestamp_start=T0
        ).run()
    assert killer.killed == [(True,)], "the sink's connection was not found to kill"
    (count,) = sql(f"SELECT count(*) FROM {table}")[0]
    assert count == sink.ledger.acknowledged
    assert 0 < count <= 1000
    assert f"{count} rows committed to table '{table}'" in str(info.value)
    assert sink.ledger.collected - count > 0
    assert read_rows(table) == reference()[:count]


def test_missing_table_lists_existing_tables(table: str) -> None:
    """A missing table is one clear error naming it and listing the tables that exist."""
    with pytest.raises(SinkError) as info:
        DbSinkFactory(db_url()).create(table + "_missing", row_mapper)
    message = str(info.value)
    assert f"table '{table}_missing' does not exist" in message
    assert f"'{table}'" in message


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"password": "wrong-password"}, "password authentication failed"),
        ({"database": "no_such_database"}, 'database "no_such_database" does not exist'),
        ({"port": 1}, "Connection refused"),
    ],
)
def test_bad_url_is_one_clear_error(change: dict[str, Any], match: str) -> None:
    """A wrong password, database or port fails at the factory; the password is hidden."""
    url = sa.make_url(db_url()).set(**change).render_as_string(hide_password=False)
    with pytest.raises(SinkError, match=match) as info:
        DbSinkFactory(url)
    assert "cannot connect to database postgresql+psycopg://" in str(info.value)
    assert "wrong-password" not in str(info.value)


def test_two_sinks_of_one_factory_in_threads_do_not_mix(table: str) -> None:
    """Two tables from one factory (one engine) each get exactly their own rows."""
    other = table + "_b"
    sql(f"CREATE TABLE {other} (LIKE {table} INCLUDING ALL)")
    try:
        factory = DbSinkFactory(db_url())
        sinks = [factory.create(name, row_mapper, batch_size=64) for name in (table, other)]
        errors: list[BaseException] = []

        def feed(index: int) -> None:
            try:
                for i in range(1000):
                    sinks[index].collect(T0 + i, User(i, index, 0, 0), Transition("e", "a", "a", 1))
                sinks[index].close()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=feed, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert sql(f"SELECT count(*), min(balance), max(balance) FROM {table}") == [(1000, 0, 0)]
        assert sql(f"SELECT count(*), min(balance), max(balance) FROM {other}") == [(1000, 1, 1)]
    finally:
        sql(f"DROP TABLE IF EXISTS {other}")


@pytest.fixture
def sink_under_test() -> Iterator[Any]:
    """The conformance harness for DbSink on PostgreSQL (COPY), on a fresh table."""
    from dogesim.sinks.conformance import SinkHarness

    name = unique_name("dogesim_conf").replace("-", "_")
    sql(f"CREATE TABLE {name} (id bigserial PRIMARY KEY, timestamp bigint, trigger text, n bigint)")
    factory = DbSinkFactory(db_url())

    def values() -> list[int]:
        return [row[0] for row in sql(f"SELECT n FROM {name} ORDER BY id")]

    yield SinkHarness(
        "postgresql",
        lambda mapper: factory.create(name, mapper, 4),
        lambda: int(sql(f"SELECT count(*) FROM {name}")[0][0]),
        values,
    )
    factory.engine.dispose()
    sql(f"DROP TABLE IF EXISTS {name}")


from dogesim.sinks.conformance import SinkConformance  # noqa: E402


class TestPostgresConformance(SinkConformance):
    """DbSink on a real PostgreSQL keeps the sink contract."""


def test_one_sink_reused_by_two_runs_delivers_both(table: str) -> None:
    """One PostgreSQL sink given to two simulations run in turn holds both runs' rows."""
    sink = DbSinkFactory(db_url()).create(table, row_mapper, batch_size=7)
    runs = [
        banking_simulation([sink], subjects=30, ticks=200, seed=seed, timestamp_start=T0)
        for seed in (1, 2)
    ]
    ledgers = [run.run().ledgers[0] for run in runs]
    expected: list[Any] = []
    for seed in (1, 2):
        memory = MemorySink(row_mapper)
        banking_simulation([memory], subjects=30, ticks=200, seed=seed, timestamp_start=T0).run()
        expected += memory.events
    assert read_rows(table) == expected
    assert [book.acknowledged for book in ledgers] == [
        len(expected) - ledgers[1].collected,
        ledgers[1].collected,
    ]
    assert all(book.ok for book in ledgers)


def test_password_with_at_sign_is_masked_whole() -> None:
    """A wrong password holding '@' is never shown, not even its tail."""
    url = sa.make_url(db_url())
    text = f"postgresql://{url.username}:wr0ng@pa55@{url.host}:{url.port}/{url.database}"
    with pytest.raises(SinkError, match="password authentication failed") as info:
        DbSinkFactory(text)
    assert "wr0ng" not in str(info.value) and "pa55" not in str(info.value)


def test_interrupt_during_copy_in_close_keeps_committed_batches(table: str) -> None:
    """A KeyboardInterrupt while close() COPYs: committed batches stay, the ledger is exact."""
    import signal

    sql(
        f"CREATE FUNCTION {table}_slow() RETURNS trigger AS $$ BEGIN "
        f"IF NEW.user_id = 11 THEN PERFORM pg_sleep(5); END IF; RETURN NEW; END $$ "
        "LANGUAGE plpgsql"
    )
    sql(
        f"CREATE TRIGGER {table}_slow BEFORE INSERT ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {table}_slow()"
    )
    sink = DbSinkFactory(db_url()).create(table, row_mapper, batch_size=5)
    for i in range(12):
        sink.collect(T0 + i, User(i, 0, 0, 0), LOGIN)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            sink.close()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        sql(f"DROP FUNCTION IF EXISTS {table}_slow() CASCADE")
    assert len(read_rows(table)) == 10
    assert (sink.ledger.collected, sink.ledger.acknowledged, sink.ledger.failed) == (12, 10, 2)
    with pytest.raises(SinkError, match=r"close\(\) was interrupted"):
        sink.close()
