"""Kafka sinks against a real broker: nothing lost, nothing duplicated, failures are loud.

Every test writes a seeded banking run and reads it back with a real consumer, comparing it
event for event (key, value, record timestamp) with a `MemorySink` run of the same seed.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dogesim.errors import SinkError
from dogesim.examples.banking import User, banking_simulation, event_record
from dogesim.model import Transition
from dogesim.sinks.base import EventSink
from dogesim.sinks.files import JsonLinesSink, default_record
from dogesim.sinks.kafka import KafkaSinkFactory
from dogesim.sinks.kafka_avro import KafkaAvroSinkFactory
from dogesim.sinks.memory import MemorySink
from tests.integration.kafka_helpers import (
    EVENT_SCHEMA,
    KEY_SCHEMA,
    SEED,
    SUBJECTS,
    T0,
    TICKS,
    consume_all,
    create_topic,
    key_function,
    reference,
    value_function,
)
from tests.integration.services import (
    kafka_bootstrap,
    start_kafka,
    stop_kafka,
    unique_name,
)


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


# -- everything arrives, event for event ------------------------------------------------------


@pytest.mark.kafka
def test_banking_json_equals_memory_sink() -> None:
    """A seeded run into Kafka (JSON values) reads back equal to a MemorySink run."""
    topic = create_topic(unique_name("dogesim-json"))
    sink = KafkaSinkFactory([kafka_bootstrap()], "dogesim-test").create(
        topic, key_function, value_function
    )
    result = banking_simulation(
        [sink], subjects=SUBJECTS, ticks=TICKS, seed=SEED, timestamp_start=T0
    ).run()
    expected = reference(lambda ts, u, t: (key_function(u, t), value_function(ts, u, t), ts))
    got = [(k.decode(), v.decode(), ts) for k, v, ts in consume_all(topic)]
    assert got == expected
    ledger = result.ledgers[0]
    assert (ledger.collected, ledger.acknowledged, ledger.failed) == (len(expected),) * 2 + (0,)


@pytest.mark.kafka
def test_banking_avro_equals_memory_sink() -> None:
    """A seeded run into Kafka Avro decodes (same mock registry) to the MemorySink events."""
    registry = SchemaRegistryClient.new_client({"url": f"mock://{unique_name()}"})
    topic = create_topic(unique_name("dogesim-avro"))
    factory = KafkaAvroSinkFactory([kafka_bootstrap()], schema_registry_client=registry)
    sink = factory.create(
        topic, lambda u, t: {"key": str(u.user_id)}, KEY_SCHEMA, event_record, EVENT_SCHEMA
    )
    banking_simulation([sink], subjects=SUBJECTS, ticks=TICKS, seed=SEED, timestamp_start=T0).run()
    expected = reference(lambda ts, u, t: ({"key": str(u.user_id)}, event_record(ts, u, t), ts))
    deserialize = AvroDeserializer(registry)
    key_ctx = SerializationContext(topic, MessageField.KEY)
    value_ctx = SerializationContext(topic, MessageField.VALUE)
    got = [
        (deserialize(k, key_ctx), deserialize(v, value_ctx), ts) for k, v, ts in consume_all(topic)
    ]
    assert got == expected
    assert sink.ledger.acknowledged == len(expected)


@pytest.mark.kafka
@pytest.mark.db
def test_one_run_into_kafka_avro_postgres_and_jsonl(tmp_path: Path) -> None:
    """One seeded run feeding Kafka JSON, Kafka Avro, PostgreSQL and JSONL at once: each
    medium holds exactly the MemorySink events."""
    import sqlalchemy as sa

    from dogesim.sinks.db import DbSinkFactory
    from tests.integration.services import db_url

    registry = SchemaRegistryClient.new_client({"url": f"mock://{unique_name()}"})
    json_topic = create_topic(unique_name("dogesim-all-json"))
    avro_topic = create_topic(unique_name("dogesim-all-avro"))
    table = unique_name("dogesim_all").replace("-", "_")
    db = DbSinkFactory(db_url())
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {table} (id bigserial PRIMARY KEY, timestamp bigint, "
            "user_id bigint, balance bigint, loan_balance bigint, event text)"
        )

    def row(ts: int, u: User, t: Transition) -> dict[str, Any]:
        return {
            "timestamp": ts,
            "user_id": u.user_id,
            "balance": u.balance,
            "loan_balance": u.loan_balance,
            "event": t.trigger,
        }

    sinks = [
        KafkaSinkFactory([kafka_bootstrap()]).create(json_topic, key_function, value_function),
        KafkaAvroSinkFactory([kafka_bootstrap()], schema_registry_client=registry).create(
            avro_topic, lambda u, t: {"key": str(u.user_id)}, KEY_SCHEMA, event_record, EVENT_SCHEMA
        ),
        db.create(table, row, batch_size=250),
        JsonLinesSink(tmp_path / "events.jsonl"),
    ]
    try:
        result = banking_simulation(
            sinks, subjects=SUBJECTS, ticks=TICKS, seed=SEED, timestamp_start=T0
        ).run()
        memory = MemorySink(
            lambda ts, u, t: (
                key_function(u, t),
                value_function(ts, u, t),
                ts,
                event_record(ts, u, t),
                row(ts, u, t),
                json.loads(json.dumps(default_record(ts, u, t))),
            )
        )
        banking_simulation(
            [memory], subjects=SUBJECTS, ticks=TICKS, seed=SEED, timestamp_start=T0
        ).run()
        expected = memory.events
        assert [(k.decode(), v.decode(), ts) for k, v, ts in consume_all(json_topic)] == [
            e[:3] for e in expected
        ]
        deserialize = AvroDeserializer(registry)
        ctx = SerializationContext(avro_topic, MessageField.VALUE)
        assert [(deserialize(v, ctx), ts) for _, v, ts in consume_all(avro_topic)] == [
            (e[3], e[2]) for e in expected
        ]
        engine = sa.create_engine(DbSinkFactory(db_url()).url)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                f"SELECT timestamp, user_id, balance, loan_balance, event FROM {table} ORDER BY id"
            )
            assert [r._asdict() for r in rows] == [e[4] for e in expected]
        engine.dispose()
        lines = (tmp_path / "events.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == [e[5] for e in expected]
        assert [ledger.acknowledged for ledger in result.ledgers] == [len(expected)] * 4
    finally:
        cleanup = DbSinkFactory(db_url())
        with cleanup.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        cleanup.engine.dispose()


@pytest.mark.kafka
def test_tiny_buffer_and_shared_producer_keep_separate_exact_ledgers() -> None:
    """Two sinks of one factory (one producer) with a 16-message queue: back-pressure, never
    a drop, and each sink's ledger counts exactly its own topic's events."""
    logins, others = (
        create_topic(unique_name("dogesim-logins")),
        create_topic(unique_name("dogesim-others")),
    )
    factory = KafkaSinkFactory([kafka_bootstrap()], buffer_size=16, conf={"linger.ms": 1})
    login_sink = factory.create(logins, key_function, value_function)
    other_sink = factory.create(others, key_function, value_function)
    assert login_sink.producer is other_sink.producer
    sinks = {trigger: [other_sink] for trigger in ("logout", "income", "spending", "take_loan")}
    sinks |= {t: [login_sink] for t in ("login", "open_loan_screen", "close_loan_screen")}
    banking_simulation(sinks, subjects=SUBJECTS, ticks=TICKS, seed=SEED, timestamp_start=T0).run()
    everything = reference(
        lambda ts, u, t: (t.trigger, key_function(u, t), value_function(ts, u, t), ts)
    )
    for topic, sink in ((logins, login_sink), (others, other_sink)):
        triggers = {t for t, sinks_of in sinks.items() if sink in sinks_of}
        expected = [e[1:] for e in everything if e[0] in triggers]
        got = [(k.decode(), v.decode(), ts) for k, v, ts in consume_all(topic)]
        assert got == expected
        assert (sink.ledger.collected, sink.ledger.acknowledged) == (len(expected),) * 2


@pytest.mark.kafka
def test_sinks_reused_for_a_second_run_deliver_both_runs() -> None:
    """Two sinks of one factory given to two runs one after the other (closed in between):
    the second run opens a new shared producer, each topic holds both runs in order, and
    each run's ledgers count that run alone."""
    topics = [create_topic(unique_name(f"dogesim-reuse-{i}")) for i in (1, 2)]
    factory = KafkaSinkFactory([kafka_bootstrap()], "dogesim-reuse-test")
    sinks = [factory.create(topic, key_function, value_function) for topic in topics]
    runs = [(SEED, T0), (SEED + 1, T0 + 10**9)]
    results = []
    producers = []
    for seed, start in runs:
        results.append(
            banking_simulation(
                sinks, subjects=100, ticks=300, seed=seed, timestamp_start=start
            ).run()
        )
        producers.append(sinks[0].producer)
    assert sinks[1].producer is producers[1] is not producers[0]
    mapper = lambda ts, u, t: (key_function(u, t), value_function(ts, u, t), ts)  # noqa: E731
    expected = [
        reference(mapper, subjects=100, ticks=300, seed=seed, timestamp_start=start)
        for seed, start in runs
    ]
    for topic in topics:
        got = [(k.decode(), v.decode(), ts) for k, v, ts in consume_all(topic)]
        assert got == expected[0] + expected[1]
    for result, events in zip(results, expected, strict=True):
        assert [(x.collected, x.acknowledged, x.failed) for x in result.ledgers] == [
            (len(events), len(events), 0)
        ] * 2


