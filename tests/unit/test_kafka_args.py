"""Kafka sink arguments and per-event errors that need no broker.

doge-datagen 1.0.4's positional signatures, its `CounterHolder`, the ``record_timestamp``
option, errors in key/value functions, a second ``close()``, the timestamp-0 warning, and the
parsing of a topic's timestamp settings. The producers point at a closed local port and no
test waits for it.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka import Producer
from confluent_kafka.admin import ConfigEntry
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import StringSerializer

from dogesim.errors import SinkConfigError, SinkError
from dogesim.examples.banking import User
from dogesim.model import Transition
from dogesim.sinks.kafka import CounterHolder, KafkaSink, KafkaSinkFactory
from dogesim.sinks.kafka_avro import KafkaAvroSinkFactory
from dogesim.sinks.kafka_timestamps import TimestampRule, _rule

LOGIN = Transition("login", "offline", "online", 0.1)
T0 = 1_700_000_000_000
USER = User(1, 100, 0, 0)


def closed_port() -> str:
    """A 127.0.0.1 address nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def offline_sink(factory: KafkaSinkFactory, **kwargs: Any) -> KafkaSink:
    return factory.create(
        "t", lambda u, t: str(u.user_id), lambda ts, u, t: f"{ts}:{t.trigger}", **kwargs
    )


def offline(**kwargs: Any) -> KafkaSinkFactory:
    """A factory that never contacts a cluster (no connect or timestamp-settings check)."""
    return KafkaSinkFactory([closed_port()], "test", connect_timeout=None, **kwargs)


# -- doge-datagen's signatures ------------------------------------------------------------------


def test_kafka_factory_104_positional_signature() -> None:
    """``KafkaSinkFactory(servers, client_id, buffer_size)`` (1.0.4) sets the buffer size."""
    factory = KafkaSinkFactory([closed_port()], "doge-client", 500)
    assert factory.buffer_size == 500
    assert factory.conf["queue.buffering.max.messages"] == 500
    assert factory.conf["client.id"] == "doge-client"


def test_kafka_factory_conf_signature_keeps_dotted_keys() -> None:
    """``KafkaSinkFactory(servers, client_id, conf, buffer_size)`` passes conf untouched."""
    address = closed_port()
    conf = {"bootstrap.servers": address, "linger.ms": 5, "client.id": "from-conf"}
    factory = KafkaSinkFactory(None, "ignored", conf, 700)
    assert factory.buffer_size == 700
    assert {k: factory.conf[k] for k in conf} == conf
    assert conf == {"bootstrap.servers": address, "linger.ms": 5, "client.id": "from-conf"}


def test_avro_factory_104_positional_signature() -> None:
    """``KafkaAvroSinkFactory(servers, registry_url, client_id, buffer_size)`` (1.0.4)."""
    factory = KafkaAvroSinkFactory([closed_port()], "mock://h5-args", "doge-client", 300)
    assert factory.factory.buffer_size == 300
    assert factory.factory.conf["client.id"] == "doge-client"
    assert isinstance(factory.schema_registry_client, SchemaRegistryClient)


def test_avro_factory_conf_signature() -> None:
    """``KafkaAvroSinkFactory(servers, registry_url, client_id, conf, buffer_size)``."""
    factory = KafkaAvroSinkFactory(
        [closed_port()], "mock://h5-args", "c", {"linger.ms": 7, "acks": "1"}, 40
    )
    assert factory.factory.buffer_size == 40
    assert (factory.factory.conf["linger.ms"], factory.factory.conf["acks"]) == (7, "1")
    assert "enable.idempotence" not in factory.factory.conf


@pytest.mark.parametrize(
    ("conf", "buffer_size", "message"),
    [
        (10, 20, "conf is the integer 10 and buffer_size is 20"),
        ("linger.ms=5", None, "conf must be a dict of librdkafka settings"),
        (None, 0, "buffer_size must be an integer >= 1, got 0"),
        (True, None, "conf must be a dict"),
    ],
)
def test_ambiguous_or_wrong_conf_and_buffer_are_named(
    conf: Any, buffer_size: Any, message: str
) -> None:
    """A conf that is neither a dict nor 1.0.4's buffer size is refused, naming the value."""
    with pytest.raises(SinkConfigError, match=message):
        KafkaSinkFactory([closed_port()], "c", conf, buffer_size)
    with pytest.raises(SinkConfigError, match=message):
        KafkaAvroSinkFactory([closed_port()], "mock://h5-args", "c", conf, buffer_size)


