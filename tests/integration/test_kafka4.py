"""Kafka 4's record-timestamp window, on the real broker.

Kafka 4 brokers refuse a CreateTime record more than ``message.timestamp.after.max.ms``
(1 hour by default) ahead of their clock. The sink reads the topic's setting (or the broker's
default) before the first event and refuses such an event with `SinkConfigError` before it is
sent; with ``record_timestamp="send"`` every event is delivered with the send time as its
record time and the event time in the payload. Each test reads the topic back.
"""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dogesim.errors import SinkConfigError, SinkError
from dogesim.examples.banking import User, event_record
from dogesim.model import Transition
from dogesim.sinks.kafka import KafkaSinkFactory
from dogesim.sinks.kafka_avro import KafkaAvroSinkFactory
from tests.integration.kafka_helpers import (
    EVENT_SCHEMA,
    KEY_SCHEMA,
    SHORT_SUBJECTS,
    SHORT_TICK_MS,
    SHORT_TICKS,
    consume_all,
    create_topic,
    expected_short,
    key_function,
    now_ms,
    read_back,
    reference,
    run_short,
    value_function,
)
from tests.integration.services import kafka_bootstrap, unique_name

pytestmark = pytest.mark.kafka

AFTER_MS = 60_000  # the low limit some tests give their topic
HOUR_MS = 3_600_000  # Kafka 4's default message.timestamp.after.max.ms


def test_run_past_topic_limit_is_refused_before_any_event() -> None:
    """Topic with message.timestamp.after.max.ms=60000 and a backfill run from now reaching 5
    minutes ahead: the engine asks the sink before the first event, the run fails with
    SinkConfigError naming the setting and the ways out, and nothing is sent."""
    topic = create_topic(
        unique_name("dogesim-k4-low"), {"message.timestamp.after.max.ms": str(AFTER_MS)}
    )
    sink = KafkaSinkFactory([kafka_bootstrap()]).create(topic, key_function, value_function)
    start = now_ms()
    with pytest.raises(SinkConfigError) as info:
        run_short(sink, start)
    message = str(info.value)
    last = start + (SHORT_TICKS - 1) * SHORT_TICK_MS
    assert f"topic {topic!r}: the run's record timestamps reach {last}" in message
    assert "message.timestamp.after.max.ms=60000" in message
    assert "timestamp_start near now" in message and "record_timestamp='send'" in message
    assert "nothing was sent" in message
    assert read_back(topic) == []
    assert sink.ledger.collected == 0


def test_event_past_topic_limit_is_refused_before_sending() -> None:
    """The same topic fed event by event (as a live run is): the events within the limit
    arrive in order, the first beyond it raises SinkConfigError naming it and the setting, and
    it is not sent."""
    topic = create_topic(
        unique_name("dogesim-k4-event"), {"message.timestamp.after.max.ms": str(AFTER_MS)}
    )
    sink = KafkaSinkFactory([kafka_bootstrap()]).create(topic, key_function, value_function)
    user = User(7, 100, 0, 0)
    login = Transition("login", "offline", "online", 10)
    start = now_ms()
    stamps = [start + k * 20_000 for k in range(6)]  # 0 .. 100 s ahead: the limit is 60 s
    with pytest.raises(SinkConfigError) as info:
        for stamp in stamps:
            sink.collect(stamp, user, login)
    end = now_ms()
    with pytest.raises(SinkError):
        sink.close()
    message = str(info.value)
    got = read_back(topic)
    n = len(got)
    assert [ts for _, _, ts in got] == stamps[:n]
    assert n >= sum(1 for ts in stamps if ts <= start + AFTER_MS) > 0
    assert start + AFTER_MS < stamps[n] and all(ts <= end + AFTER_MS for ts in stamps[:n])
    assert f"event 'login' at timestamp {stamps[n]}" in message
    assert "message.timestamp.after.max.ms=60000" in message
    ledger = sink.ledger
    assert (ledger.collected, ledger.acknowledged, ledger.failed) == (n + 1, n, 1)


def test_default_topic_refuses_two_hours_ahead_and_sends_nothing() -> None:
    """A default topic (Kafka 4: 1 h ahead at most) and a run starting 2 h from now: the run is
    refused before its first event, saying how far ahead it is; the topic stays empty."""
    topic = create_topic(unique_name("dogesim-k4-default"))
    sink = KafkaSinkFactory([kafka_bootstrap()]).create(topic, key_function, value_function)
    start = now_ms() + 2 * HOUR_MS
    with pytest.raises(SinkConfigError) as info:
        run_short(sink, start)
    message = str(info.value)
    assert (
        f"the run's record timestamps reach {start + (SHORT_TICKS - 1) * SHORT_TICK_MS} " in message
    )
    assert " ahead of now" in message
    assert "at most 3600000 ms (60 min) ahead of the broker's clock" in message
    assert consume_all(topic) == []


def test_default_topic_within_the_hour_keeps_event_timestamps() -> None:
    """A default topic and a run from now spanning 5 minutes: every event arrives with its
    event timestamp as the record timestamp; the topic's settings were read once, cached."""
    topic = create_topic(unique_name("dogesim-k4-within"))
    sink = KafkaSinkFactory([kafka_bootstrap()]).create(topic, key_function, value_function)
    start = now_ms()
    run_short(sink, start)
    expected = expected_short(start)
    assert read_back(topic) == expected
    assert sink.ledger.acknowledged == len(expected)
    cache = sink.topic_rules
    assert cache is not None and list(cache.rules) == [topic]
    rule = cache.rules[topic]
    assert rule is not None and (rule.after_ms, rule.before_ms) == (HOUR_MS, None)
    assert cache.get(topic) is rule  # read once, then cached


