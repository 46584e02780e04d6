"""Event sinks: where the events of a run go.

- `base`: the `EventSink` base class, the `Sink` protocol and the `DeliveryLedger`.
- `memory`: `MemorySink`, keeps events in a list (tests, notebooks).
- `printing`: `PrintingSink`, doge-datagen's formatted printing sink.
- `registry`: the table of sink types (`SinkType`, `Setting`, `build_sink`), read by model
  files and the CLI; third parties add types through the ``dogesim.sinks`` entry points.

Sinks in their own modules, imported only when used (the optional dependency each needs is
imported by that module alone; none is imported here):

- `files`: `JsonLinesSink`, `CsvSink` and their factories `JsonLinesSinkFactory`,
  `CsvSinkFactory`; ``.gz`` / ``.zst`` paths are compressed (standard library, orjson when
  the ``fast`` extra is installed, zstandard for ``.zst``: the ``zstd`` extra).
- `encoding`: `json_line_encoder`, JSON lines through orjson with the standard library's
  exact bytes.
- `compression`: gzip/zstd by file suffix, `open_text` to read any of them back.
- `kafka`: `KafkaSinkFactory`, `KafkaSink` (confluent-kafka, the ``kafka`` extra).
- `kafka_avro`: `KafkaAvroSinkFactory` (confluent-kafka's Schema Registry and fastavro, the
  ``avro`` extra).
- `db`: `DbSinkFactory`, `DbSink` (SQLAlchemy 2, the ``db`` extra; PostgreSQL through
  psycopg 3 with COPY, the ``postgres`` extra).
- `state_table`: `StateTableSink`, one SQL row per subject kept up to date (insert on
  creation, update per move, delete on churn; the ``db`` extra).
- `builders`: the builder of each built-in type and the default records and keys.
- `urls`: `masked_url`, a URL with its password hidden, for messages.
- `conformance`: the tests every sink passes (`SinkConformance`, `SinkHarness`); imports
  pytest, for plug-in authors' test suites.

The rules every ledgered sink keeps (close once, reuse reopens, mapper errors are
`SinkError` s, interrupts leave an exact ledger) are in `LedgeredSink`'s docstring.
"""

from __future__ import annotations

from dogesim.sinks.base import CountingSink, DeliveryLedger, EventSink, LedgeredSink, Sink
from dogesim.sinks.memory import Event, MemorySink
from dogesim.sinks.printing import PrintingSink
from dogesim.sinks.registry import Setting, SinkType, build_sink

__all__ = [
    "CountingSink",
    "DeliveryLedger",
    "Event",
    "EventSink",
    "LedgeredSink",
    "MemorySink",
    "PrintingSink",
    "Setting",
    "Sink",
    "SinkType",
    "build_sink",
]
