"""JSON Schema and Protobuf Kafka values without a broker: schemas checked at create, values
serialized through the in-process registry and read back, errors naming field and value."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("confluent_kafka")
pytest.importorskip("jsonschema")
pytest.importorskip("google.protobuf")

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dogesim.errors import SinkConfigError, SinkError
from dogesim.examples.banking import User, event_record
from dogesim.model import Transition
from dogesim.sinks.kafka_jsonschema import KafkaJsonSchemaSinkFactory
from dogesim.sinks.kafka_protobuf import KafkaProtobufSinkFactory, message_class
from dogesim.sinks.kafka_registry import message_name
from dogesim.sinks.registry import build_sink
from tests.kafka_format_schemas import (
    EVENT_JSON_SCHEMA,
    EVENT_PROTO,
    EVENT_PROTO_FLAT,
)

T0 = 1_700_000_000_000
PAY = Transition("pay", "online", "online", 10)
VALUE = SerializationContext("trx", MessageField.VALUE)


def closed_port() -> str:
    """A 127.0.0.1 address nothing listens on (no broker is contacted in these tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def registry() -> SchemaRegistryClient:
    """confluent-kafka's in-process registry, shared by both sides."""
    return SchemaRegistryClient.new_client({"url": "mock://dogesim-formats"})


def offline(cls: Any, registry: SchemaRegistryClient) -> Any:
    return cls([closed_port()], schema_registry_client=registry, connect_timeout=None)


def test_message_class_from_a_description() -> None:
    """A field mapping gives a proto3 class: scalars, a nested message, a repeated field."""
    cls = message_class("Trx", {"id": "int64", "where": {"city": "string"}, "tags": ["string"]})
    message = cls(id=3, where={"city": "Oslo"}, tags=["a", "b"])
    assert (message.id, message.where.city, list(message.tags)) == (3, "Oslo", ["a", "b"])
    assert [f.number for f in cls.DESCRIPTOR.fields] == [1, 2, 3]
    dotted = message_class("Trx", {"id": "int64", "where.city": "string"})
    assert dotted(where={"city": "Rome"}).where.city == "Rome"


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"id": "integer"}, r"field \.dogesim\.Bad\.id has type 'integer'"),
        ({}, "must be a non-empty mapping"),
        ({"tags": ["string", "int64"]}, "a repeated field is a list of one type"),
    ],
)
def test_a_bad_description_is_refused(fields: Any, match: str) -> None:
    """Unknown types, empty messages and odd lists are SinkConfigErrors naming the field."""
    with pytest.raises(SinkConfigError, match=match):
        message_class("Bad", fields)


def test_message_name_from_topic() -> None:
    """Topics become type names: separators dropped, words capitalised, a letter first."""
    assert message_name("bank-trx.v1", "Value") == "BankTrxV1Value"
    assert message_name("7days", "Key") == "Topic7daysKey"


def test_protobuf_value_round_trips(registry: SchemaRegistryClient) -> None:
    """A mapping value is written as the registered message and reads back field for field."""
    factory = offline(KafkaProtobufSinkFactory, registry)
    serializer = factory.serializer(EVENT_PROTO, "trx value", "TrxValue")
    value = event_record(T0, User(7, 120, 30, 0), PAY)
    data = serializer(value, VALUE)
    assert data[:1] == b"\x00"  # the registry's framing: magic byte, then the schema id
    cls = message_class("TrxValue", EVENT_PROTO)
    back = ProtobufDeserializer(cls, {"use.deprecated.format": False})(data, VALUE)
    assert (back.timestamp, back.user.user_id, back.user.balance, back.event) == (
        T0,
        7,
        120,
        "pay",
    )
    assert registry.get_subjects() == ["trx-value"]


def test_protobuf_value_of_the_wrong_type_names_the_field(registry: SchemaRegistryClient) -> None:
    """A string in an int64 field fails the event with the topic, the field and the value."""
    sink = offline(KafkaProtobufSinkFactory, registry).create(
        "trx",
        lambda u, t: str(u.user_id),
        lambda ts, u, t: {**event_record(ts, u, t), "timestamp": "soon"},
        EVENT_PROTO,
    )
    with pytest.raises(SinkError) as info:
        sink.collect(T0, User(7, 100, 0, 0), PAY)
    message = str(info.value)
    assert "topic 'trx'" in message and "ProtobufSerializer" in message
    assert "Failed to parse timestamp field" in message and "'soon'" in message
    assert (sink.ledger.collected, sink.ledger.failed) == (1, 1)