# -- a broker restart mid-run --------------------------------------------------------------------


class RestartBrokerAfter(EventSink):
    """Stops the broker after `n` events (in a thread, which starts it again after `down_s`)
    and slows the run down so that it produces before, during and after the outage."""

    def __init__(self, n: int, down_s: float, delay_s: float) -> None:
        self.n = n
        self.down_s = down_s
        self.delay_s = delay_s
        self.seen = 0
        self.thread: threading.Thread | None = None
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.outage: tuple[float, float] = (0.0, 0.0)
        self.seen_when_up = 0

    def _restart(self) -> None:
        try:
            stop_kafka()
            down_at = time.monotonic()
            self.stopped.set()
            time.sleep(self.down_s)
            start_kafka()
            self.seen_when_up = self.seen
            self.outage = (down_at, time.monotonic())
        except BaseException as exc:  # surfaced by the test
            self.error = exc
            self.stopped.set()

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        self.seen += 1
        if self.seen == self.n:
            self.thread = threading.Thread(target=self._restart, name="kafka-restart")
            self.thread.start()
            self.stopped.wait(120)
        time.sleep(self.delay_s)


@pytest.mark.kafka
def test_broker_restart_mid_run_loses_and_duplicates_nothing() -> None:
    """Broker stopped mid-run and started again: the run finishes and every event is in the
    topic exactly once, in order."""
    topic = create_topic(unique_name("dogesim-restart"))
    restart = RestartBrokerAfter(n=400, down_s=3.0, delay_s=0.001)
    factory = KafkaSinkFactory([kafka_bootstrap()], "dogesim-restart-test")
    sink = factory.create(topic, key_function, value_function)
    started = time.monotonic()
    try:
        result = banking_simulation(
            [sink, restart], subjects=SUBJECTS, ticks=TICKS, seed=SEED, timestamp_start=T0
        ).run()
    finally:
        if restart.thread is not None:
            restart.thread.join(300)
    assert restart.error is None, restart.error
    assert restart.outage[0] > started, "the broker was never stopped"
    assert restart.seen_when_up > restart.n, "no event was produced while the broker was down"
    expected = reference(lambda ts, u, t: (key_function(u, t), value_function(ts, u, t), ts))
    assert restart.seen == len(expected) > restart.n
    got = [(k.decode(), v.decode(), ts) for k, v, ts in consume_all(topic)]
    assert len(got) == len(expected)
    assert got == expected
    assert result.ledgers[0].acknowledged == len(expected)