def test_counter_holder_is_shared_and_counts_since_flush() -> None:
    """`CounterHolder` is doge's: one per factory, shared by its sinks, counting produced
    events and back to 0 once close() has flushed the producer."""
    holder = CounterHolder()
    assert holder.counter == 0
    factory = KafkaSinkFactory([closed_port()], "c", connect_timeout=None, flush_timeout=0.5)
    first, second = offline_sink(factory), offline_sink(factory)
    assert first.msg_count_holder is second.msg_count_holder is factory.counter_holder
    assert isinstance(factory.counter_holder, CounterHolder)
    user = User(7, 0, 0, 0)
    for i in range(3):
        first.collect(T0 + i, user, LOGIN)
    second.collect(T0 + 3, user, LOGIN)
    assert factory.counter_holder.counter == 4
    # Nothing can be delivered to a closed port: close() purges the producer, and with
    # nothing left in it the counter starts again.
    with pytest.raises(SinkError, match=r"unconfirmed|failed"):
        first.close()
    assert factory.counter_holder.counter == 0
    with pytest.raises(SinkError):
        second.close()


# -- record_timestamp ---------------------------------------------------------------------------


def test_record_timestamp_option_is_checked() -> None:
    """record_timestamp takes 'event' or 'send'; anything else is refused with both named."""
    with pytest.raises(SinkConfigError, match=r"'event'.*'send'.*got 'now'"):
        offline(record_timestamp="now")  # type: ignore[arg-type]
    factory = offline(record_timestamp="send")
    assert offline_sink(factory).record_timestamp == "send"
    assert offline_sink(factory, record_timestamp="event").record_timestamp == "event"
    with pytest.raises(SinkConfigError, match="got 'later'"):
        offline_sink(factory, record_timestamp="later")


# -- errors per event ---------------------------------------------------------------------------


def test_key_function_error_is_sink_error_with_counts() -> None:
    """A key function that raises fails the event with SinkError naming it, and counts it."""

    def bad_key(user: User, transition: Transition) -> str:
        raise ValueError("no key for you")

    sink = offline().create("t", bad_key, lambda ts, u, t: "v")
    with pytest.raises(SinkError) as info:
        sink.collect(T0, USER, LOGIN)
    text = str(info.value)
    assert "the key function" in text and "bad_key raised ValueError: no key for you" in text
    assert "event 'login' at 1700000000000" in text
    assert "0 of 1 events acknowledged, 1 failed" in text
    assert (sink.ledger.collected, sink.ledger.failed) == (1, 1)
    assert info.value.ledgers == (sink.ledger,)


def test_value_function_error_is_sink_error_with_counts() -> None:
    """A value function that raises fails the event with SinkError naming it, and counts it."""
    sink = offline().create("t", lambda u, t: "k", lambda ts, u, t: {}["missing"])
    with pytest.raises(SinkError, match=r"the value function .* raised KeyError: 'missing'"):
        sink.collect(T0, USER, LOGIN)
    assert (sink.ledger.collected, sink.ledger.failed) == (1, 1)


def test_serializer_error_names_the_serializer_and_value() -> None:
    """A serializer that raises fails the event with SinkError naming it and the value."""

    def serializer(obj: Any, ctx: Any = None) -> bytes:
        raise TypeError("not bytes-able")

    sink = offline().create(
        "t", lambda u, t: "k", lambda ts, u, t: 3.5, value_serializer=serializer
    )  # type: ignore[arg-type]
    with pytest.raises(
        SinkError, match=r"serialize the value .* TypeError: not bytes-able; value = 3.5"
    ):
        sink.collect(T0, USER, LOGIN)
    assert (sink.ledger.collected, sink.ledger.failed) == (1, 1)


def test_second_close_raises_the_first_failure_again() -> None:
    """close() after a failed close() raises the same error instead of returning quietly."""
    sink = offline().create("t", lambda u, t: 1 / 0, lambda ts, u, t: "v")
    with pytest.raises(SinkError):
        sink.collect(T0, USER, LOGIN)
    with pytest.raises(SinkError, match="1 events rejected before sending") as first:
        sink.close()
    with pytest.raises(SinkError) as second:
        sink.close()
    assert second.value is first.value


# -- timestamp 0 ----------------------------------------------------------------------------------


def test_timestamp_zero_warns_once_per_sink(caplog: pytest.LogCaptureFixture) -> None:
    """A record timestamp of 0 (Kafka: 'now') is warned about once per sink, not per event."""
    factory = offline(flush_timeout=0.2)
    first, second = offline_sink(factory), offline_sink(factory)
    with caplog.at_level(logging.WARNING, logger="dogesim.sinks.kafka"):
        for sink in (first, second):
            for _ in range(3):
                sink.collect(0, USER, LOGIN)
            sink.collect(60_000, USER, LOGIN)
            sink.collect(0, USER, LOGIN)
    warnings = [r for r in caplog.records if "timestamp 0" in r.getMessage()]
    assert len(warnings) == 2
    assert "reads as 'now'" in warnings[0].getMessage()
    assert "timestamp_start" in warnings[0].getMessage()
    for sink in (first, second):
        assert sink.ledger.collected == 5
        with pytest.raises(SinkError):
            sink.close()


