"""Kafka and Kafka Avro sink errors that need no broker: settings, serialization, schemas."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dogesim.errors import SinkError
from dogesim.examples.banking import User
from dogesim.model import Transition
from dogesim.sinks.kafka import DEFAULT_MESSAGE_TIMEOUT_MS, KafkaSinkFactory
from dogesim.sinks.kafka_avro import KafkaAvroSinkFactory, load_schema
from tests.avro_schemas import KEY_SCHEMA, record_schema

SPENDING = Transition("spending", "offline", "offline", 0.1)
T0 = 1_700_000_000_000

TRX_SCHEMA = record_schema("Trx", "dogesim.test", user_id="string", amount="long", timestamp="long")


def closed_port() -> str:
    """A 127.0.0.1 address nothing listens on (no broker is contacted in these tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def offline_factory(**kwargs: Any) -> KafkaSinkFactory:
    return KafkaSinkFactory([closed_port()], "test", connect_timeout=None, **kwargs)


# -- settings --------------------------------------------------------------------------------


def test_unknown_conf_key_is_named() -> None:
    """librdkafka's refusal of an unknown key becomes a SinkError naming the key."""
    with pytest.raises(SinkError, match=r'No such configuration property: "bogus\.key"') as info:
        KafkaSinkFactory([closed_port()], conf={"bogus.key": "1"})
    assert info.value.__cause__ is not None


def test_bad_conf_value_is_named() -> None:
    """An invalid value for a known key is reported with the key."""
    with pytest.raises(SinkError, match=r"request\.required\.acks"):
        KafkaSinkFactory([closed_port()], conf={"acks": "sometimes"})


@pytest.mark.parametrize(
    ("servers", "match"),
    [
        (None, "bootstrap.servers is None"),
        ("", "bootstrap.servers is ''"),
        ("localhost:notaport", "has port 'notaport'"),
        (["127.0.0.1:9092", "127.0.0.1:99999"], "has port '99999'"),
        ("bad host:9092", "is not a 'host:port' address"),
    ],
)
def test_bad_bootstrap_servers(servers: Any, match: str) -> None:
    """Missing or malformed bootstrap servers fail at the factory, quoting the value."""
    with pytest.raises(SinkError, match=match):
        KafkaSinkFactory(servers)


def test_defaults_are_added_and_user_settings_win() -> None:
    """Idempotence, acks=all and a bounded timeout are defaults; conf keys (and aliases) win."""
    factory = offline_factory()
    conf = factory.conf
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"
    assert conf["message.timeout.ms"] == DEFAULT_MESSAGE_TIMEOUT_MS
    assert conf["queue.buffering.max.messages"] == 100000
    assert conf["client.id"] == "test"
    assert factory.flush_timeout == DEFAULT_MESSAGE_TIMEOUT_MS / 1000 + 10

    factory = KafkaSinkFactory(
        "a:1,b:2",
        conf={"request.required.acks": "1", "delivery.timeout.ms": 5000, "client.id": "mine"},
        buffer_size=10,
    )
    conf = factory.conf
    assert conf["bootstrap.servers"] == "a:1,b:2"
    assert "acks" not in conf and "enable.idempotence" not in conf
    assert "message.timeout.ms" not in conf
    assert conf["client.id"] == "mine"
    assert conf["queue.buffering.max.messages"] == 10
    assert factory.flush_timeout == 15.0


def test_bootstrap_list_is_joined_and_conf_wins() -> None:
    """A list of servers is joined with commas; conf['bootstrap.servers'] takes precedence."""
    assert offline_factory().conf["bootstrap.servers"].startswith("127.0.0.1:")
    factory = KafkaSinkFactory(["x:1", "y:2"], connect_timeout=None)
    assert factory.conf["bootstrap.servers"] == "x:1,y:2"
    factory = KafkaSinkFactory(["x:1"], conf={"bootstrap.servers": "z:3"})
    assert factory.conf["bootstrap.servers"] == "z:3"


def test_bad_buffer_size() -> None:
    """buffer_size must be a positive integer."""
    with pytest.raises(SinkError, match="buffer_size must be an integer >= 1, got 0"):
        KafkaSinkFactory([closed_port()], buffer_size=0)


# -- serialization ---------------------------------------------------------------------------


def test_value_the_serializer_cannot_take() -> None:
    """A value StringSerializer cannot encode fails naming topic, trigger, value and cause."""
    sink = offline_factory().create("trx", lambda u, t: str(u.user_id), lambda ts, u, t: {"a": 1})
    with pytest.raises(SinkError) as info:
        sink.collect(T0, User(7, 100, 0, 0), SPENDING)
    message = str(info.value)
    assert "topic 'trx'" in message
    assert "value of event 'spending' at 1700000000000" in message
    assert "value = {'a': 1}" in message
    assert isinstance(info.value.__cause__, AttributeError)
    assert (sink.ledger.collected, sink.ledger.failed) == (1, 1)
    with pytest.raises(SinkError, match="1 events rejected before sending"):
        sink.close()


def test_close_is_bounded_by_flush_timeout() -> None:
    """With no broker, close() gives up after flush_timeout and counts every event as failed."""
    factory = KafkaSinkFactory(
        [closed_port()], connect_timeout=None, flush_timeout=1, conf={"message.timeout.ms": 60000}
    )
    sink = factory.create("slow", lambda u, t: "k", lambda ts, u, t: "v")
    for i in range(100):
        sink.collect(T0 + i, User(i, 0, 0, 0), SPENDING)
    started = time.monotonic()
    with pytest.raises(SinkError) as info:
        sink.close()
    assert time.monotonic() - started < 10
    assert "topic 'slow'" in str(info.value)
    assert "0 of 100 events acknowledged, 100 failed" in str(info.value)
    assert "Purged in queue" in str(info.value)


# -- Avro ------------------------------------------------------------------------------------


@pytest.fixture
def registry() -> SchemaRegistryClient:
    """confluent-kafka's in-process registry; one instance, shared by both sides."""
    return SchemaRegistryClient.new_client({"url": "mock://dogesim-unit"})


def avro_factory(registry: SchemaRegistryClient) -> KafkaAvroSinkFactory:
    return KafkaAvroSinkFactory(
        [closed_port()], schema_registry_client=registry, connect_timeout=None
    )


def test_avro_value_not_matching_schema(registry: SchemaRegistryClient) -> None:
    """A value that does not fit the schema fails naming topic, field and value."""
    sink = avro_factory(registry).create(
        "trx",
        lambda u, t: {"key": str(u.user_id)},
        json.dumps(KEY_SCHEMA),
        lambda ts, u, t: {"user_id": u.user_id, "amount": 5, "timestamp": ts},
        json.dumps(TRX_SCHEMA),
    )
    with pytest.raises(SinkError) as info:
        sink.collect(T0, User(7, 100, 0, 0), SPENDING)
    message = str(info.value)
    assert "topic 'trx'" in message
    assert "field user_id" in message
    assert "'user_id': 7" in message
    assert info.value.ledgers[0].failed == 1


def test_avro_missing_field(registry: SchemaRegistryClient) -> None:
    """A value missing a field without default names the field."""
    sink = avro_factory(registry).create(
        "trx", lambda u, t: {"key": "k"}, KEY_SCHEMA, lambda ts, u, t: {"user_id": "7"}, TRX_SCHEMA
    )
    with pytest.raises(SinkError, match="no value and no default for amount"):
        sink.collect(T0, User(7, 100, 0, 0), SPENDING)


@pytest.mark.parametrize(
    ("schema", "match"),
    [
        ('{"type": "record", "name": "V", "fields": [{"name": "a", "type": "lng"}]}', "lng"),
        ("{not json", "is not JSON"),
        ("schemas/missing.avsc", r"is not JSON \(nor the path of an existing file\)"),
        ({"type": "recrd"}, "not a valid Avro schema"),
    ],
)
def test_invalid_schema_fails_at_create(
    registry: SchemaRegistryClient, schema: Any, match: str
) -> None:
    """An invalid schema fails when the sink is created, not mid-run."""
    with pytest.raises(SinkError, match=match) as info:
        avro_factory(registry).create("trx", lambda u, t: {}, KEY_SCHEMA, lambda *a: {}, schema)
    assert "topic 'trx' value schema" in str(info.value)


def test_schema_from_file_and_roundtrip(registry: SchemaRegistryClient, tmp_path: Path) -> None:
    """A schema file path is read; the bytes decode with a deserializer on the same registry."""
    path = tmp_path / "Trx.avsc"
    path.write_text(json.dumps(TRX_SCHEMA, indent=2))
    assert json.loads(load_schema(str(path))) == TRX_SCHEMA
    assert json.loads(load_schema(path)) == TRX_SCHEMA
    serializer = avro_factory(registry).serializer(str(path), "trx value")
    ctx = SerializationContext("trx", MessageField.VALUE)
    value = {"user_id": "7", "amount": 5, "timestamp": T0}
    data = serializer(value, ctx)
    assert AvroDeserializer(registry)(data, ctx) == value


def test_registry_arguments(registry: SchemaRegistryClient) -> None:
    """Exactly one of a registry URL and a registry client must be given."""
    with pytest.raises(SinkError, match="no Schema Registry"):
        KafkaAvroSinkFactory([closed_port()])
    with pytest.raises(SinkError, match="not both"):
        KafkaAvroSinkFactory(
            [closed_port()], "mock://x", schema_registry_client=registry, connect_timeout=None
        )
    with pytest.raises(SinkError, match="Schema Registry settings rejected: Invalid url"):
        KafkaAvroSinkFactory([closed_port()], "ftp://registry")
    factory = KafkaAvroSinkFactory([closed_port()], "mock://by-url", connect_timeout=None)
    assert type(factory.schema_registry_client).__name__ == "MockSchemaRegistryClient"
