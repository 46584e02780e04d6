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

import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import SerializationContext, SerializationError, Serializer
from fastavro.schema import SchemaParseException, parse_schema

from dogesim.errors import SinkConfigError
from dogesim.sinks.kafka import (
    CONNECT_TIMEOUT,
    KafkaSink,
    KafkaSinkFactory,
    _conf_and_buffer,
)

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = ["KafkaAvroSinkFactory", "load_schema"]

SchemaSource = str | os.PathLike[str] | Mapping[str, Any]


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
    source = "schema text"
    if isinstance(schema, Mapping):
        text = json.dumps(schema)
    elif isinstance(schema, os.PathLike) or (
        isinstance(schema, str) and "\n" not in schema and os.path.isfile(schema)
    ):
        source = f"file {os.fspath(schema)!r}"
        try:
            with open(schema, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise SinkConfigError(f"{what}: cannot read {source}: {exc}") from exc
    elif isinstance(schema, str):
        text = schema
    else:
        raise SinkConfigError(
            f"{what}: expected Avro schema JSON text, a dict or a file path, "
            f"got {type(schema).__name__} {schema!r}"
        )
    shown = text.strip()[:120]
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        hint = ""
        if isinstance(schema, str) and not text.lstrip().startswith(("{", "[", '"')):
            hint = " (nor the path of an existing file)"
        raise SinkConfigError(
            f"{what}: {source} is not JSON{hint}: {exc}; starts {shown!r}"
        ) from exc
    try:
        parse_schema(parsed, _write_hint=False)
    except (SchemaParseException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SinkConfigError(
            f"{what}: {source} is not a valid Avro schema: {type(exc).__name__}: {exc}; "
            f"starts {shown!r}"
        ) from exc
    return text


class _RegistrySerializer(Serializer):
    """An `AvroSerializer` whose registry failures look like serialization failures."""

    name = "AvroSerializer"

    def __init__(self, serializer: AvroSerializer) -> None:
        self.serializer = serializer

    def __call__(self, obj: Any, ctx: SerializationContext | None = None) -> bytes | None:
        try:
            return self.serializer(obj, ctx)
        except SchemaRegistryError as exc:
            raise SerializationError(f"Schema Registry: {exc}") from exc


class KafkaAvroSinkFactory:
    """Creates Kafka sinks that write Avro, with schemas registered in a Schema Registry.

    Accepts doge-datagen 1.0.4's ``KafkaAvroSinkFactory(bootstrap_servers,
    schema_registry_url, client_id, buffer_size)`` (an integer in ``conf``'s place is the
    buffer size) as well as the later ``(..., client_id, conf, buffer_size)``.

    Args:
        bootstrap_servers, client_id, conf, buffer_size: as for `KafkaSinkFactory`.
        schema_registry_url: the registry, e.g. ``http://localhost:8081``; ``mock://name``
            gives confluent-kafka's in-process registry.
        schema_registry_client: an existing `SchemaRegistryClient` to use instead (for example
            ``SchemaRegistryClient.new_client({'url': 'mock://x'})`` shared with consumers;
            each mock client has its own store).
        schema_registry_conf: more registry client settings (``basic.auth.user.info``, ...).
        serializer_conf: `AvroSerializer` settings, e.g. ``{'validate.strict': True}`` to
            reject values with fields the schema does not have.
        flush_timeout, connect_timeout, record_timestamp, config_timeout: as for
            `KafkaSinkFactory`.

    Raises:
        SinkError: neither or both of a registry URL and client, a registry setting the client
            rejects, or any `KafkaSinkFactory` error.
    """

    def __init__(
        self,
        bootstrap_servers: str | Iterable[str] | None = None,
        schema_registry_url: str | None = None,
        client_id: str | None = None,
        conf: Mapping[str, Any] | int | None = None,
        buffer_size: int | None = None,
        *,
        schema_registry_client: SchemaRegistryClient | None = None,
        schema_registry_conf: Mapping[str, Any] | None = None,
        serializer_conf: Mapping[str, Any] | None = None,
        flush_timeout: float | None = None,
        connect_timeout: float | None = 30.0,
        record_timestamp: Literal["event", "send"] = "event",
        config_timeout: float | Literal["connect_timeout"] | None = CONNECT_TIMEOUT,
    ) -> None:
        conf, buffer_size = _conf_and_buffer(conf, buffer_size, "Kafka Avro")
        if schema_registry_client is not None:
            if schema_registry_url is not None or schema_registry_conf:
                raise SinkConfigError(
                    "Kafka Avro: give either schema_registry_client or "
                    "schema_registry_url/schema_registry_conf, not both"
                )
            self.schema_registry_client = schema_registry_client
        else:
            registry_conf = dict(schema_registry_conf or {})
            if schema_registry_url is not None:
                registry_conf["url"] = schema_registry_url
            if not registry_conf.get("url"):
                raise SinkConfigError(
                    "Kafka Avro: no Schema Registry; give schema_registry_url "
                    "(e.g. 'http://localhost:8081' or 'mock://test') or schema_registry_client"
                )
            try:
                self.schema_registry_client = SchemaRegistryClient.new_client(registry_conf)
            except (ValueError, TypeError) as exc:
                raise SinkConfigError(
                    f"Kafka Avro: Schema Registry settings rejected: {exc} "
                    f"(url {registry_conf.get('url')!r})"
                ) from exc
        self.serializer_conf = dict(serializer_conf) if serializer_conf is not None else None
        self.factory = KafkaSinkFactory(
            bootstrap_servers,
            client_id,
            conf,
            buffer_size,
            flush_timeout=flush_timeout,
            connect_timeout=connect_timeout,
            record_timestamp=record_timestamp,
            config_timeout=config_timeout,
        )

    def serializer(self, schema: SchemaSource, what: str) -> Serializer:
        """An Avro serializer for `schema`, registering it on first use."""
        text = load_schema(schema, what)
        try:
            serializer = AvroSerializer(
                self.schema_registry_client, text, conf=self.serializer_conf
            )
        except (ValueError, TypeError, KeyError, SchemaParseException) as exc:
            raise SinkConfigError(f"{what}: AvroSerializer rejected it: {exc}") from exc
        return _RegistrySerializer(serializer)

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
        return self.factory.create(
            topic,
            key_function,
            value_function,
            key_serializer,
            value_serializer,
            record_timestamp=record_timestamp,
        )
