"""The ``sinks:`` section: `SinkSpec` per named sink, `SINK_TYPES` with the settings each
type accepts, and the default records and keys events are written with."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dogesim.errors import ModelError
from dogesim.model import Transition
from dogesim.modelfile.source import _callable_at, _describe, _Map, _Reader, _Seq, _Source

#: Sink types and the settings each accepts (besides ``type``).
SINK_TYPES: dict[str, tuple[str, ...]] = {
    "jsonl": ("path", "mapper", "append"),
    "csv": ("path", "mapper", "fieldnames"),
    "printing": ("template", "format"),
    "stdout": ("template", "format"),
    "memory": ("mapper",),
    "counting": (),
    "kafka": ("bootstrap_servers", "client_id", "conf", "topic", "key", "value"),
    "kafka_avro": (
        "bootstrap_servers",
        "schema_registry_url",
        "client_id",
        "conf",
        "topic",
        "key",
        "key_schema",
        "value",
        "value_schema",
    ),
    "db": ("url", "table", "mapper", "batch_size", "create_table", "schema"),
}
_SINK_REQUIRED: dict[str, tuple[str, ...]] = {
    "jsonl": ("path",),
    "csv": ("path",),
    "kafka": ("bootstrap_servers", "topic"),
    "kafka_avro": (
        "bootstrap_servers",
        "schema_registry_url",
        "topic",
        "key",
        "key_schema",
        "value",
        "value_schema",
    ),
    "db": ("url", "table"),
}
#: The Python package each sink type needs, and the extra that installs it.
_SINK_NEEDS: dict[str, tuple[str, str]] = {
    "kafka": ("confluent_kafka", "kafka"),
    "kafka_avro": ("confluent_kafka", "avro"),
    "db": ("sqlalchemy", "db"),
}
_TEMPLATE_FIELDS = ("timestamp", "subject", "transition", "trigger", "from_state", "to_state")


def subject_key(subject: Any) -> str | None:
    """The default Kafka key: the subject's ``id`` (or ``user_id``/``subject_id``) as text."""
    for name in ("id", "user_id", "subject_id"):
        value = getattr(subject, name, None)
        if value is not None:
            return str(value)
    return None


def _default_json_value(timestamp: int, subject: Any, transition: Transition) -> str:
    from dogesim.sinks.files import default_record

    return json.dumps(default_record(timestamp, subject, transition), separators=(",", ":"))