def test_timestamp_zero_no_warning_when_record_time_is_send_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With record_timestamp='send' the record time is the send time anyway: no warning."""
    sink = offline_sink(offline(flush_timeout=0.2, record_timestamp="send"))
    with caplog.at_level(logging.WARNING, logger="dogesim.sinks.kafka"):
        sink.collect(0, USER, LOGIN)
    assert not [r for r in caplog.records if "timestamp 0" in r.getMessage()]
    with pytest.raises(SinkError):
        sink.close()


# -- a topic's timestamp settings ---------------------------------------------------------------


def entries(**values: str) -> dict[str, ConfigEntry]:
    return {
        name.replace("_", "."): ConfigEntry(name.replace("_", "."), v) for name, v in values.items()
    }


def test_topic_settings_give_the_kafka4_window() -> None:
    """Kafka 4 settings: 1 h ahead allowed, Long.MAX behind means no limit."""
    rule = _rule(
        "t",
        entries(
            message_timestamp_type="CreateTime",
            message_timestamp_after_max_ms="3600000",
            message_timestamp_before_max_ms="9223372036854775807",
        ),
        "message.",
        "topic 't'",
    )
    assert rule == TimestampRule("t", False, None, 3_600_000, "topic 't'", "message.")
    assert rule.window(1_000_000.0) == (float("-inf"), 4_600_000.0)


def test_broker_defaults_and_pre_36_difference_setting() -> None:
    """Broker defaults use the log.message. prefix; before 3.6 one difference bounds both."""
    rule = _rule(
        "t",
        entries(log_message_timestamp_difference_max_ms="60000"),
        "log.message.",
        "broker 1 defaults",
    )
    assert (rule.before_ms, rule.after_ms, rule.log_append_time) == (60_000, 60_000, False)
    assert rule.window(1_000_000.0, margin_ms=1000.0) == (941_000.0, 1_060_000.0)


def test_log_append_time_accepts_any_timestamp() -> None:
    """LogAppendTime topics overwrite record timestamps: nothing to check."""
    rule = _rule(
        "t",
        entries(message_timestamp_type="LogAppendTime", message_timestamp_after_max_ms="1"),
        "message.",
        "topic 't'",
    )
    assert rule.log_append_time
    assert rule.window(5.0) == (float("-inf"), float("inf"))


def test_doge_kafka_sink_constructor_uses_the_given_producer_and_leaves_it_open() -> None:
    """doge-datagen's ``KafkaSink(producer, CounterHolder(), topic, ...)``: the sink produces
    through that producer, counts in that holder, and close() does not close the producer."""
    producer = Producer({"bootstrap.servers": closed_port(), "log_level": 0})
    holder = CounterHolder()
    sink = KafkaSink(
        producer,
        holder,
        "t",
        lambda u, t: str(u.user_id),
        StringSerializer(),
        lambda ts, u, t: t.trigger,
        StringSerializer(),
        10,
        connect_timeout=None,
        flush_timeout=0.2,
    )
    assert (sink.producer, sink.msg_count_holder, sink.buffer_size) == (producer, holder, 10)
    sink.collect(T0, USER, LOGIN)
    sink.collect(T0 + 1, USER, LOGIN)
    assert holder.counter == 2
    with pytest.raises(SinkError, match="0 of 2 events acknowledged"):
        sink.close()
    producer.produce("t", b"still open")  # closing the sink left the program's producer open
    producer.purge()


def test_an_unreachable_cluster_fails_a_backfill_run_after_one_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backfill run into a cluster nobody answers fails before its first event, after the
    connection check alone: the topic's timestamp settings are never asked for (each of the
    two waited connect_timeout, so the run took twice as long as documented), and no event
    is counted."""
    from dogesim.examples.banking import banking_simulation
    from dogesim.sinks import kafka_timestamps

    reads: list[str] = []
    original = kafka_timestamps.TopicRules.get

    def counted(self: Any, topic: str) -> Any:
        reads.append(topic)
        return original(self, topic)

    monkeypatch.setattr(kafka_timestamps.TopicRules, "get", counted)
    factory = KafkaSinkFactory([closed_port()], "c", connect_timeout=0.5)
    sink = offline_sink(factory)
    with pytest.raises(SinkError, match=r"did not answer within"):
        banking_simulation([sink], subjects=2000, ticks=10, seed=1).run()
    assert reads == []
    assert sink.ledger.collected == 0 and sink.ledger.failed == 0