def test_json_schema_value_round_trips(registry: SchemaRegistryClient) -> None:
    """A value the schema accepts is written with the registry framing and reads back equal."""
    factory = offline(KafkaJsonSchemaSinkFactory, registry)
    serializer = factory.serializer(EVENT_JSON_SCHEMA, "trx value")
    value = event_record(T0, User(7, 120, 30, 0), PAY)
    data = serializer(value, VALUE)
    import json

    back = JSONDeserializer(json.dumps(EVENT_JSON_SCHEMA), schema_registry_client=registry)
    assert back(data, VALUE) == value


def test_json_schema_rejects_a_value_naming_what_is_wrong(registry: SchemaRegistryClient) -> None:
    """A value the schema rejects fails the event, saying where and what the schema wants."""
    sink = offline(KafkaJsonSchemaSinkFactory, registry).create(
        "trx",
        lambda u, t: str(u.user_id),
        lambda ts, u, t: {
            **event_record(ts, u, t),
            "user": {"user_id": 7, "balance": "x", "loan_balance": 0},
        },
        EVENT_JSON_SCHEMA,
    )
    with pytest.raises(SinkError, match=r"user\.balance: 'x' is not of type 'integer'") as info:
        sink.collect(T0, User(7, 100, 0, 0), PAY)
    assert "topic 'trx'" in str(info.value) and "JSONSerializer" in str(info.value)
    assert sink.ledger.failed == 1


@pytest.mark.parametrize(
    ("schema", "match"),
    [
        ('{"type": "objekt"}', "is not a valid JSON Schema"),
        ("{not json", "is not JSON"),
        ("[1, 2]", "a schema is a JSON object"),
    ],
)
def test_invalid_json_schema_fails_at_create(
    registry: SchemaRegistryClient, schema: str, match: str
) -> None:
    """An invalid JSON Schema fails when the sink is created, naming the topic's schema."""
    with pytest.raises(SinkConfigError, match=match) as info:
        offline(KafkaJsonSchemaSinkFactory, registry).create(
            "trx", lambda u, t: "k", lambda *a: {}, schema
        )
    assert "topic 'trx' value schema" in str(info.value)


@pytest.mark.parametrize(
    ("kind", "schema", "serializer"),
    [
        ("kafka_jsonschema", EVENT_JSON_SCHEMA, "JSONSerializer"),
        ("kafka_protobuf", EVENT_PROTO_FLAT, "ProtobufSerializer"),
    ],
)
def test_registry_types_build_kafka_sinks(kind: str, schema: Any, serializer: str) -> None:
    """build_sink makes each format's Kafka sink from settings (no broker needed to build)."""
    import json

    sink = build_sink(
        kind,
        {
            "bootstrap_servers": closed_port(),
            "schema_registry_url": "mock://dogesim-build",
            "topic": "trx",
            "value": event_record,
            "value_schema": json.dumps(schema) if kind == "kafka_jsonschema" else schema,
        },
    )
    assert sink.value_serializer.name == serializer
    assert sink.topic == "trx"


def sink_yaml(name: str, kind: str, schema: str) -> str:
    """One Kafka sink of a model file, of type `kind`, whose value schema is `schema`."""
    settings = {
        "type": kind,
        "bootstrap_servers": closed_port(),
        "schema_registry_url": "mock://dogesim-modelfile",
        "topic": "trx",
        "value": "dogesim.examples.banking:event_record",
    }
    lines = "".join(f"    {key}: {value}\n" for key, value in settings.items())
    return f"  {name}:\n{lines}    value_schema:{schema}\n"


#: The banking value as a flat Protobuf field mapping, indented under ``value_schema:``.
PROTO_YAML = "".join(f"\n      {name}: {kind}" for name, kind in EVENT_PROTO_FLAT.items())


