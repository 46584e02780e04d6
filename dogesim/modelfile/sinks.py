"""The ``sinks:`` section: `SinkSpec` per named sink, read and built through the sink registry.

- `SinkSpec`: one named sink of a model file (its type and parsed settings); `build` makes a
  new sink through `dogesim.sinks.registry`. Its repr hides secrets (URL passwords, password-
  like ``conf`` keys).
- `SINK_TYPES`: the built-in sink types and the settings each accepts (the registry is the
  source; third-party types from the ``dogesim.sinks`` entry points are read there too).
- `subject_key`: the default Kafka key (the subject's id).
- `_read_sink`: reads one entry of ``sinks:``, each setting by the kind its schema gives it
  (a function setting written as a mapping is a payload template, ``faults:`` wraps the
  sink; `dogesim.modelfile.payloads`).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dogesim import redact
from dogesim.errors import ModelError, SinkConfigError
from dogesim.modelfile.pacing import capped, split_pacing
from dogesim.modelfile.payloads import build_faulty, is_template, split_faults, template_setting
from dogesim.modelfile.source import _callable_at, _describe, _Map, _Reader, _Seq, _Source
from dogesim.sinks.builders import TEMPLATE_FIELDS, subject_key
from dogesim.sinks.registry import (
    BUILTIN_TYPES,
    BuildContext,
    SinkType,
    masked_settings,
    sink_type,
    sink_types,
)

if TYPE_CHECKING:
    from dogesim.faults import Faults

__all__ = ["SINK_TYPES", "SinkSpec", "subject_key"]

#: The built-in sink types and the settings each accepts (besides ``type``).
SINK_TYPES: dict[str, tuple[str, ...]] = {
    name: tuple(kind.settings) for name, kind in BUILTIN_TYPES.items()
}


@dataclass
class SinkSpec:
    """One named sink of a model file: its type and validated settings.

    `build` makes a fresh sink (each run gets new ones); the module a type needs is
    imported only then.
    """

    name: str
    type: str
    settings: dict[str, Any] = field(repr=False)
    line: int = 0
    source: str = "<model>"
    #: ``max_rate``/``burst``: the sink's throughput cap (`dogesim.sinks.pacing.RateCap`).
    cap: Any = None
    #: ``faults:``: the faults injected into what the sink receives (`dogesim.faults`).
    faults: Faults | None = None

    def __repr__(self) -> str:
        shown = masked_settings(self._kind(), self.settings)
        # And through the mask: a secret may sit in any setting (``${DB_PASSWORD}``).
        return redact.mask(
            f"SinkSpec(name={self.name!r}, type={self.type!r}, settings={shown!r}, "
            f"line={self.line!r}, source={self.source!r})"
        )

    @property
    def where(self) -> str:
        """``file:line: sinks.<name>``, for messages."""
        return f"{self.source}:{self.line}: sinks.{self.name}"

    def _kind(self) -> SinkType | None:
        try:
            return sink_type(self.type)
        except SinkConfigError:
            return None

    def build(self, *, append: bool = False) -> Any:
        """A new sink as configured.

        Args:
            append: open file sinks for appending (a resumed run continues the file). CSV
                files cannot be continued (a second header would be written): `ModelError`.

        Raises:
            ModelError: the type is unknown, its optional dependency is missing (naming the
                extra), or it cannot continue earlier output.
        """
        if self.type == "csv" and append:
            raise ModelError(
                f"{self.where}: a csv sink cannot be appended to, so a resumed run cannot "
                "continue it; use a jsonl sink"
            )
        try:
            kind = sink_type(self.type)
            hint = kind.missing_dependency()
        except SinkConfigError as exc:
            raise ModelError(f"{self.where}: {exc}") from exc
        if hint is not None:
            raise ModelError(f"{self.where}: {hint}")
        context = BuildContext(self.name, self.where, append)
        if self.faults is not None:
            built = build_faulty(
                lambda settings: kind.build(settings, context),
                self.settings,
                self.faults,
                self.name,
                self.where,
            )
        else:
            built = kind.build(self.settings, context)
        return capped(built, self.cap)

    def describe(self) -> str:
        """A short human description, e.g. ``jsonl out/banking.jsonl``."""
        target = (
            self.settings.get("path")
            or self.settings.get("topic")
            or self.settings.get("table")
            or ""
        )
        return f"{self.type} {target}".strip() + (self.cap.describe() if self.cap else "")


#: Setting kinds holding a schema as JSON text or the path of a file (beside the model).
_SCHEMA_KINDS = {"avro_schema": "an Avro schema", "json_schema": "a JSON Schema"}


def _check_sink_keys(sink: _Reader, value: _Map, kind: SinkType) -> None:
    """Every key is a setting of `kind` (all unknown ones listed); required ones are set."""
    allowed = ", ".join(("type", *kind.settings))
    unknown = [key for key in value if key != "type" and key not in kind.settings]
    if unknown:
        names = ", ".join(_describe(key) for key in unknown)
        several = "s" if len(unknown) > 1 else ""
        raise sink.error(str(unknown[0]), f"unknown key{several} {names}; allowed keys: {allowed}")
    for key in kind.required:
        if key not in value:
            raise sink.error(None, f"missing required key {key!r}; allowed keys: {allowed}")
        if value[key] is None:
            raise sink.error(key, f"{key!r} is null; it is required (allowed keys: {allowed})")


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
    value, cap = split_pacing(sink, value)
    if "type" in value:
        name_of_type = sink.string("type")
    elif name in sink_types():
        name_of_type = name
    else:
        raise src.error(
            line,
            where,
            f"missing 'type'; give one of {', '.join(sink_types())} (or name the "
            "sink after its type)",
        )
    try:
        kind = sink_type(name_of_type)
    except SinkConfigError as exc:
        raise sink.error("type", str(exc)) from None
    value, faults = split_faults(sink, value)
    _check_sink_keys(sink, value, kind)
    needs = kind.missing_dependency()
    if needs is not None:
        raise src.error(line, where, needs)
    settings: dict[str, Any] = {}
    for key in value:
        if key == "type" or value[key] is None:
            continue
        setting = kind.settings[key].kind
        if setting == "callable" and is_template(value[key]):
            settings[key] = template_setting(src, sink, key, name_of_type)
        elif setting == "callable":
            settings[key] = _callable_at(sink, key)
        elif setting == "bool":
            settings[key] = sink.boolean(key, False)
        elif setting == "positive_int":
            settings[key] = sink.integer(key, minimum=1)
        elif setting == "string_list":
            settings[key] = sink.string_list(key)
        elif setting == "servers":
            servers = value[key]
            settings[key] = sink.string_list(key) if isinstance(servers, _Seq) else sink.string(key)
        elif setting == "conf":
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
        elif setting in _SCHEMA_KINDS:
            text = sink.string(key)
            if not text.lstrip().startswith(("{", "[", '"')):
                schema_path = Path(text)
                if not schema_path.is_absolute():
                    schema_path = src.directory / schema_path
                if not schema_path.is_file():
                    raise sink.error(
                        key,
                        f"{text!r} is neither {_SCHEMA_KINDS[setting]} (JSON) nor a file; "
                        f"looked for {schema_path}",
                    )
                text = schema_path.read_text(encoding="utf-8")
            settings[key] = text
        elif setting == "template":
            template = sink.string(key)
            try:
                parsed = list(string.Formatter().parse(template))
            except ValueError as exc:
                raise sink.error(key, f"{template!r} is not a valid format string: {exc}") from None
            for _, field_name, _, _ in parsed:
                if field_name is None:
                    continue
                root = re.split(r"[.\[]", field_name, maxsplit=1)[0]
                if root not in TEMPLATE_FIELDS:
                    raise sink.error(
                        key,
                        f"{template!r} uses {{{field_name}}}; fields are "
                        f"{', '.join(TEMPLATE_FIELDS)} (e.g. {{subject.id}})",
                    )
            settings[key] = template
        else:
            settings[key] = sink.string(key)
    if "template" in settings and "format" in settings:
        raise sink.error("format", "give either a template or a format function, not both")
    try:
        kind.check(settings, where)
    except SinkConfigError as exc:
        raise src.error(line, where, str(exc).removeprefix(f"{where}: ")) from None
    return SinkSpec(name, name_of_type, settings, line, src.name, cap=cap, faults=faults)
