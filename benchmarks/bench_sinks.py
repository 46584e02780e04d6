"""Sink throughput: dogesim's sinks against the raw clients, on the same payloads, in one run.

- JSONL: `JsonLinesSink` events/s with its default record (always run).
- Kafka (``--kafka``): `KafkaSink` against a raw confluent-kafka ``produce()`` loop with the
  same producer settings, keys, values and timestamps; both timed until every message is
  acknowledged. Target ratio >= 0.7.
- PostgreSQL (``--postgres``): `DbSink` rows/s (COPY through psycopg 3) against psycopg's own
  binary COPY of the same rows (the raw peer) and SQLAlchemy's executemany ``INSERT``.
  Target >= 300k rows/s for COPY.

Run: ``python benchmarks/bench_sinks.py [--kafka] [--postgres] [--events N] [--repeat R]``.
Services: ``scripts/services up``; addresses from ``DOGESIM_KAFKA_BOOTSTRAP`` /
``DOGESIM_DB_URL`` (defaults 127.0.0.1:19092 and the dogesim database on 127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dogesim.examples.banking import User, event_record, event_row
from dogesim.model import Transition
from dogesim.sinks.files import JsonLinesSink

KAFKA = os.environ.get("DOGESIM_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
DB_URL = os.environ.get("DOGESIM_DB_URL", "postgresql://dogesim:dogesim@127.0.0.1:5432/dogesim")
T0 = 1_700_000_000_000


TRANSITIONS = [
    Transition("login", "offline", "online", 0.1),
    Transition("logout", "online", "offline", 70),
    Transition("spending", "offline", "offline", 0.1),
    Transition("open_loan_screen", "online", "loan_screen", 30),
]


@dataclass
class Payloads:
    """The events of the benchmark and the keys and values they serialize to."""

    events: list[tuple[int, User, Transition]]
    keys: list[str]
    values: list[str]


def make_payloads(n: int) -> Payloads:
    """`n` banking-like events, each with a distinct user snapshot."""
    events = []
    keys = []
    values = []
    for i in range(n):
        ts = T0 + (i // 10) * 60_000
        user = User(i % 10_000, (i * 7919) % 5000, (i % 3) * 10_000, i % 90)
        transition = TRANSITIONS[i % len(TRANSITIONS)]
        events.append((ts, user, transition))
        keys.append(key_function(user, transition))
        values.append(value_function(ts, user, transition))
    return Payloads(events, keys, values)


def key_function(user: User, transition: Transition) -> str:
    """The README's key: the user id."""
    return str(user.user_id)


def value_function(ts: int, user: User, transition: Transition) -> str:
    """The README's value: a JSON document."""
    return json.dumps(event_record(ts, user, transition))


row_mapper = event_row


def timed(fn: Callable[[], int]) -> float:
    """Items per second of `fn`, which returns how many items it handled."""
    start = time.perf_counter()
    count = fn()
    return count / (time.perf_counter() - start)


# -- JSONL -----------------------------------------------------------------------------------


def bench_jsonl(payloads: Payloads, repeat: int) -> list[tuple[str, float, str]]:
    """JsonLinesSink with its default record, to a temporary file (fsync at close)."""
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            path = Path(tmp) / f"events-{r}.jsonl"

            def run(path: Path = path) -> int:
                sink = JsonLinesSink(path)
                collect = sink.collect
                for ts, user, transition in payloads.events:
                    collect(ts, user, transition)
                sink.close()
                return sink.ledger.acknowledged

            rates.append(timed(run))
    return [("JsonLinesSink (default record)", statistics.median(rates), "events/s")]


# -- Kafka -----------------------------------------------------------------------------------


def bench_kafka(payloads: Payloads, repeat: int) -> list[tuple[str, float, str]]:
    """KafkaSink vs a raw produce() loop: same producer settings, payloads and timestamps.

    Each measurement runs from the first event until every message is acknowledged (the
    sink's close(), the raw loop's flush()); the topic is made beforehand.
    """
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from dogesim.sinks.kafka import KafkaSinkFactory

    conf = dict(KafkaSinkFactory([KAFKA], "bench", connect_timeout=10).conf)
    conf.pop("logger", None)
    admin = AdminClient({"bootstrap.servers": KAFKA})
    n = len(payloads.events)

    def fresh_topic() -> str:
        topic = f"bench-{uuid.uuid4().hex[:10]}"
        for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
            future.result(30)
        return topic

    def raw() -> float:
        topic = fresh_topic()
        producer = Producer(conf)
        producer.list_topics(topic, timeout=10)  # connected, metadata known
        produce = producer.produce
        poll = producer.poll
        since = 0
        start = time.perf_counter()
        for (ts, _, _), key, value in zip(
            payloads.events, payloads.keys, payloads.values, strict=True
        ):
            key_bytes = key.encode()
            value_bytes = value.encode()
            while True:
                try:
                    produce(topic, value_bytes, key_bytes, timestamp=ts)
                    break
                except BufferError:
                    poll(0.05)
            since += 1
            if since >= 1000:
                since = 0
                poll(0)
        left = producer.flush(60)
        rate = n / (time.perf_counter() - start)
        assert left == 0, f"raw loop: {left} messages undelivered"
        return rate

    def sink() -> float:
        topic = fresh_topic()
        factory = KafkaSinkFactory([KAFKA], "bench", connect_timeout=10)
        factory.producer.list_topics(topic, timeout=10)
        keys = iter(payloads.keys)
        values = iter(payloads.values)
        # The same precomputed strings as the raw loop: this measures the sink, not json.
        kafka_sink = factory.create(topic, lambda u, t: next(keys), lambda ts, u, t: next(values))
        collect = kafka_sink.collect
        start = time.perf_counter()
        for ts, user, transition in payloads.events:
            collect(ts, user, transition)
        kafka_sink.close()
        rate = n / (time.perf_counter() - start)
        assert kafka_sink.ledger.acknowledged == n, kafka_sink.ledger
        return rate

    raw_rates, sink_rates = [], []
    for _ in range(repeat):
        raw_rates.append(raw())
        sink_rates.append(sink())
    raw_rate = statistics.median(raw_rates)
    sink_rate = statistics.median(sink_rates)
    return [
        ("raw Producer.produce() loop", raw_rate, "msg/s"),
        ("KafkaSink (StringSerializer, ledger)", sink_rate, "msg/s"),
        ("KafkaSink / raw (target >= 0.7)", sink_rate / raw_rate, "ratio"),
    ]