# -- failures that must be loud, bounded and precise ------------------------------------------


def test_unreachable_broker_fails_fast_with_empty_ledger() -> None:
    """Bootstrap to a closed port: the run fails within the connect timeout, nothing acked."""
    address = closed_port()
    sink = KafkaSinkFactory([address], connect_timeout=3).create(
        "never", key_function, value_function
    )
    started = time.monotonic()
    with pytest.raises(SinkError) as info:
        banking_simulation([sink], subjects=50, ticks=500, seed=SEED, timestamp_start=T0).run()
    assert time.monotonic() - started < 30
    assert f"the cluster at {address} did not answer" in str(info.value)
    assert "Connection refused" in str(info.value)
    assert sink.ledger.acknowledged == 0
    assert any(ledger.acknowledged == 0 for ledger in info.value.ledgers)


def test_unreachable_broker_without_connect_check_fails_by_message_timeout() -> None:
    """Without the connect check, message.timeout.ms bounds the failure; nothing acked."""
    sink = KafkaSinkFactory(
        [closed_port()], connect_timeout=None, conf={"message.timeout.ms": 2000}
    ).create("never", key_function, value_function)
    started = time.monotonic()
    with pytest.raises(SinkError, match="Message timed out"):
        banking_simulation([sink], subjects=2000, ticks=1000, seed=SEED, timestamp_start=T0).run()
    assert time.monotonic() - started < 60
    ledger = sink.ledger
    assert ledger.acknowledged == 0
    assert ledger.failed == ledger.collected > 0


