"""Kafka sinks with Protobuf values registered in a Schema Registry, with no ``protoc`` step.

- `message_class(name, fields)`: a Protobuf message class made at run time from a description,
  ``{"user_id": "int64", "amount": "double", "tags": ["string"], "where": {"city": "string"}}``
  (a list: a repeated field; a mapping, or dotted names such as ``"where.city"``: a nested
  message), through protobuf's
  ``descriptor_pb2`` and ``message_factory``. Field numbers follow the order given.
- `build_kafka_protobuf`: the registry's builder of the ``kafka_protobuf`` type.
- `PROTO_TYPES`: the scalar type names a description may use.
- `KafkaProtobufSinkFactory`: ``create(topic, key_function, value_function, value_schema,
  key_schema=None)``; a schema is such a description or a generated message class. The value
  function returns a mapping (or a message); confluent-kafka's `ProtobufSerializer` writes it.

A value the message cannot hold (an unknown field, a string in an ``int64``) fails its event
with `SinkError` naming the topic, the event, the field and the value.

Importing this module imports protobuf and confluent_kafka's Protobuf support (the
``protobuf`` extra).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import Serializer
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from dogesim.errors import SinkConfigError, shown
from dogesim.sinks.kafka_registry import (
    ValueSchemaSinkFactory,
    build_value_schema_sink,
    message_name,
)

if TYPE_CHECKING:
    from dogesim.sinks.kafka import KafkaSink
    from dogesim.sinks.registry import BuildContext

__all__ = ["PROTO_TYPES", "KafkaProtobufSinkFactory", "build_kafka_protobuf", "message_class"]

_Field = descriptor_pb2.FieldDescriptorProto

#: Scalar type names of a message description, and their Protobuf types.
PROTO_TYPES: dict[str, int] = {
    "double": _Field.TYPE_DOUBLE,
    "float": _Field.TYPE_FLOAT,
    "int64": _Field.TYPE_INT64,
    "uint64": _Field.TYPE_UINT64,
    "int32": _Field.TYPE_INT32,
    "uint32": _Field.TYPE_UINT32,
    "sint64": _Field.TYPE_SINT64,
    "sint32": _Field.TYPE_SINT32,
    "bool": _Field.TYPE_BOOL,
    "string": _Field.TYPE_STRING,
    "bytes": _Field.TYPE_BYTES,
}

#: Each generated class gets a file of its own (its name must be unique in a process).
_FILES = itertools.count(1)


def _nested(fields: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """`fields` with dotted names (``"user.id": "int64"``) made nested mappings."""
    if not isinstance(fields, Mapping) or not any("." in str(name) for name in fields):
        return fields
    tree: dict[str, Any] = {}
    for name, kind in fields.items():
        *parents, leaf = str(name).split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SinkConfigError(f"{where}: field {name!r}: {part!r} is not a message")
        node[leaf] = kind
    return tree


def _describe(
    message: descriptor_pb2.DescriptorProto, fields: Mapping[str, Any], path: str, where: str
) -> None:
    """Fill `message` with the fields of `fields` (nested messages inside it)."""
    if not isinstance(fields, Mapping) or not fields:
        raise SinkConfigError(
            f"{where}: message {path} must be a non-empty mapping of field name to type "
            f"(one of {', '.join(PROTO_TYPES)}, a [type] list or a nested mapping), "
            f"got {shown(fields)}"
        )
    for number, (name, kind) in enumerate(fields.items(), start=1):
        field = message.field.add(name=str(name), number=number, label=_Field.LABEL_OPTIONAL)
        if isinstance(kind, Sequence) and not isinstance(kind, str):
            if len(kind) != 1:
                raise SinkConfigError(
                    f"{where}: field {path}.{name} is {shown(kind)}; a repeated field is a list "
                    "of one type, e.g. ['string']"
                )
            field.label = _Field.LABEL_REPEATED
            kind = kind[0]
        if isinstance(kind, Mapping):
            nested = message.nested_type.add(name=message_name(str(name), ""))
            _describe(nested, kind, f"{path}.{name}", where)
            field.type = _Field.TYPE_MESSAGE
            field.type_name = f"{path}.{nested.name}"
        elif kind in PROTO_TYPES:
            field.type = PROTO_TYPES[kind]
        else:
            raise SinkConfigError(
                f"{where}: field {path}.{name} has type {shown(kind)}; give one of "
                f"{', '.join(PROTO_TYPES)}, a [type] list or a nested mapping"
            )


def message_class(
    name: str, fields: Mapping[str, Any], *, package: str = "dogesim", where: str = "protobuf"
) -> type[Message]:
    """A Protobuf (proto3) message class `package.name` with `fields`, made at run time.

    Raises:
        SinkConfigError: a bad name, an unknown type name, or a malformed description.
    """
    if not name.isidentifier():
        raise SinkConfigError(f"{where}: {name!r} is not a valid message name")
    file = descriptor_pb2.FileDescriptorProto(
        name=f"dogesim/generated_{next(_FILES)}_{name}.proto", package=package, syntax="proto3"
    )
    tree = _nested(fields, where)
    _describe(file.message_type.add(name=name), tree, f".{package}.{name}", where)
    pool = descriptor_pool.DescriptorPool()
    try:
        pool.Add(file)
        descriptor = pool.FindMessageTypeByName(f"{package}.{name}")
    except TypeError as exc:  # protobuf rejects the description (e.g. a duplicate name)
        raise SinkConfigError(f"{where}: message {name} cannot be made: {exc}") from exc
    cls: type[Message] = message_factory.GetMessageClass(descriptor)
    return cls


def _maker(cls: type[Message]) -> Any:
    """Turns a value function's result into a `cls` message (a mapping, or a message)."""

    def make(value: Any) -> Message:
        if isinstance(value, Message):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"a {cls.DESCRIPTOR.name} value is a mapping, got {shown(value)}")
        try:
            return cls(**value)
        except (TypeError, ValueError):
            # The fast constructor says little; the JSON reader names the field at fault.
            return json_format.ParseDict(dict(value), cls())

    return make


class KafkaProtobufSinkFactory(ValueSchemaSinkFactory):
    """Creates Kafka sinks that write Protobuf values (and keys) with registered schemas.

    The arguments are `dogesim.sinks.kafka_registry.SchemaRegistrySinkFactory`'s;
    ``serializer_conf`` holds `ProtobufSerializer` settings (``auto.register.schemas``,
    ``use.deprecated.format`` ...).
    """

    label = "Kafka Protobuf"

    def serializer(self, schema: Any, what: str, name: str = "Value") -> Serializer:
        """A `ProtobufSerializer` for `schema`: a field description (`message_class`, named
        `name`) or a generated message class."""
        if isinstance(schema, type) and issubclass(schema, Message):
            cls = schema
        else:
            cls = message_class(name, schema, where=what)
        client, conf = self.schema_registry_client, self.serializer_conf
        return self.registered(ProtobufSerializer, what, cls, client, conf, prepare=_maker(cls))


def build_kafka_protobuf(settings: Mapping[str, Any], context: BuildContext) -> KafkaSink:
    """The registry's builder for the ``kafka_protobuf`` sink type."""
    return build_value_schema_sink(KafkaProtobufSinkFactory, settings, context)
