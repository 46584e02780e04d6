"""The fields of a payload template: each directive read, checked and turned into code.

- `DIRECTIVES`: the directive keys and the options each accepts.
- `Unit`: what the compiler collects while reading a template: closure values (constants,
  helpers, Faker providers, relations), leaf sources for error reports, and the state a
  run needs (counters).
- `read_field`: one template value -> the Python source that computes it in the mapper.
- `TIME_FORMATS`: the formats of ``{time: ...}``.

A template value is one of:

- a plain value (string, number, boolean, null): that constant;
- a list: a list of templates;
- a mapping with one directive key (below): that directive; any other key of it must be one
  of the directive's options (``cast`` works on every directive);
- any other mapping: a nested object of templates. To nest an object with a field named
  like a directive, write it under ``{object: {...}}``.

Directives: ``subject: a.b`` (attribute path, with ``default``), ``transition: trigger |
from_state | to_state``, ``time: epoch_ms | epoch_s | iso | date | format`` (with ``format``
for strftime), ``seq: event | subject | run`` (with ``start``), ``const: value``,
``expr: "..."``, ``faker: provider`` (with ``args`` and ``locale``), ``ref: population``
(with ``law``, ``s``, ``on_empty``; also written ``pick: population`` with ``by: law``),
``object: {...}``.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import keyword
import math
from collections.abc import Callable, Mapping
from typing import Any

from dogesim.errors import ModelError, shown
from dogesim.templates.expressions import (
    FUNCTIONS,
    NAMES_EVENT,
    NAMES_KEY,
    NAMES_SUBJECT,
    compile_expression,
)

__all__ = ["DIRECTIVES", "TIME_FORMATS", "Unit", "read_field"]

#: Directive key -> the option keys it accepts (besides ``cast``).
DIRECTIVES: dict[str, tuple[str, ...]] = {
    "subject": ("default",),
    "transition": (),
    "time": ("format",),
    "seq": ("start",),
    "const": (),
    "expr": (),
    "faker": ("args", "locale"),
    "ref": ("law", "s", "on_empty"),
    "pick": ("by", "law", "s", "on_empty"),
    "object": (),
}
#: The formats ``{time: ...}`` accepts.
TIME_FORMATS = ("epoch_ms", "epoch_s", "iso", "date", "format")
_CASTS = ("str", "int", "float", "bool")
_TRANSITION_FIELDS = ("trigger", "from_state", "to_state")
_SEQ_KINDS = ("event", "subject", "run")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_MAX_DEPTH = 32


def _utc(timestamp: int) -> _dt.datetime:
    """The UTC time of an epoch-ms timestamp, exact for integers."""
    return _EPOCH + _dt.timedelta(milliseconds=timestamp)


def _last_value(convert: Callable[[int], str]) -> Callable[[int], str]:
    """`convert` remembering its last result: events of one tick share their timestamp."""
    last: list[Any] = [None, ""]

    def cached(timestamp: int) -> str:
        if timestamp != last[0]:
            last[0] = timestamp
            last[1] = convert(timestamp)
        return last[1]

    return cached


def _iso(timestamp: int) -> str:
    moment = _utc(timestamp)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _date(timestamp: int) -> str:
    return _utc(timestamp).date().isoformat()


def _dig(value: Any, names: tuple[str, ...]) -> Any:
    """Follow `names` from `value`: attributes, or keys of mappings."""
    for name in names:
        value = value[name] if isinstance(value, Mapping) else getattr(value, name)
    return value


def _dig_default(value: Any, names: tuple[str, ...], default: Any) -> Any:
    """`_dig`, or `default` when an attribute or key is missing (or None on the way)."""
    for name in names:
        if value is None:
            return default
        if isinstance(value, Mapping):
            if name not in value:
                return default
            value = value[name]
        else:
            value = getattr(value, name, default)
    return value


class _SubjectSequence:
    """Numbers each subject's events 0, 1, 2 ... (plus `start`), keyed by object identity."""

    def __init__(self, start: int) -> None:
        self.start = start
        # id -> [subject, next number]; the subject is kept so its id is never reused.
        self.counts: dict[int, list[Any]] = {}

    def __call__(self, subject: Any) -> int:
        entry = self.counts.get(id(subject))
        if entry is None:
            entry = self.counts[id(subject)] = [subject, self.start]
        number = entry[1]
        entry[1] = number + 1
        return number