def formats_model(json_schema: str, proto: bool = True) -> str:
    """A model file whose logins go to a kafka_jsonschema sink (value schema `json_schema`)
    and, with `proto`, to a kafka_protobuf sink with a flat field mapping."""
    sinks = {"as_json": sink_yaml("as_json", "kafka_jsonschema", f" {json_schema}")}
    if proto:
        sinks["as_proto"] = sink_yaml("as_proto", "kafka_protobuf", PROTO_YAML)
    head = (
        "name: formats\nstates: [offline, online]\ninitial_state: offline\ntick: 1m\n"
        "ticks: 10\nsubjects: {count: 3, factory: dogesim.examples.banking:UserFactory}\n"
    )
    transition = "{trigger: login, from: offline, to: online, probability: 10, sinks: [%s]}"
    return (
        f"{head}sinks:\n{''.join(sinks.values())}"
        f"transitions:\n  - {transition % ', '.join(sinks)}\n"
    )


def test_model_file_sinks_of_both_formats(tmp_path: Path) -> None:
    """A model file names a JSON Schema file (beside it) and a flat Protobuf field mapping;
    both sinks build with their format's serializer."""
    import json

    from dogesim.modelfile import load_model_file

    (tmp_path / "event.schema.json").write_text(json.dumps(EVENT_JSON_SCHEMA))
    model = tmp_path / "m.yaml"
    model.write_text(formats_model("event.schema.json"))
    spec = load_model_file(model)
    built = {name: spec.sinks[name].build() for name in ("as_json", "as_proto")}
    assert built["as_json"].value_serializer.name == "JSONSerializer"
    assert built["as_proto"].value_serializer.name == "ProtobufSerializer"
    value = event_record(T0, User(1, 2, 3, 0), PAY)
    assert built["as_proto"].value_serializer(value, VALUE)[:1] == b"\x00"


def test_json_schema_serializer_validation_on_request(registry: SchemaRegistryClient) -> None:
    """serializer_conf={'validate': True} leaves the check to JSONSerializer: still refused."""
    factory = KafkaJsonSchemaSinkFactory(
        [closed_port()],
        schema_registry_client=registry,
        connect_timeout=None,
        serializer_conf={"validate": True},
    )
    serializer = factory.serializer(EVENT_JSON_SCHEMA, "trx value")
    assert serializer.prepare is None
    with pytest.raises(Exception, match="is not of type 'string'"):
        serializer({**event_record(T0, User(7, 1, 0, 0), PAY), "event": 5}, VALUE)


@pytest.mark.parametrize("kind", ["jsonschema", "protobuf"])
def test_a_key_schema_registers_the_key_too(registry: SchemaRegistryClient, kind: str) -> None:
    """With key_schema the key is serialized in the format and registered as <topic>-key;
    without one it is UTF-8 text."""
    key_schema: Any = {"id": "string"}
    factory: Any = KafkaProtobufSinkFactory
    if kind == "jsonschema":
        key_schema = {"type": "object", "properties": {"id": {"type": "string"}}}
        factory = KafkaJsonSchemaSinkFactory
    schema = EVENT_PROTO if kind == "protobuf" else EVENT_JSON_SCHEMA
    sink = offline(factory, registry).create(
        "trx", lambda u, t: {"id": str(u.user_id)}, event_record, schema, key_schema=key_schema
    )
    key = sink.key_serializer({"id": "7"}, SerializationContext("trx", MessageField.KEY))
    assert key[:1] == b"\x00"
    assert "trx-key" in registry.get_subjects()
    plain = offline(factory, registry).create("trx2", lambda u, t: "7", event_record, schema)
    assert type(plain.key_serializer).__name__ == "StringSerializer"


def test_model_file_json_schema_that_is_no_file_names_it(tmp_path: Path) -> None:
    """A value_schema that is neither JSON nor a file beside the model is refused at its line."""
    from dogesim.errors import ModelError
    from dogesim.modelfile import load_model_text

    text = formats_model("missing.schema.json", proto=False)
    with pytest.raises(
        ModelError,
        match=r":14: sinks\.as_json\.value_schema: 'missing\.schema\.json' "
        r"is neither a JSON Schema \(JSON\) nor a file",
    ):
        load_model_text(text, source=str(tmp_path / "m.yaml"))
