"""Kafka sinks with JSON values checked against a JSON Schema registered in a Schema Registry.

- `KafkaJsonSchemaSinkFactory`: ``create(topic, key_function, value_function, value_schema,
  key_schema=None)`` makes a `KafkaSink` whose value serializer is confluent-kafka's
  `JSONSerializer` (the registry's framing: a magic byte and the schema id before the JSON).
- `build_kafka_jsonschema`: the registry's builder of the ``kafka_jsonschema`` type.
- `load_json_schema`: a JSON Schema given as text, a dict or a file path, checked with
  jsonschema and returned as JSON text.

Schemas are checked when the sink is created; a value the schema rejects fails its event with
`SinkError` naming the topic, the event, what the schema says and the value.

Importing this module imports confluent_kafka's JSON Schema support and jsonschema (the
``jsonschema`` extra).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import jsonschema
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import SerializationError, Serializer

from dogesim.errors import SinkConfigError
from dogesim.sinks.kafka_registry import (
    SchemaSource,
    ValueSchemaSinkFactory,
    build_value_schema_sink,
    read_schema_json,
)

if TYPE_CHECKING:
    from dogesim.sinks.kafka import KafkaSink
    from dogesim.sinks.registry import BuildContext

__all__ = ["KafkaJsonSchemaSinkFactory", "build_kafka_jsonschema", "load_json_schema"]


def load_json_schema(schema: SchemaSource, what: str = "schema") -> str:
    """The JSON Schema `schema` as JSON text, checked against its metaschema.

    Raises:
        SinkConfigError: the file cannot be read, the text is not JSON, or it is not a valid
            JSON Schema (the message quotes what is wrong).
    """
    text, parsed, source = read_schema_json(schema, what, "JSON Schema")
    if not isinstance(parsed, dict):
        raise SinkConfigError(
            f"{what}: {source} is not a JSON Schema: a schema is a JSON object, got "
            f"{type(parsed).__name__}"
        )
    try:
        jsonschema.validators.validator_for(parsed).check_schema(parsed)
    except jsonschema.SchemaError as exc:
        raise SinkConfigError(
            f"{what}: {source} is not a valid JSON Schema: {exc.message} (at "
            f"{'/'.join(map(str, exc.absolute_path)) or 'the top'})"
        ) from None
    return text


class KafkaJsonSchemaSinkFactory(ValueSchemaSinkFactory):
    """Creates Kafka sinks that write JSON values checked against a registered JSON Schema.

    The arguments are `dogesim.sinks.kafka_registry.SchemaRegistrySinkFactory`'s;
    ``serializer_conf`` holds `JSONSerializer` settings (``auto.register.schemas``,
    ``use.latest.version`` ...).
    """

    label = "Kafka JSON Schema"

    def serializer(self, schema: Any, what: str, name: str = "") -> Serializer:
        """A `JSONSerializer` for `schema` (text, dict or file path), registered on first use.

        Values are checked by a jsonschema validator made once for the schema (as the
        serializer's own check is, a little faster; its message also gives the path of the
        field at fault); ``serializer_conf={'validate': True}`` asks for the serializer's
        check instead. jsonschema costs some 50-150 us per value: JSON Schema values are
        the slowest of the three formats (see ``benchmarks/bench_formats.py``).
        """
        text = load_json_schema(schema, what)
        conf = dict(self.serializer_conf or {})
        check = None
        if "validate" not in conf:
            conf["validate"] = False
            check = _checker(json.loads(text))
        client = self.schema_registry_client
        return self.registered(JSONSerializer, what, text, client, None, conf, prepare=check)


def _checker(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """The value itself when `schema` accepts it; else a `SerializationError` saying what is
    wrong and where (``user.balance: 'x' is not of type 'integer'``)."""
    validator = jsonschema.validators.validator_for(schema)(schema)

    def check(value: Any) -> Any:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return value
        where = ".".join(map(str, error.absolute_path))
        raise SerializationError(f"{where}: {error.message}" if where else error.message)

    return check


def build_kafka_jsonschema(settings: Mapping[str, Any], context: BuildContext) -> KafkaSink:
    """The registry's builder for the ``kafka_jsonschema`` sink type."""
    return build_value_schema_sink(KafkaJsonSchemaSinkFactory, settings, context)