# -- PostgreSQL ------------------------------------------------------------------------------


def bench_postgres(payloads: Payloads, repeat: int) -> list[tuple[str, float, str]]:
    """DbSink (COPY) vs psycopg's raw binary COPY and SQLAlchemy executemany of the same rows.

    Each measurement runs from the first row to the last commit; making the table, the
    factory and the checks afterwards are outside the timing.
    """
    import sqlalchemy as sa

    from dogesim.sinks.db import DbSinkFactory

    factory = DbSinkFactory(DB_URL)
    engine = factory.engine
    ddl = (
        "CREATE TABLE {} (timestamp bigint, user_id bigint, balance bigint, "
        "loan_balance bigint, event text)"
    )

    def fresh_table() -> str:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        with engine.begin() as conn:
            conn.exec_driver_sql(ddl.format(name))
        return name

    def check_and_drop(name: str, expected: int) -> None:
        with engine.begin() as conn:
            count = conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one()
            assert count == expected, (name, count, expected)
            conn.exec_driver_sql(f"DROP TABLE {name}")

    def copy_sink(batch: int) -> float:
        name = fresh_table()
        sink = DbSinkFactory(DB_URL).create(name, row_mapper, batch_size=batch)
        collect = sink.collect
        start = time.perf_counter()
        for ts, user, transition in payloads.events:
            collect(ts, user, transition)
        sink.close()
        rate = len(payloads.events) / (time.perf_counter() - start)
        check_and_drop(name, len(payloads.events))
        return rate

    def raw_copy(batch: int) -> float:
        """The peer: psycopg's own binary COPY of the same rows, one transaction per batch."""
        import psycopg

        name = fresh_table()
        columns = ("timestamp", "user_id", "balance", "loan_balance", "event")
        statement = f"COPY {name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        types = ["int8", "int8", "int8", "int8", "text"]
        events = payloads.events
        with psycopg.connect(DB_URL) as conn:
            start = time.perf_counter()
            for first in range(0, len(events), batch):
                with conn.cursor() as cursor, cursor.copy(statement) as copy:
                    copy.set_types(types)
                    for ts, user, transition in events[first : first + batch]:
                        row = row_mapper(ts, user, transition)
                        copy.write_row(tuple(row[c] for c in columns))
                conn.commit()
            rate = len(events) / (time.perf_counter() - start)
        check_and_drop(name, len(events))
        return rate

    executemany_events = payloads.events[: min(len(payloads.events), 100_000)]

    def executemany(batch: int) -> float:
        name = fresh_table()
        table = sa.Table(name, sa.MetaData(), autoload_with=engine)
        rows = []
        start = time.perf_counter()
        for ts, user, transition in executemany_events:
            rows.append(row_mapper(ts, user, transition))
            if len(rows) >= batch:
                with engine.begin() as conn:
                    conn.execute(table.insert(), rows)
                rows = []
        if rows:
            with engine.begin() as conn:
                conn.execute(table.insert(), rows)
        rate = len(executemany_events) / (time.perf_counter() - start)
        check_and_drop(name, len(executemany_events))
        return rate

    out = []
    for batch in (10_000, 1_000):
        copy_rates = [copy_sink(batch) for _ in range(repeat)]
        raw_rates = [raw_copy(batch) for _ in range(repeat)]
        many_rates = [executemany(batch) for _ in range(repeat)]
        copy_rate = statistics.median(copy_rates)
        raw_rate = statistics.median(raw_rates)
        many_rate = statistics.median(many_rates)
        target = " (target >= 300k)" if batch == 10_000 else ""
        out += [
            (f"DbSink COPY, batch_size={batch}{target}", copy_rate, "rows/s"),
            (f"raw psycopg binary COPY, batch {batch}", raw_rate, "rows/s"),
            (f"DbSink / raw COPY, batch {batch}", copy_rate / raw_rate, "ratio"),
            (f"SQLAlchemy executemany, batch {batch}", many_rate, "rows/s"),
            (f"COPY / executemany, batch {batch}", copy_rate / many_rate, "ratio"),
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka", action="store_true", help="KafkaSink vs raw produce()")
    parser.add_argument(
        "--postgres", action="store_true", help="DbSink COPY vs raw COPY and executemany"
    )
    parser.add_argument("--events", type=int, default=500_000, help="events per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    args = parser.parse_args(argv)
    payloads = make_payloads(args.events)
    rows: list[tuple[str, float, str]] = []
    rows += bench_jsonl(payloads, args.repeat)
    if args.kafka:
        rows += bench_kafka(payloads, args.repeat)
    if args.postgres:
        rows += bench_postgres(payloads, args.repeat)
    width = max(len(name) for name, _, _ in rows)
    print(f"{args.events:,} events per run, median of {args.repeat}")
    for name, value, unit in rows:
        shown = f"{value:.2f}" if unit == "ratio" else f"{value:,.0f}"
        print(f"  {name:<{width}}  {shown:>12} {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
