"""Sink throughput: dogesim's sinks against the raw clients, on the same payloads, in one run.

- Files (always run): `JsonLinesSink` and `CsvSink` events/s with the README record (the
  Kafka value's fields) and with their default records, ``.jsonl.gz`` / ``.jsonl.zst``, and
  a plain ``f.write(json.dumps(record) + "\n")`` loop; each sink event by event
  (``collect``) and tick by tick (``collect_many``, the engine's batch path, `--per-tick`
  events a tick). Targets: the README-record sinks >= 3x the plain loop and >= 1.5x the
  Kafka sink making the README key and value from the same events (with ``--kafka``).
- Engine run (``--engine-run``): the banking model, 1M users x 1440 one-minute ticks
  (``--engine-subjects``), into a `CountingSink` and into a `JsonLinesSink` (its default
  record); target: the JSONL run's wall within 2x of the counting run's.
- Kafka (``--kafka``): `KafkaSink` against a raw confluent-kafka ``produce()`` loop with the
  same producer settings, keys, values and timestamps; both timed until every message is
  acknowledged. Target ratio >= 0.7.
- PostgreSQL (``--postgres``): `DbSink` rows/s (COPY through psycopg 3) against psycopg's own
  binary COPY of the same rows (the raw peer) and SQLAlchemy's executemany ``INSERT``.
  Target >= 300k rows/s for COPY.

Run: ``python benchmarks/bench_sinks.py [--kafka] [--postgres] [--engine-run] [--cpu]
[--events N] [--repeat R]`` (``--cpu``: the file and engine figures by this process's CPU
time, steadier on a shared machine).
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dogesim.errors import SinkConfigError
from dogesim.examples.banking import User, event_record, event_row
from dogesim.model import Transition
from dogesim.sinks.files import CsvSink, JsonLinesSink

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
    records: list[dict[str, Any]]
    rows: list[dict[str, Any]]


def make_payloads(n: int, per_tick: int = 1000) -> Payloads:
    """`n` banking-like events, each with a distinct user snapshot, `per_tick` a timestamp."""
    events = []
    keys = []
    values = []
    for i in range(n):
        ts = T0 + (i // per_tick) * 60_000
        user = User(i % 10_000, (i * 7919) % 5000, (i % 3) * 10_000, i % 90)
        transition = TRANSITIONS[i % len(TRANSITIONS)]
        events.append((ts, user, transition))
        keys.append(key_function(user, transition))
        values.append(value_function(ts, user, transition))
    records = [event_record(*event) for event in events]
    rows = [event_row(*event) for event in events]
    return Payloads(events, keys, values, records, rows)


def key_function(user: User, transition: Transition) -> str:
    """The README's key: the user id."""
    return str(user.user_id)


def value_function(ts: int, user: User, transition: Transition) -> str:
    """The README's value: a JSON document."""
    return json.dumps(event_record(ts, user, transition))


row_mapper = event_row


#: The clock of the file and engine figures: wall time, or this process's CPU time with
#: ``--cpu`` (steadier on a shared machine; the disk's waits are then left out).
CLOCK: Callable[[], float] = time.perf_counter


def timed(fn: Callable[[], int]) -> float:
    """Items per second of `fn`, which returns how many items it handled."""
    start = CLOCK()
    count = fn()
    return count / (CLOCK() - start)


# -- files -----------------------------------------------------------------------------------


def _given(timestamp: int, record: Any, transition: Transition) -> Any:
    """The mapper of records made beforehand: the event's subject is its record."""
    return record


def _median_rate(run_once: Callable[[Path], int], suffix: str, repeat: int) -> float:
    """Median items/s of `run_once(path)` over `repeat` runs, each on a new file."""
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            path = Path(tmp) / f"events-{r}{suffix}"
            rates.append(timed(lambda path=path: run_once(path)))  # type: ignore[misc]
            path.unlink()
    return statistics.median(rates)


#: One tick's events for ``collect_many``: the timestamp, the subjects, the transitions.
Tick = tuple[int, list[Any], list[Transition]]


def ticks_of(payloads: Payloads, made: list[dict[str, Any]] | None = None) -> list[Tick]:
    """The events grouped by timestamp, as the engine hands a sink one tick's events;
    `made`: the records made beforehand stand for the subjects."""
    subjects = made if made is not None else [user for _, user, _ in payloads.events]
    ticks: list[Tick] = []
    for (ts, _, transition), subject in zip(payloads.events, subjects, strict=True):
        if not ticks or ticks[-1][0] != ts:
            ticks.append((ts, [], []))
        ticks[-1][1].append(subject)
        ticks[-1][2].append(transition)
    return ticks


