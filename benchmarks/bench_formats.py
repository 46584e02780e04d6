"""Formats: Parquet against JSON Lines on disk, and Kafka values as JSON Schema / Protobuf
against Avro, in one run each.

- Files (always run): `ParquetSink` (zstd, 100k-row groups) and `JsonLinesSink` take the
  same `--events` events (default 10M) with their default record (timestamp, trigger,
  states, the subject's fields); events/s and bytes on disk, and the time pyarrow takes to
  read the Parquet file back. Also `JsonLinesSink` to ``.jsonl.zst`` for the bytes.
- Kafka (``--kafka``): the same `--kafka-events` banking values (`event_record`) through the
  Avro, JSON Schema and Protobuf sinks (one in-process ``mock://`` registry each), timed
  until every message is acknowledged (``close()``); msgs/s and the mean value size.

Run: ``python benchmarks/bench_formats.py [--events N] [--kafka] [--kafka-events N]
[--repeat R]``. Kafka from ``DOGESIM_KAFKA_BOOTSTRAP`` (default 127.0.0.1:19092); the
transitions and the start time are `bench_sinks.py`'s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_sinks import KAFKA, T0, TRANSITIONS
from dogesim.examples.banking import User, event_record
from dogesim.model import Transition
from dogesim.sinks.files import JsonLinesSink

#: A pool of users the events cycle through (10M distinct objects would measure the heap).
USERS = [User(i, (i * 7919) % 5000, (i % 3) * 10_000, i % 90) for i in range(10_000)]


def feed(sink: Any, n: int) -> float:
    """Seconds to hand `n` banking-like events to `sink` and close it."""
    transitions, users, count = TRANSITIONS, USERS, len(USERS)
    collect = sink.collect
    started = time.perf_counter()
    for i in range(n):
        collect(T0 + (i // 10) * 60_000, users[i % count], transitions[i % 4])
    sink.close()
    return time.perf_counter() - started


def best(runs: int, once: Callable[[], tuple[float, int]]) -> tuple[float, int]:
    """The fastest of `runs` (seconds, bytes) measurements."""
    return min(once() for _ in range(runs))


def bench_files(n: int, repeat: int) -> None:
    import pyarrow.parquet as pq

    from dogesim.sinks.parquet import ParquetSink

    with tempfile.TemporaryDirectory(prefix="dogesim-bench-formats-") as tmp:
        rows: list[tuple[str, float, int]] = []
        makers: dict[str, Callable[[Path], Any]] = {
            "parquet (zstd)": lambda p: ParquetSink(p.with_suffix(".parquet")),
            "jsonl": lambda p: JsonLinesSink(p.with_suffix(".jsonl")),
            "jsonl.zst": lambda p: JsonLinesSink(p.with_suffix(".jsonl.zst")),
        }
        for name, make in makers.items():

            def once(make: Callable[[Path], Any] = make) -> tuple[float, int]:
                sink = make(Path(tmp) / "events")
                seconds = feed(sink, n)
                size = os.path.getsize(sink.path)
                os.unlink(sink.path)
                return seconds, size

            seconds, size = best(repeat, once)
            rows.append((name, seconds, size))
        print(f"\nfiles: {n:,} events, best of {repeat}")
        print(f"{'sink':<16} {'events/s':>12} {'seconds':>9} {'MB on disk':>11} {'B/event':>8}")
        for name, seconds, size in rows:
            print(
                f"{name:<16} {n / seconds:>12,.0f} {seconds:>9.2f} {size / 1e6:>11.1f} "
                f"{size / n:>8.1f}"
            )
        path = Path(tmp) / "read.parquet"
        feed(ParquetSink(path), n)
        started = time.perf_counter()
        table = pq.read_table(path)
        print(f"pyarrow reads the Parquet file back in {time.perf_counter() - started:.2f} s")
        assert table.num_rows == n


def bench_kafka(n: int, repeat: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.serialization import MessageField, SerializationContext

    from dogesim.sinks.kafka_avro import KafkaAvroSinkFactory
    from dogesim.sinks.kafka_jsonschema import KafkaJsonSchemaSinkFactory
    from dogesim.sinks.kafka_protobuf import KafkaProtobufSinkFactory
    from tests.avro_schemas import EVENT_SCHEMA, KEY_SCHEMA
    from tests.kafka_format_schemas import EVENT_JSON_SCHEMA, EVENT_PROTO

    admin = AdminClient({"bootstrap.servers": KAFKA})

    def topic() -> str:
        name = f"dogesim-bench-formats-{uuid.uuid4().hex[:8]}"
        for future in admin.create_topics([NewTopic(name, 1, 1)]).values():
            future.result(30)
        return name

    def registry() -> SchemaRegistryClient:
        return SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4().hex}"})

    def key(user: User, transition: Transition) -> str:
        return str(user.user_id)

    def avro() -> Any:
        factory = KafkaAvroSinkFactory([KAFKA], schema_registry_client=registry())
        return factory.create(
            topic(), lambda u, t: {"key": str(u.user_id)}, KEY_SCHEMA, event_record, EVENT_SCHEMA
        )

    def jsonschema() -> Any:
        factory = KafkaJsonSchemaSinkFactory([KAFKA], schema_registry_client=registry())
        return factory.create(topic(), key, event_record, EVENT_JSON_SCHEMA)

    def protobuf() -> Any:
        factory = KafkaProtobufSinkFactory([KAFKA], schema_registry_client=registry())
        return factory.create(topic(), key, event_record, EVENT_PROTO)

    print(f"\nkafka: {n:,} banking values to {KAFKA}, until acknowledged, best of {repeat}")
    print(f"{'values':<12} {'msgs/s':>10} {'seconds':>9} {'B/value':>8}")
    for name, make in (("avro", avro), ("jsonschema", jsonschema), ("protobuf", protobuf)):

        def once(make: Callable[[], Any] = make) -> tuple[float, int]:
            sink = make()
            context = SerializationContext(sink.topic, MessageField.VALUE)
            value = event_record(T0, USERS[1], TRANSITIONS[0])
            sample = sink.value_serializer(value, context)
            seconds = feed(sink, n)
            assert sink.ledger.acknowledged == n
            return seconds, len(sample)

        seconds, size = best(repeat, once)
        print(f"{name:<12} {n / seconds:>10,.0f} {seconds:>9.2f} {size:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--kafka", action="store_true")
    parser.add_argument("--kafka-events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if args.events:
        bench_files(args.events, args.repeat)
    if args.kafka:
        bench_kafka(args.kafka_events, args.repeat)


if __name__ == "__main__":
    main()