def test_topic_that_does_not_exist_yet_is_checked_against_broker_defaults() -> None:
    """A topic that does not exist (it would be auto-created) is checked against the broker's
    log.message.timestamp.after.max.ms; the refused event is not sent."""
    topic = unique_name("dogesim-k4-absent")
    sink = KafkaSinkFactory([kafka_bootstrap()]).create(topic, key_function, value_function)
    with pytest.raises(SinkConfigError) as info:
        run_short(sink, now_ms() + 2 * HOUR_MS)
    message = str(info.value)
    assert f"defaults (topic {topic!r} does not exist yet)" in message
    assert "log.message.timestamp.after.max.ms=3600000" in message
    assert "raise the topic's message.timestamp.after.max.ms" in message
    assert sink.ledger.acknowledged == 0


@pytest.mark.parametrize(
    ("config", "offset_ms"),
    [({"message.timestamp.after.max.ms": str(AFTER_MS)}, 0), ({}, 2 * HOUR_MS)],
    ids=["low-limit-topic", "default-topic-2h-ahead"],
)
def test_send_time_delivers_everything(config: dict[str, str], offset_ms: int) -> None:
    """record_timestamp='send': where event time would be refused, every event arrives, the
    record timestamp is the send time and the payload keeps the event time."""
    topic = create_topic(unique_name("dogesim-k4-send"), config)
    factory = KafkaSinkFactory([kafka_bootstrap()], record_timestamp="send")
    sink = factory.create(topic, key_function, value_function)
    start = now_ms() + offset_ms
    sent_from = now_ms()
    run_short(sink, start)
    sent_to = now_ms()
    expected = expected_short(start)
    got = consume_all(topic)
    assert [(k.decode(), v.decode()) for k, v, _ in got] == [e[:2] for e in expected]
    assert all(sent_from <= ts <= sent_to for _, _, ts in got)
    assert expected[-1][2] > sent_to + AFTER_MS  # the event times really were out of bounds
    assert sink.ledger.acknowledged == len(expected)


def test_avro_send_time_delivers_everything() -> None:
    """KafkaAvroSinkFactory(record_timestamp='send') on a default topic, events 2 h ahead:
    every event decodes to its record with the event time, records carry the send time."""
    registry = SchemaRegistryClient.new_client({"url": f"mock://{unique_name()}"})
    topic = create_topic(unique_name("dogesim-k4-avro"))
    factory = KafkaAvroSinkFactory(
        [kafka_bootstrap()], schema_registry_client=registry, record_timestamp="send"
    )
    sink = factory.create(
        topic, lambda u, t: {"key": str(u.user_id)}, KEY_SCHEMA, event_record, EVENT_SCHEMA
    )
    start = now_ms() + 2 * HOUR_MS
    sent_from = now_ms()
    run_short(sink, start)
    sent_to = now_ms()
    expected = reference(
        event_record,
        subjects=SHORT_SUBJECTS,
        ticks=SHORT_TICKS,
        timestamp_start=start,
        tick_ms=SHORT_TICK_MS,
    )
    deserialize = AvroDeserializer(registry)
    ctx = SerializationContext(topic, MessageField.VALUE)
    got = consume_all(topic)
    assert [deserialize(v, ctx) for _, v, _ in got] == expected
    assert all(sent_from <= ts <= sent_to for _, _, ts in got)


def test_unreadable_settings_warn_and_broker_refusal_stays_loud(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When the topic's settings cannot be read in time the sink warns and sends; the
    broker's refusal of events 2 h ahead then fails the run with SinkError, nothing acked."""
    topic = create_topic(unique_name("dogesim-k4-unread"))
    factory = KafkaSinkFactory([kafka_bootstrap()], config_timeout=1e-6)
    sink = factory.create(topic, key_function, value_function)
    with (
        caplog.at_level(logging.WARNING, logger="dogesim.sinks.kafka"),
        pytest.raises(SinkError, match="Broker failed to validate record") as info,
    ):
        run_short(sink, now_ms() + 2 * HOUR_MS)
    assert not isinstance(info.value, SinkConfigError)
    assert any("cannot read its message.timestamp.*" in r.getMessage() for r in caplog.records)
    assert sink.ledger.acknowledged == 0 < sink.ledger.failed
    assert consume_all(topic) == []


def test_check_timestamps_refuses_a_run_before_it_starts() -> None:
    """check_timestamps(first, last) on a default topic: a run reaching 2 h ahead is refused
    before any event with SinkConfigError naming its last timestamp; one within the hour,
    or any run with record_timestamp='send', passes."""
    topic = create_topic(unique_name("dogesim-k4-precheck"))
    factory = KafkaSinkFactory([kafka_bootstrap()])
    sink = factory.create(topic, key_function, value_function)
    start = now_ms()
    last = start + 2 * HOUR_MS
    with pytest.raises(SinkConfigError) as info:
        sink.check_timestamps(start, last)
    message = str(info.value)
    assert f"the run's record timestamps reach {last} (" in message
    assert "at most 3600000 ms (60 min) ahead" in message and "nothing was sent" in message
    assert (sink.ledger.collected, sink.ledger.failed) == (0, 0)
    sink.check_timestamps(start, start + HOUR_MS // 2)
    sent = factory.create(topic, key_function, value_function, record_timestamp="send")
    sent.check_timestamps(start, last)
    for each in (sink, sent):
        each.close()
    assert consume_all(topic) == []