def _file_rates(
    make: Callable[[Path], Any],
    suffix: str,
    payloads: Payloads,
    repeat: int,
    made: list[dict[str, Any]] | None = None,
    *,
    many: bool = False,
) -> float:
    """Median events/s of the sink `make(path)` over `repeat` runs, each ending with close()
    (flush and fsync) and checked: every event acknowledged. `made`: records made beforehand,
    given to the sink as the events' subjects (its mapper must be `_given`); `many`: one
    ``collect_many`` call per tick instead of ``collect`` per event."""
    n = len(payloads.events)
    ticks = ticks_of(payloads, made) if many else []

    def run(path: Path) -> int:
        sink = make(path)
        if many:
            collect_many = sink.collect_many
            for ts, subjects, transitions in ticks:
                collect_many(ts, subjects, transitions)
        else:
            collect = sink.collect
            if made is not None:
                for (ts, _, transition), record in zip(payloads.events, made, strict=True):
                    collect(ts, record, transition)
            else:
                for ts, user, transition in payloads.events:
                    collect(ts, user, transition)
        sink.close()
        assert sink.ledger.acknowledged == n, sink.ledger
        return n

    return _median_rate(run, suffix, repeat)


def _plain_loop_rate(payloads: Payloads, repeat: int, *, made: bool = False) -> float:
    """The peer: ``for e in events: f.write(json.dumps(record(e)) + "\n")`` to a buffered
    text file, fsynced at the end like the sinks' close(); `made`: the records are made
    beforehand (``for r in records: f.write(json.dumps(r) + "\n")``)."""

    def run(path: Path) -> int:
        with path.open("w", encoding="utf-8") as f:
            write = f.write
            dumps = json.dumps
            if made:
                for record in payloads.records:
                    write(dumps(record) + "\n")
            else:
                for ts, user, transition in payloads.events:
                    write(dumps(event_record(ts, user, transition)) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return len(payloads.events)

    return _median_rate(run, ".jsonl", repeat)


def bench_files(payloads: Payloads, repeat: int) -> dict[str, float]:
    """The file sinks: JSONL and CSV with the README record (what the Kafka values hold) and
    with their default records, compressed JSONL, and the plain json.dumps loop."""
    from dogesim.sinks.compression import member_compressor

    jsonl_given = lambda p: JsonLinesSink(p, _given)  # noqa: E731
    csv_given = lambda p: CsvSink(p, _given)  # noqa: E731
    jsonl_readme = lambda p: JsonLinesSink(p, event_record)  # noqa: E731
    csv_readme = lambda p: CsvSink(p, event_row)  # noqa: E731
    rates = {
        "plain json.dumps loop (records made beforehand)": _plain_loop_rate(
            payloads, repeat, made=True
        ),
        "plain json.dumps loop (README record)": _plain_loop_rate(payloads, repeat),
    }
    cases: list[tuple[str, Callable[[Path], Any], str, list[dict[str, Any]] | None]] = [
        ("JsonLinesSink (records made beforehand)", jsonl_given, ".jsonl", payloads.records),
        ("CsvSink (rows made beforehand)", csv_given, ".csv", payloads.rows),
        ("JsonLinesSink (README record)", jsonl_readme, ".jsonl", None),
        ("CsvSink (README row)", csv_readme, ".csv", None),
        ("JsonLinesSink (default record)", JsonLinesSink, ".jsonl", None),
        ("CsvSink (default record)", CsvSink, ".csv", None),
        ("JsonLinesSink .jsonl.gz (default record)", JsonLinesSink, ".jsonl.gz", None),
    ]
    try:
        member_compressor("zstd")
    except SinkConfigError:
        print("(zstandard not installed: no .jsonl.zst figure)", file=sys.stderr)
    else:
        cases.append(
            ("JsonLinesSink .jsonl.zst (default record)", JsonLinesSink, ".jsonl.zst", None)
        )
    for name, make, suffix, made in cases:
        rates[name] = _file_rates(make, suffix, payloads, repeat, made)
        rates[f"{name}, collect_many"] = _file_rates(
            make, suffix, payloads, repeat, made, many=True
        )
    return rates


def file_rows(rates: dict[str, float], kafka: float | None) -> list[tuple[str, float, str]]:
    """The file figures, and their ratios to the plain loop (target >= 3; with the README
    record, for collect_many) and to the Kafka sink on the same payloads (target >= 1.5)."""
    rows = [(name, rate, "events/s") for name, rate in rates.items()]
    made = rates["plain json.dumps loop (records made beforehand)"]
    plain = rates["plain json.dumps loop (README record)"]
    for way in ("", ", collect_many"):
        for name in ("JsonLinesSink (records made beforehand)", "CsvSink (rows made beforehand)"):
            ratio = rates[name + way] / made
            rows.append((f"{name}{way} / plain loop (target >= 3)", ratio, "ratio"))
        for name in ("JsonLinesSink (README record)", "CsvSink (README row)"):
            ratio = rates[name + way] / plain
            target = " (target >= 3)" if way else ""  # the engine's path is collect_many
            rows.append((f"{name}{way} / plain loop{target}", ratio, "ratio"))
            if kafka is not None:
                ratio = rates[name + way] / kafka
                rows.append((f"{name}{way} / KafkaSink (target >= 1.5)", ratio, "ratio"))
    return rows


# -- an engine run into a file ---------------------------------------------------------------


def bench_engine_run(subjects: int, ticks: int, repeat: int) -> list[tuple[str, float, str]]:
    """The banking model (its callbacks on) into a CountingSink and into a JsonLinesSink with
    the default record, the same seed; best wall of `repeat` runs each, taking turns."""
    from dogesim.examples.banking import banking_simulation
    from dogesim.sinks.base import CountingSink

    def once(jsonl: Path | None) -> tuple[float, int]:
        sink = JsonLinesSink(jsonl) if jsonl is not None else CountingSink()
        simulation = banking_simulation([sink], subjects=subjects, ticks=ticks, seed=7)
        start = CLOCK()
        result = simulation.run()
        wall = CLOCK() - start
        assert result.ledgers[0].ok, result.ledgers[0]
        return wall, result.events

    counting, jsonl = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "banking.jsonl"
        for _ in range(repeat):
            counting.append(once(None))
            jsonl.append(once(path))
            path.unlink()
    (count_wall, events), (file_wall, file_events) = min(counting), min(jsonl)
    assert events == file_events, (events, file_events)
    size = f"{subjects:,} x {ticks} banking, {events:,} events"
    return [
        (f"{size} into CountingSink", count_wall, "s"),
        (f"{size} into JsonLinesSink", file_wall, "s"),
        ("JsonLinesSink run / CountingSink run (target <= 2)", file_wall / count_wall, "ratio"),
        ("JsonLinesSink run", events / file_wall, "events/s"),
    ]


# -- Kafka -----------------------------------------------------------------------------------


def bench_kafka(payloads: Payloads, repeat: int) -> tuple[list[tuple[str, float, str]], float]:
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

    def sink(precomputed: bool = True) -> float:
        topic = fresh_topic()
        factory = KafkaSinkFactory([KAFKA], "bench", connect_timeout=10)
        factory.producer.list_topics(topic, timeout=10)
        keys = iter(payloads.keys)
        values = iter(payloads.values)
        if precomputed:
            # The same precomputed strings as the raw loop: this measures the sink, not json.
            kafka_sink = factory.create(
                topic, lambda u, t: next(keys), lambda ts, u, t: next(values)
            )
        else:
            # The README program: key and JSON value made from each event, as the file
            # sinks make their lines (the "same payloads" the file figures compare with).
            kafka_sink = factory.create(topic, key_function, value_function)
        collect = kafka_sink.collect
        start = time.perf_counter()
        for ts, user, transition in payloads.events:
            collect(ts, user, transition)
        kafka_sink.close()
        rate = n / (time.perf_counter() - start)
        assert kafka_sink.ledger.acknowledged == n, kafka_sink.ledger
        return rate

    raw_rates, sink_rates, readme_rates = [], [], []
    for _ in range(repeat):
        raw_rates.append(raw())
        sink_rates.append(sink())
        readme_rates.append(sink(precomputed=False))
    raw_rate = statistics.median(raw_rates)
    sink_rate = statistics.median(sink_rates)
    readme_rate = statistics.median(readme_rates)
    rows = [
        ("raw Producer.produce() loop", raw_rate, "msg/s"),
        ("KafkaSink (StringSerializer, ledger)", sink_rate, "msg/s"),
        ("KafkaSink / raw (target >= 0.7)", sink_rate / raw_rate, "ratio"),
        ("KafkaSink (README key and JSON value per event)", readme_rate, "msg/s"),
    ]
    return rows, readme_rate


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
    parser.add_argument(
        "--per-tick", type=int, default=1000, help="events per tick (collect_many batches)"
    )
    parser.add_argument(
        "--engine-run", action="store_true", help="banking 1M x 1440: JSONL vs counting sink"
    )
    parser.add_argument(
        "--engine-subjects", type=int, default=1_000_000, help="subjects of --engine-run"
    )
    parser.add_argument("--files", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--cpu", action="store_true", help="file and engine figures by process CPU time"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.cpu else time.perf_counter
    payloads = make_payloads(args.events, args.per_tick)
    rows: list[tuple[str, float, str]] = []
    kafka_rate = None
    if args.kafka:
        kafka_rows, kafka_rate = bench_kafka(payloads, args.repeat)
        rows += kafka_rows
    if args.files:
        # CPU-time file figures are not set against the wall-time Kafka ones.
        kafka_peer = None if args.cpu else kafka_rate
        rows = file_rows(bench_files(payloads, args.repeat), kafka_peer) + rows
    if args.postgres:
        rows += bench_postgres(payloads, args.repeat)
    if args.engine_run:
        rows += bench_engine_run(args.engine_subjects, 1440, args.repeat)
    if not rows:
        parser.error("nothing to measure: give --files, --kafka, --postgres or --engine-run")
    width = max(len(name) for name, _, _ in rows)
    load = os.getloadavg()
    print(
        f"{args.events:,} events per run ({args.per_tick:,} a tick), median of {args.repeat}"
        f"{', CPU time' if args.cpu else ''}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    for name, value, unit in rows:
        shown = f"{value:.2f}" if unit in ("ratio", "s") else f"{value:,.0f}"
        print(f"  {name:<{width}}  {shown:>12} {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