@pytest.mark.kafka
def test_wrong_avro_value_schema_is_one_clear_error() -> None:
    """A value schema the values do not fit fails the run with the topic, field and value."""
    registry = SchemaRegistryClient.new_client({"url": f"mock://{unique_name()}"})
    topic = create_topic(unique_name("dogesim-badavro"))
    wrong = json.loads(json.dumps(EVENT_SCHEMA))
    wrong["fields"][2] = {"name": "event", "type": "int"}
    sink = KafkaAvroSinkFactory([kafka_bootstrap()], schema_registry_client=registry).create(
        topic, lambda u, t: {"key": str(u.user_id)}, KEY_SCHEMA, event_record, wrong
    )
    with pytest.raises(SinkError) as info:
        banking_simulation([sink], subjects=50, ticks=500, seed=SEED, timestamp_start=T0).run()
    message = str(info.value)
    assert f"topic {topic!r}" in message
    assert "field event" in message
    assert "'event': '" in message
    assert sink.ledger.acknowledged == 0
    assert consume_all(topic) == []


@pytest.mark.kafka
def test_doge_datagen_104_avro_call_with_mock_subject_and_transition() -> None:
    """doge-datagen 1.0.4's own Avro scenario: the positional (servers, registry_url,
    client_id) factory, one event at timestamp 123 with Mock subject and transition, close;
    the record reads back with its key, value and timestamp."""
    from unittest.mock import Mock

    topic = create_topic(unique_name("dogesim-doge104"))
    factory = KafkaAvroSinkFactory([kafka_bootstrap()], f"mock://{unique_name()}", "test-client")
    sink = factory.create(
        topic,
        lambda s, t: {"key": "some_key"},
        KEY_SCHEMA,
        lambda ts, s, t: {
            "timestamp": ts,
            "user": {"user_id": 1, "balance": 2, "loan_balance": 3},
            "event": "e",
        },
        EVENT_SCHEMA,
    )
    sink.collect(123, Mock(), Mock())
    sink.close()
    deserialize = AvroDeserializer(factory.schema_registry_client)
    [(key, value, timestamp)] = consume_all(topic)
    assert deserialize(key, SerializationContext(topic, MessageField.KEY)) == {"key": "some_key"}
    assert deserialize(value, SerializationContext(topic, MessageField.VALUE))["timestamp"] == 123
    assert timestamp == 123
    assert (sink.ledger.collected, sink.ledger.acknowledged) == (1, 1)


@pytest.mark.kafka
def test_doge_kafka_sink_on_a_program_producer_delivers_two_runs() -> None:
    """doge-datagen's ``KafkaSink(producer, CounterHolder(), topic, ...)`` on the program's
    own producer: two runs read back in order, the producer stays the program's and open."""
    from confluent_kafka import Producer
    from confluent_kafka.serialization import StringSerializer

    from dogesim.sinks.kafka import CounterHolder, KafkaSink

    topic = create_topic(unique_name("dogesim-doge-sink"))
    producer = Producer({"bootstrap.servers": kafka_bootstrap(), "client.id": "doge"})
    holder = CounterHolder()
    serializer = StringSerializer()
    sink = KafkaSink(producer, holder, topic, key_function, serializer, value_function, serializer)
    runs = [(SEED, T0), (SEED + 1, T0 + 10**9)]
    for seed, start in runs:
        result = banking_simulation(
            [sink], subjects=100, ticks=300, seed=seed, timestamp_start=start
        ).run()
        assert sink.producer is producer
        assert holder.counter == 0  # flushed by close()
    mapper = lambda ts, u, t: (key_function(u, t), value_function(ts, u, t), ts)  # noqa: E731
    expected = [
        reference(mapper, subjects=100, ticks=300, seed=seed, timestamp_start=start)
        for seed, start in runs
    ]
    got = [(k.decode(), v.decode(), ts) for k, v, ts in consume_all(topic)]
    assert got == expected[0] + expected[1]
    assert result.ledgers[0].acknowledged == len(expected[1])
    producer.produce(topic, b"program's own", b"k")
    assert producer.flush(10) == 0
