"""The sink conformance suite (`dogesim.sinks.conformance`) for the Kafka sinks, on the broker.

Each harness writes to a fresh one-partition topic of the real broker and reads back through a
real consumer (`consume_all`, which checks the offsets, so a duplicate or a gap cannot hide):
``KafkaSink`` with JSON values, and the Avro sink with values decoded by an `AvroDeserializer`
on the same in-process Schema Registry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dogesim.errors import SinkError
from dogesim.sinks.conformance import RecordMapper, SinkConformance, SinkHarness, feed
from dogesim.sinks.kafka import KafkaSink, KafkaSinkFactory
from dogesim.sinks.kafka_avro import KafkaAvroSinkFactory
from tests.avro_schemas import CONFORMANCE_SCHEMA, KEY_SCHEMA
from tests.integration.kafka_helpers import consume_all, create_topic
from tests.integration.services import kafka_bootstrap, unique_name

pytestmark = pytest.mark.kafka


def kafka_harness() -> SinkHarness:
    """KafkaSink with JSON text values; read back through a consumer."""
    topic = create_topic(unique_name("dogesim-conformance"))
    factory = KafkaSinkFactory([kafka_bootstrap()], "conformance", flush_timeout=30)

    def make(mapper: RecordMapper) -> KafkaSink:
        return factory.create(
            topic, lambda n, t: str(n), lambda ts, n, t: json.dumps(dict(mapper(ts, n, t)))
        )

    def values() -> list[int]:
        return [json.loads(value)["n"] for _, value, _ in consume_all(topic)]

    return SinkHarness("kafka", make, lambda: len(values()), values)


def kafka_avro_harness() -> SinkHarness:
    """The Avro sink; values decoded with a deserializer on the producer's registry."""
    topic = create_topic(unique_name("dogesim-conformance-avro"))
    registry = SchemaRegistryClient.new_client({"url": f"mock://{topic}"})
    factory = KafkaAvroSinkFactory(
        [kafka_bootstrap()], schema_registry_client=registry, flush_timeout=30
    )
    decode = AvroDeserializer(registry)
    context = SerializationContext(topic, MessageField.VALUE)

    def make(mapper: RecordMapper) -> KafkaSink:
        return factory.create(
            topic, lambda n, t: {"key": str(n)}, KEY_SCHEMA, mapper, CONFORMANCE_SCHEMA
        )

    def values() -> list[int]:
        return [decode(value, context)["n"] for _, value, _ in consume_all(topic)]

    return SinkHarness("kafka_avro", make, lambda: len(values()), values)


HARNESSES: dict[str, Callable[[], SinkHarness]] = {
    "kafka": kafka_harness,
    "kafka_avro": kafka_avro_harness,
}


@pytest.fixture(params=sorted(HARNESSES))
def sink_under_test(request: pytest.FixtureRequest) -> Any:
    """One Kafka sink type, writing to a topic of its own."""
    return HARNESSES[request.param]()


class TestKafkaSinks(SinkConformance):
    """Both Kafka sinks keep the sink contract on the real broker."""


def test_reopen_that_cannot_make_a_producer_is_counted() -> None:
    """A reopened sink whose new producer cannot be made fails loudly, counted, stays closed."""
    topic = create_topic(unique_name("dogesim-conformance-reopen"))
    factory = KafkaSinkFactory([kafka_bootstrap()], "conformance", flush_timeout=30)
    sink = factory.create(topic, lambda n, t: str(n), lambda ts, n, t: str(n))
    feed(sink, 0, 2)
    sink.close()
    factory.conf["bogus.key"] = "1"  # the next producer is refused by librdkafka
    with pytest.raises(SinkError, match=r"cannot reopen.*bogus\.key"):
        feed(sink, 2, 1)
    assert sink.closed
    assert (sink.ledger.collected, sink.ledger.failed) == (1, 1)
    with pytest.raises(SinkError, match="cannot reopen"):
        sink.close()
    assert len(consume_all(topic)) == 2
