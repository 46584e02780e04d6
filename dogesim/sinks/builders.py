"""The builders of the built-in sink types, and the default records events are written with.

The registry (`dogesim.sinks.registry`) names each builder as ``"dogesim.sinks.builders:
build_<type>"``; a builder takes the validated settings and a `BuildContext` and returns a
new sink. Each imports its sink's module when called, so optional dependencies are loaded
only for the sink types a run uses.

- `build_jsonl`, `build_csv`, `build_printing`, `build_memory`, `build_counting`,
  `build_kafka`, `build_kafka_avro`, `build_db`: one per built-in type.
- `subject_key`: the default Kafka key (the subject's id).
- `default_row`: the default database row; `default_json_value`: the default Kafka value.
- `template_formatter`: a format function from a ``str.format`` template.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dogesim.errors import SinkConfigError

if TYPE_CHECKING:
    from dogesim.model import Transition
    from dogesim.sinks.registry import BuildContext

__all__ = [
    "TEMPLATE_FIELDS",
    "build_counting",
    "build_csv",
    "build_db",
    "build_jsonl",
    "build_kafka",
    "build_kafka_avro",
    "build_memory",
    "build_printing",
    "default_json_value",
    "default_key",
    "default_row",
    "subject_key",
    "template_formatter",
]

#: The names a printing template may use.
TEMPLATE_FIELDS = ("timestamp", "subject", "transition", "trigger", "from_state", "to_state")


def subject_key(subject: Any) -> str | None:
    """The default Kafka key: the subject's ``id`` (or ``user_id``/``subject_id``) as text."""
    for name in ("id", "user_id", "subject_id"):
        value = getattr(subject, name, None)
        if value is not None:
            return str(value)
    return None


def default_key(subject: Any, transition: Transition) -> str | None:
    """`subject_key` with the key function's signature."""
    return subject_key(subject)


def default_json_value(timestamp: int, subject: Any, transition: Transition) -> str:
    """The default Kafka value: `dogesim.sinks.files.default_record` as compact JSON."""
    from dogesim.sinks.records import default_record

    return json.dumps(default_record(timestamp, subject, transition), separators=(",", ":"))


def default_row(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
    """The default database row: timestamp, trigger, states and ``subject_<field>`` columns."""
    from dogesim.sinks.records import subject_fields

    row: dict[str, Any] = {
        "timestamp": timestamp,
        "trigger": transition.trigger,
        "from_state": transition.from_state,
        "to_state": transition.to_state,
    }
    fields = subject_fields(subject)
    if isinstance(fields, Mapping):
        for name, value in fields.items():
            row[f"subject_{name}"] = value
    else:
        row["subject"] = fields
    return row


def template_formatter(template: str) -> Callable[[int, Any, Transition], str]:
    """A format function printing `template` with the `TEMPLATE_FIELDS` of each event."""

    def format_event(timestamp: int, subject: Any, transition: Transition) -> str:
        return template.format(
            timestamp=timestamp,
            subject=subject,
            transition=transition,
            trigger=transition.trigger,
            from_state=transition.from_state,
            to_state=transition.to_state,
        )

    return format_event


def _file_path(settings: Mapping[str, Any]) -> Path:
    """The sink's file, its directory created when missing."""
    path = Path(settings["path"])
    if path.parent != Path("."):
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


def build_jsonl(settings: Mapping[str, Any], context: BuildContext) -> Any:
    """A `JsonLinesSink`; appends when the settings or the run (a resume) ask for it."""
    from dogesim.sinks.files import JsonLinesSink

    append = context.append or bool(settings.get("append", False))
    return JsonLinesSink(_file_path(settings), settings.get("mapper"), append=append)


def build_csv(settings: Mapping[str, Any], context: BuildContext) -> Any:
    """A `CsvSink`. A CSV file cannot be continued by a resumed run (a second header)."""
    from dogesim.sinks.files import CsvSink

    if context.append:
        raise SinkConfigError(
            f"{context.where}: a csv sink cannot be appended to, so a resumed run cannot "
            "continue it; use a jsonl sink"
        )
    return CsvSink(
        _file_path(settings), settings.get("mapper"), fieldnames=settings.get("fieldnames")
    )


def build_printing(settings: Mapping[str, Any], context: BuildContext) -> Any:
    """A `PrintingSink` (a format function or template), else JSON lines on stdout."""
    if "format" in settings or "template" in settings:
        from dogesim.sinks.printing import PrintingSink

        if "format" in settings and "template" in settings:
            raise SinkConfigError(
                f"{context.where}: give either a template or a format function, not both"
            )
        fmt = settings.get("format") or template_formatter(settings["template"])
        return PrintingSink(fmt)
    from dogesim.sinks.files import JsonLinesSink

    return JsonLinesSink("-")


def build_memory(settings: Mapping[str, Any], context: BuildContext) -> Any:
    """A `MemorySink` named ``memory:<name>``."""
    from dogesim.sinks.memory import MemorySink

    return MemorySink(settings.get("mapper"), name=f"memory:{context.name}")


def build_counting(settings: Mapping[str, Any], context: BuildContext) -> Any:
    """A `CountingSink` named ``counting:<name>``."""
    from dogesim.sinks.base import CountingSink

    return CountingSink(f"counting:{context.name}")


def build_kafka(settings: Mapping[str, Any], context: BuildContext) -> Any:
    """A `KafkaSink` from a new `KafkaSinkFactory`."""
    from dogesim.sinks.kafka import KafkaSinkFactory

    factory = KafkaSinkFactory(
        settings["bootstrap_servers"],
        client_id=settings.get("client_id"),
        conf=settings.get("conf"),
        record_timestamp=settings.get("record_timestamp", "event"),
    )
    return factory.create(
        settings["topic"],
        settings.get("key", default_key),
        settings.get("value", default_json_value),
    )


def build_kafka_avro(settings: Mapping[str, Any], context: BuildContext) -> Any:
    """A Kafka sink with Avro keys and values, from a new `KafkaAvroSinkFactory`."""
    from dogesim.sinks.kafka_avro import KafkaAvroSinkFactory

    factory = KafkaAvroSinkFactory(
        settings["bootstrap_servers"],
        settings["schema_registry_url"],
        client_id=settings.get("client_id"),
        conf=settings.get("conf"),
        record_timestamp=settings.get("record_timestamp", "event"),
    )
    return factory.create(
        settings["topic"],
        settings["key"],
        settings["key_schema"],
        settings["value"],
        settings["value_schema"],
    )


def build_db(settings: Mapping[str, Any], context: BuildContext) -> Any:
    """A `DbSink` from a new `DbSinkFactory`."""
    from dogesim.sinks.db import DbSinkFactory

    return DbSinkFactory(settings["url"]).create(
        settings["table"],
        settings.get("mapper", default_row),
        settings.get("batch_size", 1000),
        create_table=settings.get("create_table", False),
        schema=settings.get("schema"),
    )
