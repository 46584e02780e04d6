"""doge-datagen's ``doge_datagen.kafka_avro_sink_factory`` module path, served by dogesim.

- `KafkaAvroSinkFactory`: `dogesim.sinks.kafka_avro`'s (doge-datagen's positional
  ``KafkaAvroSinkFactory(bootstrap_servers, schema_registry_url, client_id, buffer_size)``
  and ``create(topic, key_function, key_schema, value_function, value_schema)``).
- `KafkaSinkFactory`, `KafkaSink`, `Subject`, `Transition`: the names doge-datagen's module
  also provides.

Importing this module imports confluent_kafka and fastavro (the ``avro`` extra).
"""

from __future__ import annotations

from dogesim.compat import Subject, Transition
from dogesim.sinks.kafka import KafkaSink, KafkaSinkFactory
from dogesim.sinks.kafka_avro import KafkaAvroSinkFactory

__all__ = ["KafkaAvroSinkFactory", "KafkaSink", "KafkaSinkFactory", "Subject", "Transition"]