def _default_row(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
    """The default database row: timestamp, trigger, states and ``subject_<field>`` columns."""
    from dogesim.sinks.files import subject_fields

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


def _template_formatter(template: str) -> Callable[[int, Any, Transition], str]:
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


@dataclass
class SinkSpec:
    """One named sink of a model file: its type and validated settings.

    `build` makes a fresh sink (sinks are closed at the end of a run, so every run needs
    new ones); modules with optional dependencies are imported only then.
    """

    name: str
    type: str
    settings: dict[str, Any]
    line: int = 0
    source: str = "<model>"

    def build(self, *, append: bool = False) -> Any:
        """A new sink as configured.

        Args:
            append: open file sinks for appending (a resumed run continues the file). CSV
                files cannot be continued (a second header would be written): `ModelError`.
        """
        s = self.settings
        kind = self.type
        if kind in ("jsonl", "csv"):
            from dogesim.sinks.files import CsvSink, JsonLinesSink

            if kind == "csv" and append:
                raise ModelError(
                    f"{self.source}:{self.line}: sinks.{self.name}: a csv sink cannot be "
                    "appended to, so a resumed run cannot continue it; use a jsonl sink"
                )
            path = Path(s["path"])
            if path.parent != Path("."):
                path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "jsonl":
                return JsonLinesSink(path, s.get("mapper"), append=append or s.get("append", False))
            return CsvSink(path, s.get("mapper"), fieldnames=s.get("fieldnames"))
        if kind in ("printing", "stdout"):
            if "format" in s:
                from dogesim.sinks.printing import PrintingSink

                return PrintingSink(s["format"])
            if "template" in s:
                from dogesim.sinks.printing import PrintingSink

                return PrintingSink(_template_formatter(s["template"]))
            from dogesim.sinks.files import JsonLinesSink

            return JsonLinesSink("-")
        if kind == "memory":
            from dogesim.sinks.memory import MemorySink

            return MemorySink(s.get("mapper"), name=f"memory:{self.name}")
        if kind == "counting":
            from dogesim.sinks.base import CountingSink

            return CountingSink(f"counting:{self.name}")
        if kind == "kafka":
            kafka = self._factory("kafka", "KafkaSinkFactory")(
                s["bootstrap_servers"], s.get("client_id"), s.get("conf")
            )
            return kafka.create(
                s["topic"], s.get("key", _default_key), s.get("value", _default_json_value)
            )
        if kind == "kafka_avro":
            avro = self._factory("kafka_avro", "KafkaAvroSinkFactory")(
                s["bootstrap_servers"],
                s["schema_registry_url"],
                s.get("client_id"),
                s.get("conf"),
            )
            return avro.create(s["topic"], s["key"], s["key_schema"], s["value"], s["value_schema"])
        if kind == "db":
            db = self._factory("db", "DbSinkFactory")(s["url"])
            return db.create(
                s["table"],
                s.get("mapper", _default_row),
                s.get("batch_size", 1000),
                create_table=s.get("create_table", False),
                schema=s.get("schema"),
            )
        raise ModelError(f"{self.source}:{self.line}: sinks.{self.name}: unknown type {kind!r}")

    def _factory(self, module: str, name: str) -> Any:
        """The sink factory class `name` from ``dogesim.sinks.<module>``, imported now.

        Raises:
            ModelError: the module or its optional dependency is not installed.
        """
        try:
            return getattr(importlib.import_module(f"dogesim.sinks.{module}"), name)
        except ImportError as exc:
            extra = _SINK_NEEDS[self.type][1]
            raise ModelError(
                f"{self.source}:{self.line}: sinks.{self.name}: the {self.type!r} sink cannot be "
                f"loaded ({exc}); pip install 'dogesim[{extra}]'"
            ) from exc

    def describe(self) -> str:
        """A short human description, e.g. ``jsonl out/banking.jsonl``."""
        target = (
            self.settings.get("path")
            or self.settings.get("topic")
            or self.settings.get("table")
            or ""
        )
        return f"{self.type} {target}".strip()


def _default_key(subject: Any, transition: Transition) -> str | None:
    return subject_key(subject)


def _read_sink(src: _Source, reader: _Reader, name: str) -> SinkSpec:
    value = reader.node[name]
    line = reader.line(name)
    where = reader.where(name)
    if value is None:
        value = _Map()
        value.line = line
        value.key_lines = {}
    if not isinstance(value, _Map):
        raise src.error(line, where, f"{_describe(value)}: give the sink's settings as a mapping")
    sink = _Reader(src, value, where)
    if "type" in value:
        kind = sink.string("type")
    elif name in SINK_TYPES:
        kind = name
    else:
        raise src.error(
            line,
            where,
            f"missing 'type'; give one of {', '.join(SINK_TYPES)} (or name the "
            "sink after its type)",
        )
    if kind not in SINK_TYPES:
        hint = difflib.get_close_matches(kind, SINK_TYPES, n=1)
        maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise sink.error(
            "type", f"unknown sink type {kind!r}{maybe}; known types: {', '.join(SINK_TYPES)}"
        )
    sink.check_keys(("type", *SINK_TYPES[kind]), _SINK_REQUIRED.get(kind, ()))
    needs = _SINK_NEEDS.get(kind)
    if needs is not None and importlib.util.find_spec(needs[0]) is None:
        raise src.error(
            line,
            where,
            f"sink type {kind!r} needs the Python package {needs[0]}, which is not "
            f"installed: pip install 'dogesim[{needs[1]}]'",
        )
    settings: dict[str, Any] = {}
    for key in value:
        if key == "type" or value[key] is None:
            continue
        if key in ("mapper", "format", "key", "value"):
            settings[key] = _callable_at(sink, key)
        elif key in ("append", "create_table"):
            settings[key] = sink.boolean(key, False)
        elif key == "batch_size":
            settings[key] = sink.integer(key, minimum=1)
        elif key == "fieldnames":
            settings[key] = sink.string_list(key)
        elif key == "bootstrap_servers":
            servers = value[key]
            settings[key] = sink.string_list(key) if isinstance(servers, _Seq) else sink.string(key)
        elif key == "conf":
            conf = sink.mapping(key)
            plain: dict[str, Any] = {}
            for ckey, cvalue in conf.node.items():
                if not isinstance(cvalue, (str, int, float, bool)):
                    raise conf.error(
                        str(ckey),
                        f"{_describe(cvalue)}: librdkafka settings take a string, "
                        "number or boolean",
                    )
                plain[str(ckey)] = str(cvalue) if isinstance(cvalue, str) else cvalue
            settings[key] = plain
        elif key in ("key_schema", "value_schema"):
            text = sink.string(key)
            if not text.lstrip().startswith(("{", "[", '"')):
                schema_path = Path(text)
                if not schema_path.is_absolute():
                    schema_path = src.directory / schema_path
                if not schema_path.is_file():
                    raise sink.error(
                        key,
                        f"{text!r} is neither an Avro schema (JSON) nor a file; looked for "
                        f"{schema_path}",
                    )
                text = schema_path.read_text(encoding="utf-8")
            settings[key] = text
        elif key == "template":
            template = sink.string(key)
            try:
                parsed = list(string.Formatter().parse(template))
            except ValueError as exc:
                raise sink.error(key, f"{template!r} is not a valid format string: {exc}") from None
            for _, field_name, _, _ in parsed:
                if field_name is None:
                    continue
                root = re.split(r"[.\[]", field_name, maxsplit=1)[0]
                if root not in _TEMPLATE_FIELDS:
                    raise sink.error(
                        key,
                        f"{template!r} uses {{{field_name}}}; fields are "
                        f"{', '.join(_TEMPLATE_FIELDS)} (e.g. {{subject.id}})",
                    )
            settings[key] = template
        else:
            settings[key] = sink.string(key)
    if kind in ("printing", "stdout") and "template" in settings and "format" in settings:
        raise sink.error("format", "give either a template or a format function, not both")
    return SinkSpec(name, kind, settings, line, src.name)
