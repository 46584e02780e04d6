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
from dogesim.sinks import kafka as _kafka
from dogesim.sinks.kafka import KafkaSink, KafkaSinkFactory

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


class _CounterHolder:
    """A message counter (``counter``), for a `dogesim.sinks.kafka` that does not have one."""

    def __init__(self) -> None:
        self.counter = 0


# `dogesim.sinks.kafka` provides CounterHolder (the one its factories use); until it does,
# the name still resolves here so doge-datagen imports keep working.
CounterHolder: type = getattr(_kafka, "CounterHolder", _CounterHolder)
