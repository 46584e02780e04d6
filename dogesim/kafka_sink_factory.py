"""doge-datagen's ``doge_datagen.kafka_sink_factory`` module path, served by dogesim.

- `KafkaSinkFactory`, `KafkaSink`: `dogesim.sinks.kafka`'s (doge-datagen's positional
  ``KafkaSinkFactory(bootstrap_servers, client_id, buffer_size)`` and ``create(topic,
  key_function, value_function, key_serializer, value_serializer)``).
- `CounterHolder`: doge-datagen's shared message counter (``counter``).
- `K`, `V`: the key and value type variables.
- `Subject`, `Transition`, `EventSink`: the names doge-datagen's module also provides.

Importing this module imports confluent_kafka (the ``kafka`` extra).
"""

from __future__ import annotations

from typing import TypeVar

from dogesim.compat import EventSink, Subject, Transition
from dogesim.sinks.kafka import CounterHolder, KafkaSink, KafkaSinkFactory

__all__ = [
    "CounterHolder",
    "EventSink",
    "K",
    "KafkaSink",
    "KafkaSinkFactory",
    "Subject",
    "Transition",
    "V",
]

K = TypeVar("K")
V = TypeVar("V")
