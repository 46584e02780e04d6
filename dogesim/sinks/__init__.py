"""Event sinks: where the events of a run go.

- `base`: the `EventSink` base class, the `Sink` protocol and the `DeliveryLedger`.
- `memory`: `MemorySink`, keeps events in a list (tests, notebooks).
- `printing`: `PrintingSink`, doge-datagen's formatted printing sink.

Sinks with optional dependencies (`kafka`, `kafka_avro`, `db`, `files`) live in their own
modules and are imported only when used.
"""

from __future__ import annotations

from dogesim.sinks.base import CountingSink, DeliveryLedger, EventSink, LedgeredSink, Sink
from dogesim.sinks.memory import Event, MemorySink
from dogesim.sinks.printing import PrintingSink

__all__ = [
    "CountingSink",
    "DeliveryLedger",
    "Event",
    "EventSink",
    "LedgeredSink",
    "MemorySink",
    "PrintingSink",
    "Sink",
]