class Unit:
    """The state of compiling one template, then of building one run's mapper from it.

    Args:
        path: the template's path (``sinks.orders.value``): field paths start with it, and
            it is mixed into the seeds of the template's Faker and relations.
        kind: ``"event"`` (a sink's mapper), ``"key"`` (a Kafka key function of
            ``(subject, transition)``, no time) or ``"subject"`` (a subject factory).
        locale: the default Faker locale.
        pools: the populations ``ref`` may pick from, by name.
    """

    def __init__(
        self, path: str, kind: str, locale: Any = None, pools: Mapping[str, Any] | None = None
    ) -> None:
        self.path = path
        self.kind = kind
        self.locale = locale
        self.pools = dict(pools or {})
        self.names = {"event": NAMES_EVENT, "key": NAMES_KEY}.get(kind, NAMES_SUBJECT)
        # Closure values: fixed ones, and factories called in order for each run with
        # (seed, run counter, the values built so far for that run).
        self.constants: dict[str, Any] = {}
        self.per_run: dict[str, Callable[[int, Any, dict[str, Any]], Any]] = {}
        self.leaves: list[tuple[str, str]] = []
        self._probes: dict[Any, Any] = {}
        self._count = 0

    def name(self, prefix: str) -> str:
        """A fresh closure-variable name."""
        self._count += 1
        return f"_{prefix}{self._count}"

    def constant(self, value: Any, prefix: str = "c") -> str:
        """The name of a closure constant holding `value`."""
        name = self.name(prefix)
        self.constants[name] = value
        return name

    def probe(self, locale: Any, path: str) -> Any:
        """A Faker used only to check providers at compile time (never in a run)."""
        key = tuple(locale) if isinstance(locale, list) else locale
        if key not in self._probes:
            from dogesim.templates.fakes import make_faker

            self._probes[key] = make_faker(locale, 0, path)
        return self._probes[key]


