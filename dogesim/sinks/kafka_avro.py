"""Kafka sinks with Avro keys and values, registered in a Confluent Schema Registry.

- `KafkaAvroSinkFactory`: a `KafkaSinkFactory` plus a Schema Registry client;
  ``create(topic, key_function, key_schema, value_function, value_schema)`` makes a
  `KafkaSink` whose serializers are confluent-kafka's `AvroSerializer` (doge-datagen's call).
  Both of doge-datagen's signatures work: 1.0.4's ``(servers, registry_url, client_id,
  buffer_size)`` and the later ``(servers, registry_url, client_id, conf, buffer_size)``.
- `load_schema`: an Avro schema given as JSON text, a dict, or the path of a ``.avsc`` file,
  checked with fastavro and returned as JSON text.

Schemas are parsed when the sink is created, so an invalid schema fails before the run. A value
that does not fit its schema fails the event with `SinkError` naming the topic, the event, the
field fastavro complains about, and the value.

Importing this module imports confluent_kafka's schema registry support (the ``avro`` extra).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import Serializer
from fastavro.schema import SchemaParseException, parse_schema

from dogesim.errors import SinkConfigError
from dogesim.sinks.kafka import KafkaSink
from dogesim.sinks.kafka_registry import (
    SchemaRegistrySinkFactory,
    SchemaSource,
    read_schema_json,
)

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = ["KafkaAvroSinkFactory", "load_schema"]


def load_schema(schema: SchemaSource, what: str = "schema") -> str:
    """The Avro schema `schema` as JSON text, checked with fastavro.

    Args:
        schema: JSON text, a dict, or the path of an existing file holding the JSON (a string
            that names an existing file is read as one).
        what: how to call the schema in error messages (e.g. ``topic 'trx' value schema``).

    Raises:
        SinkError: the file cannot be read, the text is not JSON, or it is not a valid Avro
            schema; the message says which and quotes the schema's start.
    """
    text, parsed, source = read_schema_json(schema, what, "Avro schema JSON")
    shown = text.strip()[:120]
    try:
        parse_schema(parsed, _write_hint=False)
    except (SchemaParseException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SinkConfigError(
            f"{what}: {source} is not a valid Avro schema: {type(exc).__name__}: {exc}; "
            f"starts {shown!r}"
        ) from exc
    return text


class KafkaAvroSinkFactory(SchemaRegistrySinkFactory):
    """Creates Kafka sinks that write Avro, with schemas registered in a Schema Registry.

    Accepts doge-datagen 1.0.4's ``KafkaAvroSinkFactory(bootstrap_servers,
    schema_registry_url, client_id, buffer_size)`` (an integer in ``conf``'s place is the
    buffer size) as well as the later ``(..., client_id, conf, buffer_size)``. The arguments
    are `SchemaRegistrySinkFactory`'s; ``serializer_conf`` holds `AvroSerializer` settings,
    e.g. ``{'validate.strict': True}`` to reject values with fields the schema does not have.

    Raises:
        SinkError: neither or both of a registry URL and client, a registry setting the client
            rejects, or any `KafkaSinkFactory` error.
    """

    label = "Kafka Avro"

    def serializer(self, schema: SchemaSource, what: str) -> Serializer:
        """An Avro serializer for `schema`, registering it on first use."""
        text = load_schema(schema, what)
        client, conf = self.schema_registry_client, self.serializer_conf
        return self.registered(
            AvroSerializer, what, client, text, None, conf, rejects=(SchemaParseException,)
        )

    def create(
        self,
        topic: str,
        key_function: Callable[[Any, Transition], Any],
        key_schema: SchemaSource,
        value_function: Callable[[int, Any, Transition], Any],
        value_schema: SchemaSource,
        *,
        record_timestamp: Literal["event", "send"] | None = None,
    ) -> KafkaSink:
        """A sink writing Avro keys and values to `topic`.

        Args:
            topic: the topic; schemas are registered as ``<topic>-key`` / ``<topic>-value``.
            key_function: ``(subject, transition) -> dict`` matching `key_schema`.
            key_schema: Avro schema of the key (JSON text, dict or file path).
            value_function: ``(timestamp, subject, transition) -> dict`` matching
                `value_schema`.
            value_schema: Avro schema of the value (JSON text, dict or file path).
            record_timestamp: ``"event"`` or ``"send"`` for this sink; by default the
                factory's.

        Raises:
            SinkError: a schema is invalid or cannot be read.
        """
        key_serializer = self.serializer(key_schema, f"topic {topic!r} key schema")
        value_serializer = self.serializer(value_schema, f"topic {topic!r} value schema")
        return self.sink(
            topic,
            (key_function, value_function),
            (key_serializer, value_serializer),
            record_timestamp,
        )
