"""One table of sink types, read by Python code, model files and the CLI.

- `Setting`: one setting a sink type accepts: its kind (how it is read and checked), whether
  it is required, whether it is a secret.
- `SinkType`: a sink type: its model-file ``type`` name, settings schema, builder (named as
  ``"module:function"``, imported on use), the extra it needs and a one-line summary.
- `BuildContext`: what a builder is told besides the settings (the sink's name, where it was
  configured, whether the run appends to earlier output).
- `BUILTIN_TYPES`: the built-in types; `ENTRY_POINT_GROUP`: ``dogesim.sinks``, where third
  parties register theirs.
- `sink_types`, `sink_type`, `plain_types`, `register`, `build_sink`: look types up, add one,
  build a sink from settings in Python.
- `masked_settings`: the settings with secrets hidden, for messages and reprs.

A third-party package registers a type with an entry point whose name is the type name and
whose object is a `SinkType` (or a function of no arguments returning one)::

    [options.entry_points]
    dogesim.sinks =
        fancy = fancy_sink.plugin:FANCY

Entry points are listed when a type is first looked up and imported only when their type is
asked for. This module imports only the standard library, so ``import dogesim`` stays light.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from dogesim import redact
from dogesim.errors import SinkConfigError

__all__ = [
    "BUILTIN_TYPES",
    "ENTRY_POINT_GROUP",
    "SETTING_KINDS",
    "BuildContext",
    "Setting",
    "SinkType",
    "build_sink",
    "masked_settings",
    "plain_types",
    "register",
    "sink_type",
    "sink_types",
]

ENTRY_POINT_GROUP = "dogesim.sinks"


def _is_servers(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    )


def _is_conf(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in value.items()
    )


#: Setting kinds: what each accepts in Python (model files parse text into these first).
SETTING_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "string": ("a string", lambda v: isinstance(v, str)),
    "path": ("a path", lambda v: isinstance(v, (str, os.PathLike))),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "positive_int": (
        "an integer >= 1",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    ),
    "callable": ("a function", callable),
    "string_list": (
        "a list of strings",
        lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v),
    ),
    "servers": ("host:port or a list of them", _is_servers),
    "conf": ("a mapping of setting to string, number or boolean", _is_conf),
    "avro_schema": ("an Avro schema (JSON text)", lambda v: isinstance(v, str)),
    "json_schema": ("a JSON Schema (JSON text)", lambda v: isinstance(v, str)),
    "template": ("a str.format template", lambda v: isinstance(v, str)),
    "record_timestamp": (
        "'event' (the record timestamp is the event's) or 'send' (the send time)",
        lambda v: v in ("event", "send"),
    ),
}


@dataclass(frozen=True)
class Setting:
    """One setting of a sink type.

    Attributes:
        kind: one of `SETTING_KINDS` (how a model file reads it, what Python must pass).
        required: the sink cannot be built without it.
        secret: its value is hidden in messages and reprs (a URL shows with ``***`` for the
            password; a ``conf`` mapping hides the values of password/secret/token keys).
    """

    kind: str
    required: bool = False
    secret: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SETTING_KINDS:
            raise ValueError(f"Setting kind {self.kind!r} is not one of {', '.join(SETTING_KINDS)}")


@dataclass(frozen=True)
class BuildContext:
    """What a builder gets besides the settings.

    Attributes:
        name: the sink's name (its key in a model file's ``sinks:``, or the type name).
        where: where it was configured, for messages (``model.yaml:12: sinks.out``).
        append: the run continues earlier output (a resume): file sinks append.
    """

    name: str
    where: str
    append: bool = False


@dataclass(frozen=True)
class SinkType:
    """A sink type: its name, settings schema, builder and the extra it needs.

    Attributes:
        name: the model-file ``type``.
        builder: ``"module:function"``; the function takes ``(settings, context)`` and
            returns a new sink. Imported when a sink of this type is built.
        settings: the settings it accepts, by name.
        extra: the ``dogesim[...]`` extra that installs what it needs, if any.
        needs: the top-level module that extra provides (checked before building).
        summary: one line for listings.
    """

    name: str
    builder: str
    settings: Mapping[str, Setting] = field(default_factory=dict)
    extra: str | None = None
    needs: str | None = None
    summary: str = ""

    @property
    def required(self) -> tuple[str, ...]:
        """The names of the required settings, in schema order."""
        return tuple(key for key, setting in self.settings.items() if setting.required)

    def missing_dependency(self) -> str | None:
        """What to install when the module this type needs is missing, else None."""
        if self.needs is None or importlib.util.find_spec(self.needs) is not None:
            return None
        return (
            f"sink type {self.name!r} needs the Python package {self.needs}, which is not "
            f"installed: pip install 'dogesim[{self.extra}]'"
        )

    def check(self, settings: Mapping[str, Any], where: str) -> None:
        """Check `settings` against the schema.

        Raises:
            SinkConfigError: unknown keys (all listed), missing required keys (None counts
                as missing), or values of the wrong kind.
        """
        allowed = ", ".join(self.settings) or "none"
        unknown = [key for key in settings if key not in self.settings]
        if unknown:
            raise SinkConfigError(
                f"{where}: unknown setting(s) {', '.join(map(repr, unknown))} for sink type "
                f"{self.name!r}; allowed: {allowed}"
            )
        missing = [key for key in self.required if settings.get(key) is None]
        if missing:
            raise SinkConfigError(
                f"{where}: sink type {self.name!r} needs {', '.join(map(repr, missing))}; "
                f"allowed settings: {allowed}"
            )
        for key, value in settings.items():
            if value is None:
                continue
            what, accepts = SETTING_KINDS[self.settings[key].kind]
            if not accepts(value):
                shown = "(hidden)" if self.settings[key].secret else repr(value)
                raise SinkConfigError(
                    f"{where}: setting {key!r} of sink type {self.name!r} takes {what}, "
                    f"got {type(value).__name__} {shown}"
                )

    def build(self, settings: Mapping[str, Any], context: BuildContext) -> Any:
        """A new sink of this type from checked `settings` (its builder imported now).

        Raises:
            SinkConfigError: the module the type needs is missing (naming the extra), or the
                builder cannot be imported.
        """
        hint = self.missing_dependency()
        if hint is not None:
            raise SinkConfigError(f"{context.where}: {hint}")
        module, _, attr = self.builder.partition(":")
        try:
            builder = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            extra = f"; pip install 'dogesim[{self.extra}]'" if self.extra else ""
            raise SinkConfigError(
                f"{context.where}: the {self.name!r} sink cannot be loaded from "
                f"{self.builder} ({exc}){extra}"
            ) from exc
        clean = {key: value for key, value in settings.items() if value is not None}
        return builder(clean, context)


def _type(
    name: str,
    summary: str,
    settings: Mapping[str, Setting] | None = None,
    *,
    extra: str | None = None,
    needs: str | None = None,
    builder: str | None = None,
) -> SinkType:
    return SinkType(
        name,
        builder or f"dogesim.sinks.builders:build_{name}",
        dict(settings or {}),
        extra,
        needs,
        summary,
    )


_REQUIRED_STRING = Setting("string", required=True)
_CALLABLE = Setting("callable")
_PRINTING = {"template": Setting("template"), "format": _CALLABLE}
_DB = {
    "url": Setting("string", required=True, secret=True),
    "table": _REQUIRED_STRING,
    "mapper": _CALLABLE,
    "batch_size": Setting("positive_int"),
    "create_table": Setting("bool"),
    "schema": Setting("string"),
}
_KAFKA = {
    "bootstrap_servers": Setting("servers", required=True),
    "client_id": Setting("string"),
    "conf": Setting("conf", secret=True),
    "topic": _REQUIRED_STRING,
    "record_timestamp": Setting("record_timestamp"),
}
_FILE = {"path": Setting("path", required=True), "mapper": _CALLABLE}


def _schema_type(name: str, summary: str, schema: str, *, extra: str, needs: str) -> SinkType:
    """A Kafka type whose values have a registered schema of setting kind `schema`; built
    by ``dogesim.sinks.<name>:build_<name>``."""
    settings = {
        **_REGISTRY,
        "value_schema": Setting(schema, required=True),
        "key_schema": Setting(schema),
    }
    builder = f"dogesim.sinks.{name}:build_{name}"
    return _type(name, summary, settings, extra=extra, needs=needs, builder=builder)


_REGISTRY = {
    **_KAFKA,
    "schema_registry_url": Setting("string", required=True, secret=True),
    "key": _CALLABLE,
    "value": Setting("callable", required=True),
}

#: The built-in sink types, by model-file ``type`` name.
BUILTIN_TYPES: dict[str, SinkType] = {
    t.name: t
    for t in (
        _type(
            "jsonl",
            "one JSON object per line, to a file (.jsonl.gz / .jsonl.zst: compressed)",
            {**_FILE, "append": Setting("bool")},
        ),
        _type(
            "csv",
            "one CSV row per event, after a header (.csv.gz / .csv.zst: compressed)",
            {**_FILE, "fieldnames": Setting("string_list")},
        ),
        _type("printing", "prints each event (a template or format function)", _PRINTING),
        _type(
            "stdout",
            "prints each event; JSON lines without a template",
            _PRINTING,
            builder="dogesim.sinks.builders:build_printing",
        ),
        _type("memory", "keeps events in a Python list", {"mapper": _CALLABLE}),
        _type("counting", "counts events and keeps nothing"),
        _type(
            "kafka",
            "Kafka records (confluent-kafka)",
            {**_KAFKA, "key": _CALLABLE, "value": _CALLABLE},
            extra="kafka",
            needs="confluent_kafka",
        ),
        _type(
            "kafka_avro",
            "Kafka records with Avro keys and values and a Schema Registry",
            {
                **_KAFKA,
                "schema_registry_url": Setting("string", required=True, secret=True),
                "key": Setting("callable", required=True),
                "key_schema": Setting("avro_schema", required=True),
                "value": Setting("callable", required=True),
                "value_schema": Setting("avro_schema", required=True),
            },
            extra="avro",
            needs="confluent_kafka",
        ),
        _schema_type(
            "kafka_jsonschema",
            "Kafka records with JSON values checked by a registered JSON Schema",
            "json_schema",
            extra="jsonschema",
            needs="jsonschema",
        ),
        _schema_type(
            "kafka_protobuf",
            "Kafka records with Protobuf values (a message made from a field mapping)",
            "conf",  # {field: type}, dotted names for nested messages
            extra="protobuf",
            needs="google.protobuf",
        ),
        _type(
            "parquet",
            "rows of a Parquet file, written in row groups (pyarrow)",
            {
                **_FILE,
                "append": Setting("bool"),
                "schema": Setting("conf"),
                "row_group_size": Setting("positive_int"),
                "compression": Setting("string"),
            },
            extra="parquet",
            needs="pyarrow",
            builder="dogesim.sinks.parquet:build_parquet",
        ),
        _type("db", "rows in an SQL table (SQLAlchemy)", _DB, extra="db", needs="sqlalchemy"),
        _type(
            "state_table",
            "one row per subject, inserted, updated on each move, deleted on churn",
            {
                **{k: v for k, v in _DB.items() if k != "mapper"},
                "initial_state": Setting("string"),
                "final_states": Setting("string_list"),
                "key": Setting("string"),
                "key_column": Setting("string"),
                "columns": Setting("string_list"),
            },
            extra="db",
            needs="sqlalchemy",
            builder="dogesim.sinks.state_table:build_state_table",
        ),
        _type(
            "sql",
            "the same as db",
            _DB,
            extra="db",
            needs="sqlalchemy",
            builder="dogesim.sinks.builders:build_db",
        ),
    )
}

_registered: dict[str, SinkType] = {}
_plugins: dict[str, EntryPoint] | None = None
_loaded: dict[str, SinkType] = {}


def _plugin_entry_points() -> dict[str, EntryPoint]:
    """The ``dogesim.sinks`` entry points by name (listed once; nothing imported)."""
    global _plugins
    if _plugins is None:
        _plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return _plugins


def refresh() -> None:
    """Forget the entry points seen so far (after installing a plug-in in a running process)."""
    global _plugins
    _plugins = None
    _loaded.clear()


def sink_types() -> list[str]:
    """Every sink type name: built-in, registered in Python, and from entry points."""
    names = [*BUILTIN_TYPES, *_registered]
    names += [name for name in _plugin_entry_points() if name not in names]
    return names


def plain_types() -> list[str]:
    """The sink types that need no settings (the CLI can name them alone, e.g. ``--sink``)."""
    plain = []
    for name in sink_types():
        listed = name in BUILTIN_TYPES or name in _registered
        if listed and not sink_type(name).required:
            plain.append(name)
    return plain


def register(kind: SinkType, *, replace: bool = False) -> None:
    """Add a sink type from Python (a notebook, a test); entry points need no call.

    Raises:
        SinkConfigError: the name is taken (pass ``replace=True`` to replace a registered one;
            built-in types cannot be replaced).
    """
    if kind.name in BUILTIN_TYPES or (kind.name in _registered and not replace):
        raise SinkConfigError(f"sink type {kind.name!r} already exists; choose another name")
    _registered[kind.name] = kind


def _load_plugin(name: str, ep: EntryPoint) -> SinkType:
    where = f"entry point {ep.name} = {ep.value} (group {ENTRY_POINT_GROUP})"
    try:
        obj = ep.load()
        if not isinstance(obj, SinkType) and callable(obj):
            obj = obj()
    except Exception as exc:
        raise SinkConfigError(f"sink type {name!r}: {where} cannot be loaded: {exc!r}") from exc
    if not isinstance(obj, SinkType) or obj.name != name:
        raise SinkConfigError(
            f"sink type {name!r}: {where} gives {obj!r}; it must be a SinkType named {name!r}"
        )
    return obj


def sink_type(name: str) -> SinkType:
    """The sink type `name` (an entry point is imported now, the first time).

    Raises:
        SinkConfigError: no such type (listing the known ones, with a close match), or its
            entry point cannot be loaded.
    """
    found = BUILTIN_TYPES.get(name) or _registered.get(name) or _loaded.get(name)
    if found is not None:
        return found
    ep = _plugin_entry_points().get(name)
    if ep is None:
        known = sink_types()
        hint = difflib.get_close_matches(name, known, n=1)
        maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise SinkConfigError(f"unknown sink type {name!r}{maybe}; known types: {', '.join(known)}")
    _loaded[name] = _load_plugin(name, ep)
    return _loaded[name]


def build_sink(
    kind: str, settings: Mapping[str, Any] | None = None, *, name: str | None = None
) -> Any:
    """A new sink of type `kind` from Python settings, checked against its schema.

    ``build_sink("jsonl", {"path": "out/events.jsonl"})`` is what a model file's
    ``{type: jsonl, path: out/events.jsonl}`` builds.

    Raises:
        SinkConfigError: unknown type or settings, a missing required setting, a value of
            the wrong kind, or a missing optional dependency (naming the extra).
    """
    found = sink_type(kind)
    given = dict(settings or {})
    where = f"sink {name or kind!r}"
    found.check(given, where)
    return found.build(given, BuildContext(name or kind, where))


def _mask_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: "***" if redact.is_secret_key(str(k)) else v for k, v in value.items()}
    if isinstance(value, str) and "://" in value:
        from dogesim.sinks.urls import masked_url

        return masked_url(value)
    return "***"


def masked_settings(kind: SinkType | None, settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` with secret values hidden (URL passwords, password-like ``conf`` keys)."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        setting = kind.settings.get(key) if kind is not None else None
        out[key] = _mask_value(value) if setting is not None and setting.secret else value
    return out