def _literal(unit: Unit, value: Any, path: str) -> str:
    """Source of a constant: a new object per event for mappings and lists."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else unit.constant(value)
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise ModelError(f"{path}: key {shown(key)} is not a string")
            items.append(f"{key!r}: {_literal(unit, item, f'{path}.{key}')}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(unit, v, f"{path}[{i}]") for i, v in enumerate(value)) + "]"
    raise ModelError(f"{path}: constant {shown(value)} is not a string, number, bool or null")


def _check_options(directive: str, spec: Mapping[str, Any], path: str) -> None:
    allowed = (*DIRECTIVES[directive], "cast")
    unknown = [key for key in spec if key != directive and key not in allowed]
    if unknown:
        raise ModelError(
            f"{path}: unknown option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} of {directive!r}; allowed: {', '.join(allowed)}"
        )


def _cast(source: str, spec: Mapping[str, Any], path: str) -> str:
    if "cast" not in spec:
        return source
    cast = spec["cast"]
    if cast not in _CASTS:
        raise ModelError(f"{path}.cast: {shown(cast)}; give one of {', '.join(_CASTS)}")
    return f"_fn_{cast}({source})"


def read_field(unit: Unit, value: Any, path: str, depth: int = 0) -> str:
    """The source computing template `value` at `path`; records leaves in `unit`.

    Raises:
        ModelError: anything wrong with the value, naming `path` and the value.
    """
    if depth > _MAX_DEPTH:
        raise ModelError(f"{path}: templates nest at most {_MAX_DEPTH} levels deep")
    if isinstance(value, Mapping):
        directives = [key for key in value if key in DIRECTIVES]
        if len(directives) > 1:
            raise ModelError(
                f"{path}: {shown(dict(value))} has several directives "
                f"({', '.join(directives)}); give one, or wrap an object in {{object: ...}}"
            )
        if directives:
            directive = directives[0]
            _check_options(directive, value, path)
            source = _DIRECTIVE_READERS[directive](unit, value, path, depth)
            source = _cast(source, value, path)
            if directive not in ("object", "const"):
                unit.leaves.append((path, source))
            return source
        return _object(unit, value, path, depth)
    if isinstance(value, (list, tuple)):
        parts = [read_field(unit, v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
        return "[" + ", ".join(parts) + "]"
    return _literal(unit, value, path)


def _object(unit: Unit, value: Mapping[str, Any], path: str, depth: int) -> str:
    items = []
    for key, item in value.items():
        if not isinstance(key, str):
            raise ModelError(f"{path}: field name {shown(key)} is not a string")
        items.append(f"{key!r}: {read_field(unit, item, f'{path}.{key}', depth + 1)}")
    return "{" + ", ".join(items) + "}"


def _read_object(unit: Unit, spec: Mapping[str, Any], path: str, depth: int) -> str:
    inner = spec["object"]
    if not isinstance(inner, Mapping):
        raise ModelError(f"{path}.object: {shown(inner)} is not a mapping of fields")
    return _object(unit, inner, path, depth)


def _read_const(unit: Unit, spec: Mapping[str, Any], path: str, depth: int) -> str:
    return _literal(unit, spec["const"], path)


def _event_only(unit: Unit, directive: str, path: str) -> None:
    if unit.kind == "key" and directive == "time":
        raise ModelError(
            f"{path}: a key template has no event time (Kafka key functions get the subject "
            "and the transition); put the time in the value"
        )
    if unit.kind == "subject":
        raise ModelError(
            f"{path}: {directive!r} needs an event; a subject template can use const, expr "
            "(with index), seq: subject, faker and ref"
        )


def _attribute_path(text: object, path: str) -> tuple[str, ...]:
    names = tuple(text.split(".")) if isinstance(text, str) else ()
    if not names or not all(
        n.isidentifier() and not n.startswith("_") and not keyword.iskeyword(n) for n in names
    ):
        raise ModelError(
            f"{path}: subject attribute {shown(text)} is not a dotted path of names "
            "(e.g. balance or address.city; no names starting with '_', no Python keywords)"
        )
    return names


def _read_subject(unit: Unit, spec: Mapping[str, Any], path: str, depth: int) -> str:
    _event_only(unit, "subject", path)
    names = _attribute_path(spec["subject"], path)
    if "default" in spec:
        default = unit.constant(spec["default"])
        return f"_dig_default(subject, {names!r}, {default})"
    source = f"subject.{names[0]}"
    for name in names[1:]:
        # Inline the common case (a dict) so a nested path costs what a hand-written one does.
        value = unit.name("v")
        # `.__class__`, not `_type(...)`: an attribute read, not a call, per event.
        source = (
            f"({value}[{name!r}] if ({value} := {source}).__class__ is _dict "
            f"else _dig({value}, ({name!r},)))"
        )
    return source


def _read_transition(unit: Unit, spec: Mapping[str, Any], path: str, depth: int) -> str:
    _event_only(unit, "transition", path)
    field = spec["transition"]
    if field not in _TRANSITION_FIELDS:
        raise ModelError(
            f"{path}: transition field {shown(field)}; give one of {', '.join(_TRANSITION_FIELDS)}"
        )
    return f"transition.{field}"


def _read_time(unit: Unit, spec: Mapping[str, Any], path: str, depth: int) -> str:
    _event_only(unit, "time", path)
    kind = spec["time"]
    if kind not in TIME_FORMATS:
        raise ModelError(
            f"{path}: time format {shown(kind)}; give one of {', '.join(TIME_FORMATS)}"
        )
    if ("format" in spec) != (kind == "format"):
        raise ModelError(f"{path}: give 'format' (a strftime pattern) exactly with time: format")
    if kind == "epoch_ms":
        return "timestamp"
    if kind == "epoch_s":
        return "(timestamp // 1000)"
    if kind == "iso":
        convert: Callable[[int], str] = _iso
    elif kind == "date":
        convert = _date
    else:
        pattern = spec["format"]
        if not isinstance(pattern, str) or not pattern:
            raise ModelError(f"{path}.format: {shown(pattern)} is not a strftime pattern")
        try:
            _utc(0).strftime(pattern)
        except ValueError as exc:
            raise ModelError(f"{path}.format: {shown(pattern)}: {exc}") from None

        def convert(timestamp: int) -> str:
            return _utc(timestamp).strftime(pattern)

    name = unit.name("t")
    unit.per_run[name] = lambda seed, counter, built: _last_value(convert)
    return f"{name}(timestamp)"


def _read_seq(unit: Unit, spec: Mapping[str, Any], path: str, depth: int) -> str:
    kind = spec["seq"]
    start = spec.get("start", 0)
    if isinstance(start, bool) or not isinstance(start, int):
        raise ModelError(f"{path}.start: {shown(start)} is not a whole number")
    if unit.kind == "subject":
        if kind != "subject":
            raise ModelError(f"{path}: a subject template numbers subjects: use seq: subject")
        return f"(index + {start})"
    if kind not in _SEQ_KINDS:
        raise ModelError(f"{path}: sequence {shown(kind)}; give one of {', '.join(_SEQ_KINDS)}")
    name = unit.name("s")
    if kind == "event":
        unit.per_run[name] = lambda seed, counter, built: _counter(start)
        return f"{name}()"
    if kind == "run":
        unit.per_run[name] = lambda seed, counter, built: counter
        return f"({name}() + {start})"
    unit.per_run[name] = lambda seed, counter, built: _SubjectSequence(start)
    return f"{name}(subject)"


def _counter(start: int) -> Callable[[], int]:
    import itertools

    return itertools.count(start).__next__


def _read_expr(unit: Unit, spec: Mapping[str, Any], path: str, depth: int) -> str:
    source, helpers, _ = compile_expression(spec["expr"], path, unit.names)
    unit.constants.update(helpers)
    return source


def _read_faker(unit: Unit, spec: Mapping[str, Any], path: str, depth: int) -> str:
    from dogesim.templates.fakes import bound_provider, plain, provider_call

    locale = spec.get("locale", unit.locale)
    if locale is not None and not (
        isinstance(locale, str)
        or (isinstance(locale, list) and locale and all(isinstance(x, str) for x in locale))
    ):
        raise ModelError(f"{path}.locale: {shown(locale)} is not a locale such as en_US")
    name, positional, keywords = provider_call(
        unit.probe(locale, path), spec["faker"], spec.get("args"), path
    )
    # One Faker per template and locale, built first in each run; providers bind to it.
    faker_name = f"_faker{_locale_tag(locale)}"
    unit.per_run.setdefault(faker_name, _faker_factory(unit.path, locale))
    provider = unit.name("f")
    unit.per_run[provider] = lambda seed, counter, built: bound_provider(
        built[faker_name], name, positional, keywords
    )
    unit.constants["_plain"] = plain
    return f"_plain({provider}())"


def _locale_tag(locale: Any) -> str:
    if locale is None:
        return ""
    text = locale if isinstance(locale, str) else "_".join(locale)
    return "_" + "".join(c if c.isalnum() else "_" for c in text)


def _faker_factory(path: str, locale: Any) -> Callable[[int, Any, dict[str, Any]], Any]:
    def build(seed: int, counter: Any, built: dict[str, Any]) -> Any:
        from dogesim.templates.fakes import make_faker

        return make_faker(locale, seed, path)

    return build


def _read_ref(unit: Unit, spec: Mapping[str, Any], path: str, depth: int) -> str:
    from dogesim.relations import Relation

    population = spec["ref"]
    if not isinstance(population, str):
        raise ModelError(
            f"{path}: population {shown(population)} is not a name; give one of "
            f"{', '.join(map(repr, unit.pools)) or 'the populations (none given)'}"
        )
    if population not in unit.pools:
        known = ", ".join(map(repr, unit.pools)) or "none given"
        hint = difflib.get_close_matches(str(population), list(unit.pools), n=1)
        maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ModelError(
            f"{path}: unknown population {shown(population)}{maybe}; populations: {known}"
        )
    pool = unit.pools[population]
    law = spec.get("law", "uniform")
    s = spec.get("s", 1.0)
    on_empty = spec.get("on_empty", "error")
    # Built once here, so a bad law or exponent fails at compile time.
    Relation(pool, law, s=s, path=path, on_empty=on_empty)
    name = unit.name("r")
    unit.per_run[name] = lambda seed, counter, built: (
        Relation(pool, law, s=s, seed=seed, path=path, on_empty=on_empty).pick
    )
    return f"{name}()"


def _read_pick(unit: Unit, spec: Mapping[str, Any], path: str, depth: int) -> str:
    """``{pick: customers, by: zipf, s: 1.1}``: `_read_ref` under other names."""
    if "by" in spec and "law" in spec:
        raise ModelError(f"{path}: give either law or by (the same setting), not both")
    options = {k: v for k, v in spec.items() if k not in ("pick", "by", "cast")}
    options["ref"] = spec["pick"]
    if "by" in spec:
        options["law"] = spec["by"]
    return _read_ref(unit, options, path, depth)


_DIRECTIVE_READERS: dict[str, Callable[[Unit, Mapping[str, Any], str, int], str]] = {
    "subject": _read_subject,
    "transition": _read_transition,
    "time": _read_time,
    "seq": _read_seq,
    "const": _read_const,
    "expr": _read_expr,
    "faker": _read_faker,
    "ref": _read_ref,
    "pick": _read_pick,
    "object": _read_object,
}

#: Closure helpers every mapper may use.
HELPERS: dict[str, Any] = {
    "_type": type,
    "_dict": dict,
    "_dig": _dig,
    "_dig_default": _dig_default,
    **{f"_fn_{name}": FUNCTIONS[name] for name in _CASTS},
}
