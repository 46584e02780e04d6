"""What the Kafka sinks with registered schemas share (Avro, JSON Schema, Protobuf).

- `SchemaRegistrySinkFactory`: a `KafkaSinkFactory` plus a Schema Registry client, built
  from a URL (``mock://name``: confluent-kafka's in-process registry) or an existing client;
  each format's factory subclasses it and says how to make a serializer for a schema.
- `ValueSchemaSinkFactory`: the shape the JSON Schema and Protobuf factories share:
  ``create(topic, key_function, value_function, value_schema, key_schema=None)``, keys as
  UTF-8 text unless a key schema is given; a subclass says how a schema becomes a serializer.
- `RegistrySerializer`: a confluent-kafka serializer whose registry failures are reported as
  serialization failures (so the sink fails the event with its counts), under a short name.
- `build_value_schema_sink`: the registry builder both formats share (settings -> sink).
- `message_name`: a type name made from a topic (``bank-trx`` value: ``BankTrxValue``).
- `read_schema_text`: a schema given as text, a mapping (written as JSON) or a file path;
  `read_schema_json`: the same, parsed as JSON (Avro and JSON Schema schemas are JSON).

Importing this module imports confluent_kafka's schema registry support.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import (
    SerializationContext,
    SerializationError,
    Serializer,
    StringSerializer,
)

from dogesim.errors import SinkConfigError
from dogesim.sinks.kafka import CONNECT_TIMEOUT, KafkaSink, KafkaSinkFactory, _conf_and_buffer

if TYPE_CHECKING:
    from dogesim.model import Transition
    from dogesim.sinks.registry import BuildContext

__all__ = [
    "RegistrySerializer",
    "SchemaRegistrySinkFactory",
    "SchemaSource",
    "ValueSchemaSinkFactory",
    "build_value_schema_sink",
    "message_name",
    "read_schema_json",
    "read_schema_text",
]

#: A schema: its text, a mapping (JSON), or the path of a file holding it.
SchemaSource = str | os.PathLike[str] | Mapping[str, Any]


def read_schema_text(schema: SchemaSource, what: str, kind: str) -> tuple[str, str]:
    """The text of `schema` and where it came from (``schema text`` or ``file '...'``).

    A string naming an existing file (one line) is read as one; a mapping is written as
    JSON. `kind` names the schema language for messages (``Avro schema``).

    Raises:
        SinkConfigError: the file cannot be read, or `schema` is of another type.
    """
    if isinstance(schema, Mapping):
        return json.dumps(schema), "schema text"
    if isinstance(schema, os.PathLike) or (
        isinstance(schema, str) and "\n" not in schema and os.path.isfile(schema)
    ):
        source = f"file {os.fspath(schema)!r}"
        try:
            with open(schema, encoding="utf-8") as handle:
                return handle.read(), source
        except OSError as exc:
            raise SinkConfigError(f"{what}: cannot read {source}: {exc}") from exc
    if isinstance(schema, str):
        return schema, "schema text"
    raise SinkConfigError(
        f"{what}: expected {kind} text, a dict or a file path, "
        f"got {type(schema).__name__} {schema!r}"
    )


def read_schema_json(schema: SchemaSource, what: str, kind: str) -> tuple[str, Any, str]:
    """`read_schema_text`, parsed: the text, its JSON value and where it came from.

    Raises:
        SinkConfigError: as `read_schema_text`, or the text is not JSON (quoting its start,
            and saying when a string was neither JSON nor an existing file).
    """
    text, source = read_schema_text(schema, what, kind)
    try:
        return text, json.loads(text), source
    except ValueError as exc:
        hint = ""
        if isinstance(schema, str) and not text.lstrip().startswith(("{", "[", '"')):
            hint = " (nor the path of an existing file)"
        raise SinkConfigError(
            f"{what}: {source} is not JSON{hint}: {exc}; starts {text.strip()[:120]!r}"
        ) from exc


class RegistrySerializer(Serializer):
    """`serializer`, with Schema Registry failures raised as `SerializationError`.

    Args:
        serializer: a confluent-kafka serializer (``AvroSerializer``, ``JSONSerializer`` ...).
        name: how error messages call it.
        prepare: turns the value function's result into what `serializer` takes (the
            Protobuf sink makes a message from a mapping); None passes it as it is.
    """

    def __init__(
        self,
        serializer: Serializer,
        name: str,
        prepare: Callable[[Any], Any] | None = None,
    ) -> None:
        self.serializer = serializer
        self.name = name
        self.prepare = prepare

    def __call__(self, obj: Any, ctx: SerializationContext | None = None) -> bytes | None:
        if self.prepare is not None and obj is not None:
            obj = self.prepare(obj)
        try:
            return self.serializer(obj, ctx)
        except SchemaRegistryError as exc:
            raise SerializationError(f"Schema Registry: {exc}") from exc


class SchemaRegistrySinkFactory:
    """Creates Kafka sinks whose values (and keys) are registered in a Schema Registry.

    Args:
        bootstrap_servers, client_id, conf, buffer_size: as for `KafkaSinkFactory` (an integer
            in ``conf``'s place is the buffer size, as doge-datagen 1.0.4 took it).
        schema_registry_url: the registry, e.g. ``http://localhost:8081``; ``mock://name``
            gives confluent-kafka's in-process registry.
        schema_registry_client: an existing `SchemaRegistryClient` to use instead (for example
            ``SchemaRegistryClient.new_client({'url': 'mock://x'})`` shared with consumers;
            each mock client has its own store).
        schema_registry_conf: more registry client settings (``basic.auth.user.info``, ...).
        serializer_conf: settings for the format's serializer.
        flush_timeout, connect_timeout, record_timestamp, config_timeout: as for
            `KafkaSinkFactory`.

    Raises:
        SinkError: neither or both of a registry URL and client, a registry setting the client
            rejects, or any `KafkaSinkFactory` error.
    """

    #: How messages name the sink family (``Kafka Avro``).
    label = "Kafka with a Schema Registry"

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
        conf, buffer_size = _conf_and_buffer(conf, buffer_size, self.label)
        self.schema_registry_client = self._registry(
            schema_registry_url, schema_registry_client, schema_registry_conf
        )
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

    def _registry(
        self,
        url: str | None,
        client: SchemaRegistryClient | None,
        conf: Mapping[str, Any] | None,
    ) -> SchemaRegistryClient:
        label = self.label
        if client is not None:
            if url is not None or conf:
                raise SinkConfigError(
                    f"{label}: give either schema_registry_client or "
                    "schema_registry_url/schema_registry_conf, not both"
                )
            return client
        registry_conf = dict(conf or {})
        if url is not None:
            registry_conf["url"] = url
        if not registry_conf.get("url"):
            raise SinkConfigError(
                f"{label}: no Schema Registry; give schema_registry_url "
                "(e.g. 'http://localhost:8081' or 'mock://test') or schema_registry_client"
            )
        try:
            return SchemaRegistryClient.new_client(registry_conf)
        except (ValueError, TypeError) as exc:
            raise SinkConfigError(
                f"{label}: Schema Registry settings rejected: {exc} "
                f"(url {registry_conf.get('url')!r})"
            ) from exc

    def registered(
        self,
        kind: Callable[..., Serializer],
        what: str,
        *args: Any,
        prepare: Callable[[Any], Any] | None = None,
        rejects: tuple[type[Exception], ...] = (),
    ) -> RegistrySerializer:
        """``kind(*args)`` (a confluent-kafka serializer class and its arguments) as a
        `RegistrySerializer`; a serializer that refuses its schema is a `SinkConfigError`
        naming `what`."""
        name = getattr(kind, "__name__", "serializer")
        caught: tuple[type[Exception], ...] = (ValueError, TypeError, KeyError, *rejects)
        try:
            serializer = kind(*args)
        except caught as exc:
            raise SinkConfigError(f"{what}: {name} rejected it: {exc}") from exc
        return RegistrySerializer(serializer, name, prepare)

    def sink(
        self,
        topic: str,
        functions: tuple[Callable[..., Any], Callable[..., Any]],
        serializers: tuple[Serializer, Serializer],
        record_timestamp: Literal["event", "send"] | None,
    ) -> KafkaSink:
        """A sink on the factory's producer: (key, value) functions and serializers."""
        key_function, value_function = functions
        key_serializer, value_serializer = serializers
        return self.factory.create(
            topic,
            key_function,
            value_function,
            key_serializer,
            value_serializer,
            record_timestamp=record_timestamp,
        )


def message_name(topic: str, field: str) -> str:
    """A type name for the `field` (``Key``/``Value``) of `topic`: ``bank-trx`` gives
    ``BankTrxValue``."""
    words = [word for word in re.split(r"[^0-9A-Za-z]+", topic) if word]
    name = "".join(word[:1].upper() + word[1:] for word in words) + field
    return name if name[:1].isalpha() else f"Topic{name}"


class ValueSchemaSinkFactory(SchemaRegistrySinkFactory):
    """A `SchemaRegistrySinkFactory` whose sinks take a value schema and, optionally, a key
    schema (keys are UTF-8 text without one). Subclasses implement `serializer`."""

    def serializer(self, schema: Any, what: str, name: str) -> Serializer:
        """A serializer of the format for `schema` (`what` names it in messages; `name` is
        the type name a format that needs one gives it)."""
        raise NotImplementedError

    def create(
        self,
        topic: str,
        key_function: Callable[[Any, Transition], Any],
        value_function: Callable[[int, Any, Transition], Any],
        value_schema: Any,
        *,
        key_schema: Any = None,
        record_timestamp: Literal["event", "send"] | None = None,
    ) -> KafkaSink:
        """A sink writing to `topic`; schemas are registered as ``<topic>-key``/``-value``.

        Args:
            topic: the topic.
            key_function: ``(subject, transition) -> key``: text, or a value of `key_schema`.
            value_function: ``(timestamp, subject, transition) -> value`` of `value_schema`.
            value_schema: the value's schema, in the factory's format.
            key_schema: the key's schema; None writes keys as UTF-8 text.
            record_timestamp: ``"event"`` or ``"send"`` for this sink; by default the
                factory's.

        Raises:
            SinkConfigError: a schema is invalid or cannot be read.
        """
        key_serializer: Serializer = StringSerializer()
        if key_schema is not None:
            key_serializer = self.serializer(
                key_schema, f"topic {topic!r} key schema", message_name(topic, "Key")
            )
        value_serializer = self.serializer(
            value_schema, f"topic {topic!r} value schema", message_name(topic, "Value")
        )
        return self.sink(
            topic,
            (key_function, value_function),
            (key_serializer, value_serializer),
            record_timestamp,
        )


def build_value_schema_sink(
    factory_class: type[ValueSchemaSinkFactory],
    settings: Mapping[str, Any],
    context: BuildContext,
) -> KafkaSink:
    """A sink of `factory_class` from registry settings (``bootstrap_servers``,
    ``schema_registry_url``, ``topic``, ``value``, ``value_schema``, optionally ``key``,
    ``key_schema``, ``client_id``, ``conf``, ``record_timestamp``)."""
    from dogesim.sinks.builders import default_key

    options = {
        name: settings[name]
        for name in ("client_id", "conf", "record_timestamp")
        if settings.get(name) is not None
    }
    factory = factory_class(
        settings["bootstrap_servers"], settings["schema_registry_url"], **options
    )
    return factory.create(
        settings["topic"],
        settings.get("key", default_key),
        settings["value"],
        settings["value_schema"],
        key_schema=settings.get("key_schema"),
    )
