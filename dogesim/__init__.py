"""dogesim: simulate subjects walking a probabilistic state machine, stream their events.

The core (model, engine, in-memory and printing sinks, doge-datagen compatible names) is
imported here; sinks with heavy optional dependencies (Kafka, Avro, SQL, files) and the
reporting tools, and scale-out (`ShardedRun`, `run_sharded`, from `dogesim.shards`) load on
first use, so ``import dogesim`` stays light.

doge-datagen 1.0.4's module paths are here too, with ``doge_datagen`` replaced by
``dogesim``: `dogesim.doge`, `dogesim.db_sink_factory`, `dogesim.kafka_sink_factory`,
`dogesim.kafka_avro_sink_factory`, `dogesim.printing_sink`, `dogesim.graph` (each also an
attribute of the package, loaded on first use).
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from dogesim.compat import DataOnlineGenerator, Subject, SubjectFactory
from dogesim.engine import LiveOptions, RunOptions, RunResult, Simulation
from dogesim.errors import DogesimError, ModelError, RunError, SinkConfigError, SinkError
from dogesim.model import Model, Transition
from dogesim.rates import Profile, Rate
from dogesim.sinks.base import CountingSink, DeliveryLedger, EventSink, LedgeredSink, Sink
from dogesim.sinks.memory import Event, MemorySink
from dogesim.sinks.printing import PrintingSink

try:
    __version__ = version("dogesim")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

logging.getLogger("dogesim").addHandler(logging.NullHandler())

#: Public names served lazily from modules with optional dependencies.
_LAZY = {
    "KafkaSink": "dogesim.sinks.kafka",
    "KafkaSinkFactory": "dogesim.sinks.kafka",
    "KafkaAvroSinkFactory": "dogesim.sinks.kafka_avro",
    "DbSink": "dogesim.sinks.db",
    "DbSinkFactory": "dogesim.sinks.db",
    "JsonLinesSink": "dogesim.sinks.files",
    "JsonLinesSinkFactory": "dogesim.sinks.files",
    "CsvSink": "dogesim.sinks.files",
    "CsvSinkFactory": "dogesim.sinks.files",
    "DataOnlineGeneratorGrapher": "dogesim.graph",
    "ShardedRun": "dogesim.shards",
    "run_sharded": "dogesim.shards",
    "StayKernel": "dogesim.laws",
    "ByMonth": "dogesim.varying",
    "ByAge": "dogesim.varying",
}

#: doge-datagen's module paths, served as submodules on first use.
_DOGE_MODULES = (
    "db_sink_factory",
    "doge",
    "graph",
    "kafka_avro_sink_factory",
    "kafka_sink_factory",
    "printing_sink",
)

__all__ = [
    "ByAge",
    "ByMonth",
    "CountingSink",
    "CsvSink",
    "CsvSinkFactory",
    "DataOnlineGenerator",
    "DataOnlineGeneratorGrapher",
    "DbSink",
    "DbSinkFactory",
    "DeliveryLedger",
    "DogesimError",
    "Event",
    "EventSink",
    "JsonLinesSink",
    "JsonLinesSinkFactory",
    "KafkaAvroSinkFactory",
    "KafkaSink",
    "KafkaSinkFactory",
    "LedgeredSink",
    "LiveOptions",
    "MemorySink",
    "Model",
    "ModelError",
    "PrintingSink",
    "Profile",
    "Rate",
    "RunError",
    "RunOptions",
    "RunResult",
    "ShardedRun",
    "Simulation",
    "Sink",
    "SinkConfigError",
    "SinkError",
    "StayKernel",
    "Subject",
    "SubjectFactory",
    "Transition",
    "__version__",
    "run_sharded",
]


def __getattr__(name: str) -> Any:
    if name in _DOGE_MODULES:
        return importlib.import_module(f"dogesim.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dogesim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_DOGE_MODULES))
