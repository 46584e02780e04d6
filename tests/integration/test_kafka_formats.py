"""JSON Schema and Protobuf values on the real broker: the sink conformance suite, and a seeded
banking run read back through a real consumer and the matching deserializer.

The producer and the readers share one in-process Schema Registry (``mock://``) per test, as
DESIGN.md says (no registry server is reachable here); the deserializers check the framing
(magic byte and schema id) of every record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("confluent_kafka")
pytest.importorskip("jsonschema")
pytest.importorskip("google.protobuf")

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dogesim.examples.banking import banking_simulation, event_record
from dogesim.sinks.conformance import RecordMapper, SinkConformance, SinkHarness
from dogesim.sinks.kafka import KafkaSink
from dogesim.sinks.kafka_jsonschema import KafkaJsonSchemaSinkFactory
from dogesim.sinks.kafka_protobuf import KafkaProtobufSinkFactory, message_class
from tests.integration.kafka_helpers import SEED, SUBJECTS, T0, TICKS, consume_all, create_topic
from tests.integration.kafka_helpers import reference as banking_reference
from tests.integration.services import kafka_bootstrap, unique_name
from tests.kafka_format_schemas import (
    EVENT_JSON_SCHEMA,
    EVENT_PROTO,
    RECORD_JSON_SCHEMA,
    RECORD_PROTO,
)

pytestmark = pytest.mark.kafka

#: Reads one record's value back into a dict.
Reader = Callable[[bytes], dict[str, Any]]


def json_reader(topic: str, schema: dict[str, Any], registry: SchemaRegistryClient) -> Reader:
    """A JSONDeserializer for `topic`'s values (it validates each against the schema)."""
    decode = JSONDeserializer(json.dumps(schema), schema_registry_client=registry)
    context = SerializationContext(topic, MessageField.VALUE)
    return lambda value: decode(value, context)


def proto_reader(topic: str, fields: dict[str, Any], name: str) -> Reader:
    """A ProtobufDeserializer for `topic`'s values, each message as a plain dict."""
    cls = message_class(name, fields)
    decode = ProtobufDeserializer(cls, {"use.deprecated.format": False})
    context = SerializationContext(topic, MessageField.VALUE)
    return lambda value: _plain(decode(value, context))


def _plain(message: Any) -> dict[str, Any]:
    """A message's fields as a dict (nested messages too; these schemas repeat nothing)."""
    return {
        field.name: _plain(value) if field.message_type is not None else value
        for field in message.DESCRIPTOR.fields
        for value in [getattr(message, field.name)]
    }


def format_factory(kind: str, registry: SchemaRegistryClient) -> Any:
    factory = KafkaJsonSchemaSinkFactory if kind == "jsonschema" else KafkaProtobufSinkFactory
    return factory([kafka_bootstrap()], schema_registry_client=registry, flush_timeout=30)


def harness(kind: str) -> SinkHarness:
    """The `kind` sink on a fresh topic; values read back with the matching deserializer."""
    topic = create_topic(unique_name(f"dogesim-conformance-{kind}"))
    registry = SchemaRegistryClient.new_client({"url": f"mock://{topic}"})
    factory = format_factory(kind, registry)
    schema = RECORD_JSON_SCHEMA if kind == "jsonschema" else RECORD_PROTO
    if kind == "jsonschema":
        read = json_reader(topic, RECORD_JSON_SCHEMA, registry)
    else:
        read = proto_reader(topic, RECORD_PROTO, "Record")

    def make(mapper: RecordMapper) -> KafkaSink:
        return factory.create(topic, lambda n, t: str(n), mapper, schema)

    def values() -> list[int]:
        return [int(read(value)["n"]) for _, value, _ in consume_all(topic)]

    return SinkHarness(f"kafka_{kind}", make, lambda: len(values()), values)


@pytest.fixture(params=["jsonschema", "protobuf"])
def sink_under_test(request: pytest.FixtureRequest) -> Any:
    """One registry format's Kafka sink, writing to a topic of its own."""
    return harness(request.param)


class TestKafkaFormatSinks(SinkConformance):
    """The JSON Schema and Protobuf sinks keep the sink contract on the real broker."""


@pytest.mark.parametrize("kind", ["jsonschema", "protobuf"])
def test_banking_run_reads_back_equal(kind: str) -> None:
    """A seeded banking run into Kafka reads back (consumer + deserializer) as the MemorySink
    events of the same run: keys, values and record timestamps; the ledger reconciles."""
    topic = create_topic(unique_name(f"dogesim-{kind}"))
    registry = SchemaRegistryClient.new_client({"url": f"mock://{topic}"})
    schema = EVENT_JSON_SCHEMA if kind == "jsonschema" else EVENT_PROTO
    sink = format_factory(kind, registry).create(
        topic, lambda u, t: str(u.user_id), event_record, schema
    )
    banking_simulation([sink], subjects=SUBJECTS, ticks=TICKS, seed=SEED, timestamp_start=T0).run()
    expected = banking_reference(lambda ts, u, t: (str(u.user_id), event_record(ts, u, t), ts))
    if kind == "jsonschema":
        read = json_reader(topic, EVENT_JSON_SCHEMA, registry)
    else:
        read = proto_reader(topic, EVENT_PROTO, "BankingValue")
    got = [(key.decode(), read(value), ts) for key, value, ts in consume_all(topic)]
    assert got == expected
    ledger = sink.ledger
    assert (ledger.collected, ledger.acknowledged, ledger.failed) == (len(expected),) * 2 + (0,)
    assert registry.get_subjects() == [f"{topic}-value"]
