"""Model files: a whole run declared in YAML, loaded into a `ModelSpec` that builds it.

- `load_model_file(path, ...)`: read and validate a model file; every error is a `ModelError`
  that starts with ``file:line: key:`` and says what would be right.
- `load_model_text(text, ...)`: the same from a string (tests, notebooks).
- `ModelSpec`: the loaded run: states, transitions, tick length, ticks, start time, seed,
  subjects and sinks. ``spec.model`` is the bare `Model`; ``spec.simulation()`` builds a
  ready `Simulation` with fresh sinks; ``spec.run()`` runs it; ``spec.resume(checkpoint)``
  continues a stopped run into the file's sinks, opened for appending.
- `TransitionSpec`, `SubjectsSpec`, `SinkSpec`, `LiveSpec`: the parts of a `ModelSpec`.
- `SINK_TYPES`: the sink types a model file can name, with the settings each accepts.
- `DISTRIBUTIONS`, `AttributeSubjectFactory`: subject attributes drawn with the run's seed.
- `subject_key`: the default Kafka key (the subject's id).
- `parse_duration`, `format_duration`, `parse_timestamp`: ``500ms``/``1s``/``1m``/``1h``/``1d``
  tick lengths and ISO-8601 or epoch-ms start times.
- `dump_model(...)`: write a model file (used by ``dogesim fit``).

The format, by example (``models/`` has complete ones)::

    name: banking
    seed: 42                        # optional; the same seed gives the same events
    states: [offline, online, loan_screen]
    initial_state: offline
    tick: 1m                        # 500ms, 1s, 1m, 1h, 1d, or an int of milliseconds
    ticks: 1000
    start: 2024-01-01T00:00:00Z     # ISO-8601 (UTC when no zone is given) or epoch ms
    subjects:
      count: 10
      factory: dogesim.examples.banking:UserFactory     # or `attributes:` (below)
    sinks:
      events: {type: jsonl, path: out/banking.jsonl, mapper: dogesim.examples.banking:event_record}
    default_sinks: [events]         # for transitions that list no `sinks:`
    transitions:
      - {trigger: login, from: offline, to: online, probability: 0.1}
      - {trigger: income, from: offline, to: offline, probability: 0.01,
         callback: dogesim.examples.banking:income_callback, sinks: [events]}

Subjects without a factory are ``SimpleNamespace`` objects with an ``id`` (0, 1, 2, ...)
and the attributes drawn from simple distributions with the run's seed::

    attributes:
      id: {sequence: 1000}          # 1000, 1001, ... (the default id starts at 0)
      budget: {uniform: [10, 500]}  # float in [low, high)
      visits: {uniform_int: [0, 9]} # integer in [low, high], both ends included
      age: {normal: [40, 12]}       # mean, standard deviation
      segment: {choice: [new, returning]}            # or {choice: {new: 3, returning: 1}}
      country: {constant: PL}       # a plain value is a constant too

Strings may use ``${ENV_VAR}`` and ``${ENV_VAR:-default}`` (``$${`` is a literal ``${``); a
value that is exactly one ``${...}`` may stand for a number or a boolean. Relative schema
paths are read relative to the model file; output paths are relative to the working
directory. Booleans are YAML 1.2's ``true``/``false`` only, so a state or trigger may be
called ``on``, ``off``, ``yes`` or ``no``; duplicate keys are errors.

Online and realistic runs (each key optional; ``models/support_center.yaml`` uses them all)::

    probability_tick: 1m            # per-tick probabilities are per this tick; a run at
                                    # another `tick:` rescales them: p' = 1 - (1 - p)^(dt'/dt)
    profiles:                       # calendar multipliers, named for transitions to share
      office_hours:
        hourly: [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
        weekly: [1, 1, 1, 1, 1, 0, 0]                # Monday first
        dates: {2026-12-25: 0}                       # holidays, paydays
        utc_offset_hours: 1                          # hours are local hours
    resources: {agents: 5}          # shared SimPy resources transitions may hold
    arrivals: {rate: 30 per hour, profile: office_hours}  # or a number per tick, or rate text
    churn: {rate: 2% per day, sinks: [events]}     # or rate text / % per tick; -> `churned`
    jitter: true                    # spread timestamps within their tick
    live: {enabled: false, speed: 60, max_lag: 5s, on_lag: warn, timestamps: wall,
           until_stopped: false}    # real-time pacing (the CLI's --live turns it on)
    transitions:
      - {trigger: call, from: idle, to: waiting, probability: 0.5% per hour,
         profile: office_hours}    # a rate: '0.1% per minute', '6 per day', '6/1d'
      - {trigger: answer, from: waiting, to: talking, probability: 90,
         resource: agents, hold: 12m}   # hold: ticks, or a duration in whole ticks
      - {trigger: browse, from: idle, to: idle, probability: 1,
         profile: {hourly: [...24 numbers...]}}      # or a profile inline

Sinks (``type:`` may be left out when the sink is named after its type): ``jsonl``/``csv``
(``path``, ``mapper``), ``printing``/``stdout`` (``template`` such as
``"{timestamp} {subject.id} {trigger}"``, or a ``format`` function; JSON lines by default),
``memory``, ``counting``, ``kafka`` (``bootstrap_servers``, ``topic``, ``client_id``,
``conf`` with librdkafka's dotted keys passed through untouched, ``key``/``value``
functions), ``kafka_avro`` (also ``schema_registry_url``, ``key_schema``, ``value_schema``),
``db`` (``url``, ``table``, ``mapper``, ``batch_size``, ``create_table``, ``schema``).
Functions are ``module:name`` import paths, resolved when the file is loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import difflib
import importlib
import importlib.util
import inspect
import json
import math
import os
import pickle
import re
import secrets
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import yaml

from dogesim.engine import RunResult, Simulation
from dogesim.errors import ModelError, RunError
from dogesim.model import Model, Transition
from dogesim.rates import Profile, Rate, format_duration, parse_duration, parse_rate

__all__ = [
    "DISTRIBUTIONS",
    "SINK_TYPES",
    "AttributeSubjectFactory",
    "LiveSpec",
    "ModelSpec",
    "SinkSpec",
    "SubjectsSpec",
    "TransitionSpec",
    "dump_model",
    "format_duration",
    "load_model_file",
    "load_model_text",
    "parse_duration",
    "parse_timestamp",
    "subject_key",
]

# -- YAML with line numbers ----------------------------------------------------------------


class _Map(dict):
    """A YAML mapping that remembers its own line and the line of every key."""

    line: int
    key_lines: dict[Any, int]


class _Seq(list):
    """A YAML sequence that remembers its own line and the line of every item."""

    line: int
    item_lines: list[int]


class _Interpolated(str):
    """A string that came out of ``${...}`` interpolation (may stand for a number)."""

    __slots__ = ()


class _LineLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` whose mappings and sequences record the line of every entry."""


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> Any:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    yield out
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"a mapping key must be a plain value, got {key!r}", key_node.start_mark
            ) from None
        if key in out:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} appears twice in one mapping (first on line {out.key_lines[key]})",
                key_node.start_mark,
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> Any:
    out = _Seq()
    out.line = node.start_mark.line + 1
    out.item_lines = []
    yield out
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.item_lines.append(item.start_mark.line + 1)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)

# Booleans as in YAML 1.2: only true/false. YAML 1.1 also reads on/off/yes/no as booleans,
# which turns a trigger or state named `on` into True.
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _key_line(node: Any, key: Any, default: int) -> int:
    if isinstance(node, _Map):
        return node.key_lines.get(key, node.line)
    if isinstance(node, _Seq) and isinstance(key, int) and key < len(node.item_lines):
        return node.item_lines[key]
    return default


# -- errors that name file, line and key ---------------------------------------------------


class _Source:
    """The file being read: turns (line, key path, message) into a `ModelError`."""

    def __init__(self, name: str, directory: Path, environ: Mapping[str, str]) -> None:
        self.name = name
        self.directory = directory
        self.environ = environ

    def error(self, line: int, path: str, message: str) -> ModelError:
        where = f"{self.name}:{line}"
        return ModelError(f"{where}: {path}: {message}" if path else f"{where}: {message}")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    """A value as it should appear in a message: repr of plain str, not of our subclasses."""
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, (_Map, _Seq)):
        return repr(_plain(value))
    return repr(value)


def _plain(value: Any) -> Any:
    """`value` with our line-aware containers and strings turned into plain ones."""
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


# -- ${ENV} interpolation ------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate_str(text: str, src: _Source, line: int, path: str) -> str:
    if "${" not in text:
        return text
    out: list[str] = []
    position = 0
    while True:
        start = text.find("${", position)
        if start < 0:
            out.append(text[position:])
            break
        if start > 0 and text[start - 1] == "$":
            # `$${` is a literal `${`: drop the escaping dollar.
            out.append(text[position : start - 1] + "${")
            position = start + 2
            continue
        out.append(text[position:start])
        match = _ENV_REF.match(text, start)
        if match is None:
            raise src.error(
                line,
                path,
                f"malformed reference in {text!r} at {text[start : start + 20]!r}: write "
                "${NAME} or ${NAME:-default} (and $${ for a literal ${)",
            )
        name, default = match.group(1), match.group(2)
        value = src.environ.get(name)
        if value is None:
            if default is None:
                raise src.error(
                    line,
                    path,
                    f"environment variable {name} is not set (in {text!r}); set it, or give a "
                    f"default with ${{{name}:-value}}",
                )
            value = default
        out.append(value)
        position = match.end()
    return _Interpolated("".join(out))


def _interpolate(node: Any, src: _Source, line: int, path: str) -> Any:
    """Replace ``${...}`` in every string value under `node` (keys are left alone)."""
    if isinstance(node, _Map):
        for key in list(node):
            node[key] = _interpolate(
                node[key], src, node.key_lines.get(key, node.line), _join(path, str(key))
            )
        return node
    if isinstance(node, _Seq):
        for i, item in enumerate(node):
            node[i] = _interpolate(item, src, node.item_lines[i], _join(path, i))
        return node
    if isinstance(node, str):
        return _interpolate_str(node, src, line, path)
    return node


# -- scalar readers --------------------------------------------------------------------------


def parse_timestamp(value: object) -> int:
    """Epoch milliseconds from an int (already ms), an ISO-8601 string, a date or a datetime.

    A date or a datetime without a time zone is taken as UTC.

    Raises:
        ValueError: the value is none of those.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
        try:
            value = _dt.datetime.fromisoformat(iso)
        except ValueError:
            raise ValueError(
                f"{text!r} is not an ISO-8601 time (e.g. 2024-01-01T00:00:00Z) nor epoch "
                "milliseconds"
            ) from None
    if isinstance(value, _dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=_dt.timezone.utc)
        return round(moment.timestamp() * 1000)
    if isinstance(value, _dt.date):
        midnight = _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc)
        return int(midnight.timestamp() * 1000)
    raise ValueError(f"{value!r} is not a time: give ISO-8601 or epoch milliseconds")


def _format_timestamp(ms: int) -> str:
    moment = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc)
    text = moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
    return text.replace("+00:00", "Z")


class _Reader:
    """Typed access to one mapping of the file, with errors at the right line and key."""

    def __init__(self, src: _Source, node: _Map, path: str) -> None:
        self.src = src
        self.node = node
        self.path = path

    def line(self, key: str) -> int:
        return _key_line(self.node, key, self.node.line)

    def where(self, key: str) -> str:
        return _join(self.path, key)

    def error(self, key: str | None, message: str) -> ModelError:
        if key is None:
            return self.src.error(self.node.line, self.path, message)
        return self.src.error(self.line(key), self.where(key), message)

    def check_keys(self, allowed: Iterable[str], required: Iterable[str] = ()) -> None:
        allowed_list = list(allowed)
        for key in self.node:
            if key not in allowed_list:
                hint = difflib.get_close_matches(str(key), allowed_list, n=1)
                maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise self.src.error(
                    self.line(key),
                    self.where(str(key)),
                    f"unknown key {_describe(key)}{maybe}; allowed keys: {', '.join(allowed_list)}",
                )
        for key in required:
            if key not in self.node:
                raise self.error(
                    None, f"missing required key {key!r}; allowed keys: {', '.join(allowed_list)}"
                )

    def has(self, key: str) -> bool:
        return key in self.node and self.node[key] is not None

    def raw(self, key: str, default: Any = None) -> Any:
        return self.node.get(key, default)

    def string(self, key: str, default: str | None = None) -> str:
        value = self.node.get(key)
        if value is None:
            if default is not None:
                return default
            raise self.error(key, "missing value; give a string")
        if isinstance(value, (bool, int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value:
            raise self.error(key, f"{_describe(value)} is not a non-empty string")
        return str(value)

    def optional_string(self, key: str) -> str | None:
        return self.string(key) if self.has(key) else None

    def number(self, key: str) -> float:
        value = self.node.get(key)
        if isinstance(value, _Interpolated):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"{_describe(value)} is not a number")
        if not math.isfinite(float(value)):
            raise self.error(key, f"{_describe(value)} is not a finite number")
        return float(value)

    def integer(self, key: str, *, minimum: int | None = None) -> int:
        value = self.node.get(key)
        if isinstance(value, _Interpolated):
            with contextlib.suppress(ValueError):
                value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"{_describe(value)} is not a whole number")
        if minimum is not None and value < minimum:
            raise self.error(key, f"{value} is too small; it must be at least {minimum}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        if not self.has(key):
            return default
        value = self.node[key]
        if isinstance(value, _Interpolated) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise self.error(key, f"{_describe(value)} is not true or false")
        return value

    def mapping(self, key: str) -> _Reader:
        value = self.node.get(key)
        if not isinstance(value, _Map):
            raise self.error(key, f"{_describe(value)} is not a mapping (key: value lines)")
        return _Reader(self.src, value, self.where(key))

    def sequence(self, key: str) -> _Seq:
        value = self.node.get(key)
        if not isinstance(value, _Seq):
            raise self.error(key, f"{_describe(value)} is not a list")
        return value

    def string_list(self, key: str) -> list[str]:
        value = self.node.get(key)
        if isinstance(value, str):
            return [str(value)]
        items = self.sequence(key)
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                raise self.src.error(
                    items.item_lines[i],
                    f"{self.where(key)}[{i}]",
                    f"{_describe(item)} is not a non-empty string",
                )
            out.append(str(item))
        return out

    def import_path(self, key: str) -> Any:
        return _resolve(self.string(key), self.src, self.line(key), self.where(key))


def _resolve(target: str, src: _Source, line: int, path: str) -> Any:
    """Import ``module:attribute`` (attribute may be dotted) and return the object."""
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        raise src.error(
            line,
            path,
            f"{target!r} is not an import path; write module:name, e.g. "
            "dogesim.examples.banking:income_callback",
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise src.error(
            line,
            path,
            f"cannot import module {module_name!r} for {target!r}: {type(exc).__name__}: {exc}",
        ) from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise src.error(
                line, path, f"{target!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    return obj


def _callable_at(reader: _Reader, key: str) -> Callable[..., Any]:
    obj = reader.import_path(key)
    if not callable(obj):
        raise reader.error(key, f"{reader.string(key)!r} is {obj!r}, which is not callable")
    return obj


def _import_name(obj: object) -> str | None:
    """``module:qualname`` for an importable function or class, else None."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        return None
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception:
        return None
    return f"{module}:{qualname}" if found is obj else None


# -- subjects --------------------------------------------------------------------------------

#: Distributions for subject attributes: name -> how many parameters (and their shape).
DISTRIBUTIONS = ("uniform_int", "uniform", "normal", "choice", "constant", "sequence")
_CHUNK = 1024


@dataclass(frozen=True)
class _Distribution:
    """One attribute's distribution; `draw` returns `n` plain Python values."""

    kind: str
    params: tuple[Any, ...]
    weights: tuple[float, ...] | None = None

    def draw(self, rng: np.random.Generator, n: int, offset: int) -> list[Any]:
        kind, params = self.kind, self.params
        if kind == "constant":
            return [params[0]] * n
        if kind == "sequence":
            return list(range(params[0] + offset, params[0] + offset + n))
        if kind == "uniform_int":
            return rng.integers(params[0], params[1], size=n, endpoint=True).tolist()
        if kind == "uniform":
            return rng.uniform(params[0], params[1], size=n).tolist()
        if kind == "normal":
            return rng.normal(params[0], params[1], size=n).tolist()
        # choice
        picks = rng.choice(len(params), size=n, p=self.weights)
        return [params[i] for i in picks.tolist()]

    def describe(self) -> Any:
        if self.kind == "choice" and self.weights is not None:
            return {"choice": dict(zip(self.params, self.weights, strict=True))}
        if self.kind in ("constant", "sequence"):
            return {self.kind: self.params[0]}
        return {self.kind: list(self.params)}


def _read_distribution(src: _Source, holder: _Map, name: str, path: str) -> _Distribution:
    value = holder[name]
    line = _key_line(holder, name, holder.line)
    if not isinstance(value, _Map):
        # A plain value is a constant.
        if isinstance(value, _Seq):
            raise src.error(
                line,
                path,
                f"{_describe(value)}: give a distribution such as "
                "{choice: [...]}, or a plain value for a constant",
            )
        return _Distribution("constant", (_plain(value),))
    if len(value) != 1:
        raise src.error(
            line,
            path,
            f"{_describe(value)}: give exactly one distribution, one of {', '.join(DISTRIBUTIONS)}",
        )
    kind = str(next(iter(value)))
    arg = value[kind]
    line = value.key_lines[kind]
    where = _join(path, kind)
    if kind not in DISTRIBUTIONS:
        hint = difflib.get_close_matches(kind, DISTRIBUTIONS, n=1)
        maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise src.error(
            line,
            where,
            f"unknown distribution {kind!r}{maybe}; allowed: {', '.join(DISTRIBUTIONS)}",
        )
    if kind == "constant":
        return _Distribution(kind, (_plain(arg),))
    if kind == "sequence":
        if isinstance(arg, bool) or not isinstance(arg, int):
            raise src.error(line, where, f"{_describe(arg)} is not a whole number to start at")
        return _Distribution(kind, (arg,))
    if kind == "choice":
        if isinstance(arg, _Map):
            values = [_plain(k) for k in arg]
            weights = []
            for k in arg:
                w = arg[k]
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
                    raise src.error(
                        arg.key_lines[k],
                        _join(where, str(k)),
                        f"weight {_describe(w)} is not a positive number",
                    )
                weights.append(float(w))
            total = sum(weights)
            if not values:
                raise src.error(line, where, "no values to choose from")
            return _Distribution(kind, tuple(values), tuple(w / total for w in weights))
        if not isinstance(arg, _Seq) or not arg:
            raise src.error(
                line,
                where,
                f"{_describe(arg)}: give a non-empty list of values, or a mapping value: weight",
            )
        return _Distribution(kind, tuple(_plain(v) for v in arg), None)
    # two numbers
    if not isinstance(arg, _Seq) or len(arg) != 2:
        shape = {"uniform_int": "[low, high]", "uniform": "[low, high]", "normal": "[mean, sd]"}
        raise src.error(line, where, f"{_describe(arg)}: give two numbers {shape[kind]}")
    numbers = []
    for i, item in enumerate(arg):
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
            raise src.error(
                arg.item_lines[i], f"{where}[{i}]", f"{_describe(item)} is not a number"
            )
        numbers.append(item)
    a, b = numbers
    if kind == "uniform_int":
        if not (isinstance(a, int) and isinstance(b, int)):
            raise src.error(line, where, f"[{a}, {b}]: both ends must be whole numbers")
        if a > b:
            raise src.error(line, where, f"[{a}, {b}]: low must not exceed high")
    elif kind == "uniform" and a > b:
        raise src.error(line, where, f"[{a}, {b}]: low must not exceed high")
    elif kind == "normal" and b < 0:
        raise src.error(line, where, f"standard deviation {b} must be >= 0")
    return _Distribution(kind, (a, b))


class AttributeSubjectFactory:
    """Creates subjects with attributes drawn from `SubjectsSpec.attributes`.

    Each subject is a ``SimpleNamespace`` with an ``id`` (0, 1, 2, ... unless the attributes
    define ``id``) and one field per attribute. Values are drawn in blocks from a numpy
    generator seeded with the run's seed (independent of the engine's stream), so the same
    seed gives the same subjects.
    """

    def __init__(self, attributes: Mapping[str, _Distribution], seed: int) -> None:
        self.attributes = dict(attributes)
        if "id" not in self.attributes:
            self.attributes = {"id": _Distribution("sequence", (0,)), **self.attributes}
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5_B1EC7]))
        self._buffers: list[list[Any]] = []
        self._made = 0
        self._position = _CHUNK

    def _refill(self) -> None:
        self._buffers = [
            dist.draw(self._rng, _CHUNK, self._made) for dist in self.attributes.values()
        ]
        self._position = 0

    def create(self) -> SimpleNamespace:
        """A new subject."""
        if self._position >= _CHUNK:
            self._refill()
        i = self._position
        subject = SimpleNamespace(
            **{name: buffer[i] for name, buffer in zip(self.attributes, self._buffers, strict=True)}
        )
        self._position += 1
        self._made += 1
        return subject

    __call__ = create


@dataclass
class SubjectsSpec:
    """How the subjects of a run are made.

    Attributes:
        count: how many subjects.
        attributes: per attribute, the distribution it is drawn from (when no factory).
        factory: the imported factory: a class (instantiated with `factory_args`; its
            instances have ``create()`` or are callable) or a callable made once per subject.
        factory_path: the import path the factory came from.
        factory_args: keyword arguments for a factory class.
    """

    count: int
    attributes: dict[str, _Distribution] = field(default_factory=dict)
    factory: Any = None
    factory_path: str | None = None
    factory_args: dict[str, Any] = field(default_factory=dict)

    def make_factory(self, seed: int) -> Callable[[], Any]:
        """A fresh subject factory for one run with `seed`."""
        if self.factory is None:
            return AttributeSubjectFactory(self.attributes, seed).create
        if inspect.isclass(self.factory):
            instance = self.factory(**self.factory_args)
            create = getattr(instance, "create", None)
            if callable(create):
                return create
            if callable(instance):
                return instance
            raise ModelError(
                f"subjects.factory {self.factory_path!r}: an instance has no create() method "
                "and is not callable"
            )
        return self.factory


def _read_subjects(src: _Source, reader: _Reader) -> SubjectsSpec:
    subjects = reader.mapping("subjects")
    subjects.check_keys(("count", "attributes", "factory", "factory_args"), ("count",))
    count = subjects.integer("count", minimum=0)
    if subjects.has("factory"):
        if subjects.has("attributes"):
            raise subjects.error(
                "attributes",
                "give either a factory or attributes, not both (a factory makes "
                "its own attributes)",
            )
        factory = subjects.import_path("factory")
        path = subjects.string("factory")
        args: dict[str, Any] = {}
        if subjects.has("factory_args"):
            if not inspect.isclass(factory):
                raise subjects.error(
                    "factory_args", f"{path!r} is not a class, so it takes no factory_args"
                )
            args = _plain(subjects.mapping("factory_args").node)
        if not callable(factory):
            raise subjects.error("factory", f"{path!r} is {factory!r}, which is not callable")
        return SubjectsSpec(count, factory=factory, factory_path=path, factory_args=args)
    if subjects.has("factory_args"):
        raise subjects.error("factory_args", "factory_args needs a factory")
    attributes: dict[str, _Distribution] = {}
    if subjects.has("attributes"):
        attrs = subjects.mapping("attributes")
        for name in attrs.node:
            if not isinstance(name, str) or not name.isidentifier():
                raise attrs.error(
                    str(name), f"attribute name {_describe(name)} is not a Python identifier"
                )
            attributes[name] = _read_distribution(src, attrs.node, name, attrs.where(name))
    return SubjectsSpec(count, attributes=attributes)


# -- sinks ---------------------------------------------------------------------------------

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


# -- online settings: rates, calendar profiles, resources, arrivals, churn, live ------------

_PROFILE_KEYS = ("hourly", "weekly", "dates", "utc_offset_hours")
_LIVE_KEYS = ("enabled", "speed", "max_lag", "on_lag", "timestamps", "until_stopped")
_ON_LAG = ("warn", "fail")
_LIVE_TIMESTAMPS = ("wall", "start")


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _multipliers(reader: _Reader, key: str, size: int, what: str) -> tuple[float, ...]:
    """`size` multipliers (numbers >= 0) from the list at `key`."""
    items = reader.sequence(key)
    if len(items) != size:
        raise reader.error(key, f"{len(items)} multipliers; give {size}, {what}")
    out = []
    for i, item in enumerate(items):
        if not _is_number(item) or not math.isfinite(item) or item < 0:
            raise reader.src.error(
                items.item_lines[i],
                f"{reader.where(key)}[{i}]",
                f"{_describe(item)} is not a multiplier (a finite number >= 0)",
            )
        out.append(float(item))
    return tuple(out)


def _read_profile(src: _Source, value: Any, line: int, path: str) -> Profile:
    """A calendar profile written inline as a mapping of `_PROFILE_KEYS`."""
    if not isinstance(value, _Map):
        raise src.error(
            line,
            path,
            f"{_describe(value)}: give a profile as a mapping with {', '.join(_PROFILE_KEYS)}",
        )
    p = _Reader(src, value, path)
    p.check_keys(_PROFILE_KEYS)
    hourly = (
        _multipliers(p, "hourly", 24, "one per hour of the day, 00:00-01:00 first")
        if p.has("hourly")
        else (1.0,) * 24
    )
    weekly = (
        _multipliers(p, "weekly", 7, "one per day of the week, Monday first")
        if p.has("weekly")
        else (1.0,) * 7
    )
    dates: dict[str | _dt.date, float] = {}
    if p.has("dates"):
        listed = p.mapping("dates")
        for day in listed.node:
            where = listed.where(str(day))
            day_line = listed.line(day)
            parsed: _dt.date | None = None
            if isinstance(day, _dt.date) and not isinstance(day, _dt.datetime):
                parsed = day
            elif isinstance(day, str):
                with contextlib.suppress(ValueError):
                    parsed = _dt.date.fromisoformat(str(day))
            if parsed is None:
                raise src.error(
                    day_line, where, f"{_describe(day)} is not a date; write YYYY-MM-DD"
                )
            multiplier = listed.node[day]
            if not _is_number(multiplier) or not math.isfinite(multiplier) or multiplier < 0:
                raise src.error(
                    day_line,
                    where,
                    f"{_describe(multiplier)} is not a multiplier (a finite number >= 0)",
                )
            dates[parsed] = float(multiplier)
    offset = 0.0
    if p.has("utc_offset_hours"):
        offset = p.number("utc_offset_hours")
        if not -14 <= offset <= 14:
            raise p.error(
                "utc_offset_hours", f"{offset:g} is not a time-zone offset between -14 and 14"
            )
    try:
        return Profile(hourly=hourly, weekly=weekly, dates=dates, utc_offset_hours=offset)
    except ModelError as exc:
        raise src.error(line, path, str(exc)) from None


def _profile_at(reader: _Reader, key: str, profiles: Mapping[str, Profile]) -> Profile:
    """The profile at `key`: the name of one under ``profiles:``, or one written inline."""
    value = reader.raw(key)
    if isinstance(value, str):
        name = str(value)
        if name not in profiles:
            hint = difflib.get_close_matches(name, list(profiles), n=1)
            maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise reader.error(
                key,
                f"no profile named {name!r}{maybe}; profiles defined under 'profiles:' are "
                f"{', '.join(profiles) or 'none'} (or write the profile inline)",
            )
        return profiles[name]
    return _read_profile(reader.src, value, reader.line(key), reader.where(key))


def _rate_text(reader: _Reader, key: str, text: str, *, per_tick: str) -> Rate:
    """`text` read as a rate, or an error at `key` that says what a rate looks like."""
    try:
        return parse_rate(text, "rate")
    except ModelError as exc:
        detail = str(exc).removeprefix("rate: ")
        reason = "" if "is not a rate" in detail else f" ({detail})"
        raise reader.error(
            key,
            f"{text!r} is not a number ({per_tick}) nor a rate{reason}; write e.g. "
            "'0.1% per minute', '6 per day' or '6/1d'",
        ) from None


def _read_chance(reader: _Reader, key: str) -> float | Rate:
    """A chance: a number (percent per tick, 0..100) or rate text (``0.1% per minute``)."""
    value = reader.raw(key)
    if isinstance(value, _Interpolated):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, str):
        return _rate_text(reader, key, str(value), per_tick="percent per tick")
    probability = reader.number(key)
    if probability < 0 or probability > 100:
        raise reader.error(key, f"{probability:g} is not a percentage per tick between 0 and 100")
    return probability


def _read_arrival_rate(reader: _Reader, key: str) -> float | Rate:
    """Arrivals: a number of subjects per tick, or a count per period (``30 per hour``)."""
    value = reader.raw(key)
    if isinstance(value, _Interpolated):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, str):
        rate = _rate_text(reader, key, str(value), per_tick="subjects per tick")
        if rate.kind != "count":
            raise reader.error(
                key,
                f"{str(value)!r} is a probability; arrivals are a count per period such as "
                "'30 per hour', or a number of subjects per tick",
            )
        return rate
    number = reader.number(key)
    if number < 0:
        raise reader.error(key, f"{number:g} is not a number of subjects per tick >= 0")
    return number


def _read_hold(reader: _Reader, tick_ms: int) -> int:
    """``hold:``: whole ticks, or a duration (``12m``) that is a whole number of ticks."""
    value = reader.raw("hold")
    if isinstance(value, str) and not isinstance(value, _Interpolated):
        try:
            ms = parse_duration(value)
        except ValueError as exc:
            raise reader.error("hold", f"{exc}; or give a whole number of ticks") from None
        if ms % tick_ms:
            raise reader.error(
                "hold",
                f"{str(value)!r} is not a whole number of {format_duration(tick_ms)} ticks",
            )
        return ms // tick_ms
    return reader.integer("hold", minimum=1)


@dataclass
class LiveSpec:
    """Live pacing settings of a model file (``live:``); the CLI's ``--live`` turns them on.

    Attributes:
        enabled: pace the run in real time (default off: backfill as fast as possible).
        speed: speed-up factor (60: a minute of simulated time per second).
        max_lag_ms: how far behind real time the run may fall before `on_lag` applies
            (None: one tick).
        on_lag: ``"warn"`` or ``"fail"``.
        timestamps: ``"wall"`` (tick 0 is the moment the run starts) or ``"start"`` (the
            file's ``start:``, e.g. to replay a past day at real pace).
        until_stopped: in live mode, run until stopped (SIGINT/SIGTERM) instead of for
            ``ticks``.
    """

    enabled: bool = False
    speed: float = 1.0
    max_lag_ms: int | None = None
    on_lag: str = "warn"
    timestamps: str = "wall"
    until_stopped: bool = False


def _read_live(top: _Reader) -> LiveSpec:
    if not top.has("live"):
        return LiveSpec()
    live = top.mapping("live")
    live.check_keys(_LIVE_KEYS)
    spec = LiveSpec(
        enabled=live.boolean("enabled", False),
        until_stopped=live.boolean("until_stopped", False),
    )
    if live.has("speed"):
        spec.speed = live.number("speed")
        if spec.speed <= 0:
            raise live.error("speed", f"{spec.speed:g} is not a speed-up factor > 0")
    if live.has("max_lag"):
        try:
            spec.max_lag_ms = parse_duration(live.raw("max_lag"))
        except ValueError as exc:
            raise live.error("max_lag", str(exc)) from None
    for key, allowed in (("on_lag", _ON_LAG), ("timestamps", _LIVE_TIMESTAMPS)):
        if live.has(key):
            choice = live.string(key)
            if choice not in allowed:
                raise live.error(key, f"{choice!r} is not one of {', '.join(allowed)}")
            setattr(spec, key, choice)
    return spec


def _read_profiles(src: _Source, top: _Reader) -> dict[str, Profile]:
    if not top.has("profiles"):
        return {}
    profiles = top.mapping("profiles")
    out: dict[str, Profile] = {}
    for name in profiles.node:
        if not isinstance(name, str) or not name:
            raise profiles.error(str(name), f"profile name {_describe(name)} is not text")
        out[name] = _read_profile(
            src, profiles.node[name], profiles.line(name), profiles.where(name)
        )
    return out


def _read_resources(top: _Reader) -> dict[str, int]:
    if not top.has("resources"):
        return {}
    resources = top.mapping("resources")
    out: dict[str, int] = {}
    for name in resources.node:
        if not isinstance(name, str) or not name:
            raise resources.error(str(name), f"resource name {_describe(name)} is not text")
        out[name] = resources.integer(name, minimum=1)
    return out


def _sink_names(
    reader: _Reader, key: str, sink_names: Sequence[str], default: tuple[str, ...]
) -> tuple[str, ...]:
    """The sinks listed at `key` (checked against `sink_names`), or `default` without it."""
    if key not in reader.node:
        return default
    names = [] if reader.node[key] is None else reader.string_list(key)
    for name in names:
        if name not in sink_names:
            raise reader.error(
                key,
                f"no sink named {name!r}; sinks defined under 'sinks:' are "
                f"{', '.join(sink_names) or 'none'}",
            )
    return tuple(names)


# -- transitions -----------------------------------------------------------------------------


@dataclass
class TransitionSpec:
    """One transition of a model file.

    Attributes:
        trigger, from_state, to_state: as in `Transition`.
        probability: percent per tick, or a `Rate` (``0.1% per minute``, ``6 per day``) that
            the run rescales to its tick.
        callback: the imported action callback, or None.
        callback_path: the ``module:function`` it came from.
        sinks: names of the sinks that receive its events (after `default_sinks` applied).
        description: free text.
        line: the line of the transition in the file.
        profile: the calendar profile multiplying the chance, or None.
        profile_name: the name of the profile under ``profiles:`` (None when inline).
        resource: the resource the move must acquire (queueing when all are busy), or None.
        hold: ticks the resource is held after the move.
    """

    trigger: str
    from_state: str
    to_state: str
    probability: float | Rate
    callback: Callable[[Any, Transition], Any] | None = None
    callback_path: str | None = None
    sinks: tuple[str, ...] = ()
    description: str | None = None
    line: int = 0
    profile: Profile | None = None
    profile_name: str | None = None
    resource: str | None = None
    hold: int = 1


_TOP_KEYS = (
    "name",
    "description",
    "seed",
    "states",
    "initial_state",
    "tick",
    "ticks",
    "start",
    "subjects",
    "sinks",
    "default_sinks",
    "transitions",
    "probability_tick",
    "profiles",
    "resources",
    "arrivals",
    "churn",
    "jitter",
    "live",
)
_TOP_REQUIRED = ("states", "initial_state", "tick", "ticks", "subjects", "transitions")
_TRANSITION_KEYS = (
    "trigger",
    "from",
    "to",
    "probability",
    "callback",
    "sinks",
    "description",
    "profile",
    "resource",
    "hold",
)


class _DeferredFactory:
    """A subject factory chosen after the `Simulation` exists (a resumed run learns its seed
    from the checkpoint)."""

    def __init__(self) -> None:
        self.target: Callable[[], Any] | None = None

    def __call__(self) -> Any:
        if self.target is None:
            raise RunError("the resumed run's subject factory was not set up")
        return self.target()


@dataclass
class ModelSpec:
    """A loaded model file: everything needed to build and run the simulation.

    Attributes:
        path: the file it came from (None for text).
        name: the model's name (the file's stem when the file gives none).
        description: free text.
        states, initial_state: the state machine's states.
        transitions: the transitions, in file order.
        tick_ms: tick length in milliseconds.
        ticks: number of ticks.
        timestamp_start: timestamp of tick 0, epoch ms.
        seed: the seed, or None (a seed is then picked per run and reported).
        subjects: how subjects are made, and how many.
        sinks: the named sinks.
        default_sinks: sink names used by transitions that list none.
        probability_tick: the tick per-tick probabilities refer to (None: whatever `tick_ms`
            is); a run at another tick rescales them.
        profiles: the named calendar profiles.
        resources: shared resources and their capacities.
        arrivals: new subjects per tick (a number) or per period (a `Rate`), or None.
        arrivals_profile: the calendar profile shaping arrivals, or None.
        churn: the chance (percent per tick or a `Rate`) that a subject leaves for the final
            state ``churned``, or None.
        churn_sinks: sink names that receive ``churn`` events.
        jitter: spread timestamps within their tick.
        live: live pacing settings.
    """

    path: str | None
    name: str
    description: str | None
    states: tuple[str, ...]
    initial_state: str
    transitions: list[TransitionSpec]
    tick_ms: int
    ticks: int
    timestamp_start: int
    seed: int | None
    subjects: SubjectsSpec
    sinks: dict[str, SinkSpec] = field(default_factory=dict)
    default_sinks: tuple[str, ...] = ()
    probability_tick: int | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)
    resources: dict[str, int] = field(default_factory=dict)
    arrivals: float | Rate | None = None
    arrivals_profile: Profile | None = None
    churn: float | Rate | None = None
    churn_sinks: tuple[str, ...] = ()
    jitter: bool = False
    live: LiveSpec = field(default_factory=LiveSpec)

    @property
    def model(self) -> Model:
        """The state machine without sinks (for graphs and analytic reports), with every
        chance as percent per tick of `tick_ms`."""
        return self.build_model({})

    def used_sinks(self) -> list[str]:
        """Names of the sinks some transition (or churn) sends events to, in first-use order."""
        names = [name for t in self.transitions for name in t.sinks]
        if self.churn is not None:
            names.extend(self.churn_sinks)
        return list(dict.fromkeys(names))

    def build_sinks(
        self, names: Iterable[str] | None = None, *, append: bool = False
    ) -> dict[str, Any]:
        """Fresh sinks by name (by default every sink a transition uses).

        Args:
            names: which sinks (default: `used_sinks`).
            append: open file sinks for appending (to continue a resumed run).

        If one sink cannot be built, those already built are closed before the error
        propagates.
        """
        wanted = list(self.used_sinks() if names is None else names)
        built: dict[str, Any] = {}
        try:
            for name in wanted:
                if name not in self.sinks:
                    raise ModelError(
                        f"{self.path or self.name}: no sink named {name!r}; sinks are "
                        f"{', '.join(self.sinks) or 'none'}"
                    )
                built[name] = self.sinks[name].build(append=append)
        except BaseException:
            _close_quietly(built.values())
            raise
        return built

    def build_model(
        self,
        sinks: Mapping[str, Any] | Sequence[Any] | None = None,
        *,
        callbacks: bool = True,
    ) -> Model:
        """The `Model` at this file's tick, its transitions feeding the given sinks.

        Args:
            sinks: built sinks by name (each transition gets the ones it names; missing names
                are skipped), or a list of sinks that every transition feeds instead (an
                output override), or None to build the file's sinks now.
            callbacks: attach the callbacks (False gives the bare Markov chain).

        Rates are converted, and per-tick probabilities rescaled from `probability_tick`, to
        percent per tick of `tick_ms`; profiles, resources and holds are attached. Churn is
        not part of the model: `simulation` adds it.
        """
        if sinks is None:
            sinks = self.build_sinks()
        model = Model(
            self.states,
            self.initial_state,
            name=self.name,
            tick_ms=self.probability_tick,
            resources=dict(self.resources),
        )
        for spec in self.transitions:
            if isinstance(sinks, Mapping):
                chosen = [sinks[name] for name in spec.sinks if name in sinks]
            else:
                chosen = list(sinks)
            model.add_transition(
                spec.trigger,
                spec.from_state,
                spec.to_state,
                spec.probability,  # type: ignore[arg-type]  # a Rate is accepted too
                spec.callback if callbacks else None,
                chosen,
                profile=spec.profile,
                resource=spec.resource,
                hold=spec.hold,
            )
        return model.at_tick(self.tick_ms)

    def subject_factory(self, seed: int) -> Callable[[], Any]:
        """A fresh subject factory for a run with `seed`."""
        return self.subjects.make_factory(seed)

    def live_settings(
        self,
        *,
        live: bool | None = None,
        speed: float | None = None,
        max_lag_ms: int | None = None,
        on_lag: str | None = None,
        until_stopped: bool | None = None,
    ) -> LiveSpec:
        """The file's `live` settings with the given ones (not None) in their place.

        ``until_stopped`` applies only when live mode is on; asking for it explicitly without
        live mode is a `ModelError`.
        """
        changes: dict[str, Any] = {
            "enabled": live,
            "speed": speed,
            "max_lag_ms": max_lag_ms,
            "on_lag": on_lag,
            "until_stopped": until_stopped,
        }
        settings = dataclasses.replace(
            self.live, **{k: v for k, v in changes.items() if v is not None}
        )
        if settings.on_lag not in _ON_LAG:
            raise ModelError(f"on_lag must be one of {', '.join(_ON_LAG)}, got {on_lag!r}")
        if until_stopped and not settings.enabled:
            raise ModelError(
                "running until stopped needs live mode (live: {enabled: true}, or --live)"
            )
        return settings

    def _churn_sinks(self, sinks: Mapping[str, Any] | Sequence[Any]) -> list[Any]:
        if self.churn is None:
            return []
        if isinstance(sinks, Mapping):
            return [sinks[name] for name in self.churn_sinks if name in sinks]
        return list(sinks)

    def simulation(
        self,
        *,
        sinks: Mapping[str, Any] | Sequence[Any] | None = None,
        seed: int | None = None,
        progress: Callable[[int], None] | None = None,
        callbacks: bool = True,
        jitter: bool | None = None,
        live: bool | None = None,
        speed: float | None = None,
        max_lag_ms: int | None = None,
        on_lag: str | None = None,
        until_stopped: bool | None = None,
    ) -> Simulation:
        """A ready `Simulation` of this model file.

        Args:
            sinks: as in `build_model` (None builds the file's sinks); churn events go to
                the file's churn sinks, or to every sink of a list.
            seed: overrides the file's seed; when both are None a seed is picked.
            progress: called with the number of ticks done.
            callbacks: attach the callbacks.
            jitter, live, speed, max_lag_ms, on_lag, until_stopped: override the file's
                ``jitter:`` and ``live:`` settings when not None.
        """
        chosen = seed if seed is not None else self.seed
        if chosen is None:
            chosen = secrets.randbits(63)
        built = self.build_sinks() if sinks is None else sinks
        try:
            model = self.build_model(built, callbacks=callbacks)
            settings = self.live_settings(
                live=live,
                speed=speed,
                max_lag_ms=max_lag_ms,
                on_lag=on_lag,
                until_stopped=until_stopped,
            )
            wall_clock = settings.enabled and settings.timestamps == "wall"
            return Simulation(
                model,
                self.subjects.count,
                subject_factory=self.subject_factory(chosen),
                ticks=None if settings.enabled and settings.until_stopped else self.ticks,
                tick_ms=self.tick_ms,
                timestamp_start=None if wall_clock else self.timestamp_start,
                seed=chosen,
                progress=progress,
                jitter=self.jitter if jitter is None else jitter,
                live=settings.enabled,
                speed=settings.speed,
                max_lag_ms=settings.max_lag_ms,
                on_lag=settings.on_lag,
                arrivals=self.arrivals,
                arrivals_profile=self.arrivals_profile,
                churn=self.churn,
                churn_sinks=self._churn_sinks(built),
            )
        except BaseException:
            _close_quietly(built.values() if isinstance(built, Mapping) else built)
            raise

    def resume(
        self,
        checkpoint: str | os.PathLike[str],
        *,
        sinks: Mapping[str, Any] | Sequence[Any] | None = None,
        progress: Callable[[int], None] | None = None,
        callbacks: bool = True,
        live: bool | None = None,
        speed: float | None = None,
        max_lag_ms: int | None = None,
        on_lag: str | None = None,
    ) -> Simulation:
        """A `Simulation` that continues the run saved in `checkpoint` (`Simulation.checkpoint`).

        The seed, tick count, clock, jitter and every subject come from the checkpoint; the
        file's sinks are built again with file sinks opened for appending, so the output of
        the two runs together equals that of an uninterrupted run. Live settings may change.

        Args:
            checkpoint: the file `Simulation.checkpoint` wrote.
            sinks: as in `build_model`; None builds the file's sinks in append mode.
            progress, callbacks, live, speed, max_lag_ms, on_lag: as in `simulation`.

        Raises:
            RunError: the checkpoint is missing, unreadable, or of another model.
        """
        path = os.fspath(checkpoint)
        if not Path(path).is_file():
            raise RunError(f"{path}: no such checkpoint file")
        built = self.build_sinks(append=True) if sinks is None else sinks
        try:
            model = self.build_model(built, callbacks=callbacks)
            settings = self.live_settings(
                live=live, speed=speed, max_lag_ms=max_lag_ms, on_lag=on_lag
            )
            factory = _DeferredFactory() if self.arrivals is not None else None
            try:
                simulation = Simulation.resume(
                    path,
                    model,
                    progress=progress,
                    live=settings.enabled,
                    speed=settings.speed,
                    arrivals=self.arrivals,
                    arrivals_profile=self.arrivals_profile,
                    churn=self.churn,
                    churn_sinks=self._churn_sinks(built),
                    subject_factory=factory,
                )
            except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError) as exc:
                raise RunError(f"{path} cannot be read as a dogesim checkpoint: {exc}") from exc
            except ModelError as exc:
                raise RunError(f"{path}: cannot resume: {exc}") from None
            simulation.on_lag = settings.on_lag
            if settings.max_lag_ms is not None:
                simulation.max_lag_ms = float(settings.max_lag_ms)
            if factory is not None:
                # Newcomers must continue where the interrupted run's factory was: make it
                # again with the run's seed and create (and drop) as many subjects as were
                # made. The global RNGs this may touch are restored from the checkpoint when
                # the run starts.
                target = self.subject_factory(simulation.seed)
                for _ in range(len(simulation.subjects)):
                    target()
                factory.target = target
            return simulation
        except BaseException:
            _close_quietly(built.values() if isinstance(built, Mapping) else built)
            raise

    def run(self, **kwargs: Any) -> RunResult:
        """Build the simulation (see `simulation` for the arguments) and run it."""
        return self.simulation(**kwargs).run()

    def summary(self) -> str:
        """One line for humans: states, transitions, subjects, ticks, sinks, online settings."""
        sinks = ", ".join(f"{n} ({self.sinks[n].describe()})" for n in self.used_sinks())
        extras = []
        if self.arrivals is not None:
            shaped = " (calendar-shaped)" if self.arrivals_profile is not None else ""
            extras.append(f"arrivals {_chance_text(self.arrivals, ' per tick')}{shaped}")
        if self.churn is not None:
            extras.append(f"churn {_chance_text(self.churn, '% per tick')}")
        if self.resources:
            extras.append("resources " + ", ".join(f"{k}={v}" for k, v in self.resources.items()))
        if any(t.profile is not None for t in self.transitions):
            extras.append("calendar profiles")
        if self.jitter:
            extras.append("jitter")
        if self.live.enabled:
            extras.append(f"live x{self.live.speed:g}")
        more = f"; {', '.join(extras)}" if extras else ""
        return (
            f"{self.name}: {len(self.states)} states, {len(self.transitions)} transitions, "
            f"{self.subjects.count} subjects x {self.ticks} ticks of "
            f"{format_duration(self.tick_ms)} from {_format_timestamp(self.timestamp_start)}, "
            f"seed {self.seed if self.seed is not None else 'random'}; sinks: {sinks or 'none'}"
            f"{more}"
        )


def _chance_text(value: float | Rate, unit: str) -> str:
    return str(value) if isinstance(value, Rate) else f"{value:g}{unit}"


def _close_quietly(sinks: Iterable[Any]) -> None:
    """Close sinks after a failure to build the run (their own errors would hide it)."""
    for sink in sinks:
        close = getattr(sink, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()


def _read_transitions(
    src: _Source,
    reader: _Reader,
    states: Sequence[str],
    sink_names: Sequence[str],
    default_sinks: tuple[str, ...],
    model_name: str,
    *,
    tick_ms: int,
    probability_tick: int | None,
    profiles: Mapping[str, Profile],
    resources: Mapping[str, int],
) -> list[TransitionSpec]:
    items = reader.sequence("transitions")
    out: list[TransitionSpec] = []
    check = Model(
        states,
        states[0],
        name=model_name,
        tick_ms=probability_tick or tick_ms,
        resources=dict(resources),
    )
    for i, item in enumerate(items):
        path = f"transitions[{i}]"
        line = items.item_lines[i]
        if not isinstance(item, _Map):
            raise src.error(
                line, path, f"{_describe(item)}: give a mapping with {', '.join(_TRANSITION_KEYS)}"
            )
        t = _Reader(src, item, path)
        t.check_keys(_TRANSITION_KEYS, ("trigger", "from", "to", "probability"))
        trigger = t.string("trigger")
        ends = {}
        for key in ("from", "to"):
            state = t.string(key)
            if state not in states:
                hint = difflib.get_close_matches(state, states, n=1)
                maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise t.error(key, f"{state!r} is not a state{maybe}; states: {', '.join(states)}")
            ends[key] = state
        probability = _read_chance(t, "probability")
        callback = None
        callback_path = None
        if t.has("callback"):
            callback = _callable_at(t, "callback")
            callback_path = t.string("callback")
        chosen = _sink_names(t, "sinks", sink_names, default_sinks)
        profile = None
        profile_name = None
        if t.has("profile"):
            profile = _profile_at(t, "profile", profiles)
            raw = t.raw("profile")
            profile_name = str(raw) if isinstance(raw, str) else None
        resource = None
        if t.has("resource"):
            resource = t.string("resource")
            if resource not in resources:
                hint = difflib.get_close_matches(resource, list(resources), n=1)
                maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise t.error(
                    "resource",
                    f"resource {resource!r} is not declared{maybe}; resources under "
                    f"'resources:' are {', '.join(resources) or 'none'} (e.g. resources: "
                    f"{{{resource}: 5}})",
                )
        hold = 1
        if t.has("hold"):
            if resource is None:
                raise t.error("hold", "hold needs a resource to hold; add resource: NAME")
            hold = _read_hold(t, tick_ms)
        spec = TransitionSpec(
            trigger,
            ends["from"],
            ends["to"],
            probability,
            callback,
            callback_path,
            chosen,
            t.optional_string("description"),
            line,
            profile,
            profile_name,
            resource,
            hold,
        )
        try:
            check.add_transition(
                trigger,
                spec.from_state,
                spec.to_state,
                probability,  # type: ignore[arg-type]  # a Rate is accepted too
                profile=profile,
                resource=resource,
                hold=hold,
            )
        except ModelError as exc:
            raise src.error(line, path, str(exc)) from None
        out.append(spec)
    return out


def _check_run(spec: ModelSpec, src: _Source, top: _Reader) -> None:
    """Check what only the whole run shows: chances rescaled to the run's tick, churn added
    to every state, and calendar profiles at their peaks, each at most 100% per tick."""
    try:
        model = spec.build_model({}, callbacks=False)
    except ModelError as exc:
        raise top.error(
            "tick", f"rescaled to ticks of {format_duration(spec.tick_ms)}: {exc}"
        ) from None
    try:
        effective = Simulation(
            model,
            max(spec.subjects.count, 1),
            ticks=spec.ticks,
            tick_ms=spec.tick_ms,
            seed=0,
            seed_globals=False,
            arrivals=spec.arrivals,
            churn=spec.churn,
        ).model
    except ModelError as exc:
        raise top.error("churn" if spec.churn is not None else None, str(exc)) from None
    for state in effective.states:
        outgoing = effective.outgoing(state)
        peak = sum(t.probability * (t.profile.peak if t.profile else 1.0) for t in outgoing)
        if peak > 100 + 1e-9:
            profiled = [
                (i, t)
                for i, t in enumerate(spec.transitions)
                if t.from_state == state and t.profile is not None
            ]
            i, worst = profiled[-1]
            raise src.error(
                worst.line,
                f"transitions[{i}].profile",
                f"state {state!r}: at the peaks of their calendar profiles the outgoing "
                f"probabilities reach {peak:g}% per tick, at most 100%; lower the "
                "probabilities or the profile's multipliers",
            )


def _parse(
    text: str,
    source: str,
    directory: Path,
    *,
    subjects: int | None,
    ticks: int | None,
    seed: int | None,
    environ: Mapping[str, str] | None,
) -> ModelSpec:
    src = _Source(source, directory, os.environ if environ is None else environ)
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ModelError(f"{source}:{line}: this is not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ModelError(f"{source}: this is not valid YAML: {exc}") from None
    if not isinstance(data, _Map):
        raise ModelError(
            f"{source}:1: a model file is a mapping with keys {', '.join(_TOP_KEYS)}; "
            f"got {type(data).__name__}"
        )
    _interpolate(data, src, data.line, "")
    top = _Reader(src, data, "")
    top.check_keys(_TOP_KEYS, _TOP_REQUIRED)

    name = top.string("name") if top.has("name") else Path(source).stem
    states = top.string_list("states")
    if not states:
        raise top.error("states", "the state list is empty; give at least one state")
    duplicates = sorted({s for s in states if states.count(s) > 1})
    if duplicates:
        raise top.error("states", f"state {duplicates[0]!r} is listed twice")
    initial = top.string("initial_state")
    if initial not in states:
        raise top.error(
            "initial_state", f"{initial!r} is not one of the states {', '.join(states)}"
        )
    try:
        tick_ms = parse_duration(top.raw("tick"))
    except ValueError as exc:
        raise top.error("tick", str(exc)) from None
    probability_tick = None
    if top.has("probability_tick"):
        try:
            probability_tick = parse_duration(top.raw("probability_tick"))
        except ValueError as exc:
            raise top.error("probability_tick", str(exc)) from None
    n_ticks = top.integer("ticks", minimum=1)
    start = 0
    if top.has("start"):
        try:
            start = parse_timestamp(top.raw("start"))
        except ValueError as exc:
            raise top.error("start", str(exc)) from None
    file_seed = top.integer("seed", minimum=0) if top.has("seed") else None

    sink_specs: dict[str, SinkSpec] = {}
    if top.has("sinks"):
        sinks = top.mapping("sinks")
        for sink_name in sinks.node:
            if not isinstance(sink_name, str) or not sink_name:
                raise sinks.error(str(sink_name), f"sink name {_describe(sink_name)} is not text")
            sink_specs[sink_name] = _read_sink(src, sinks, sink_name)
    default_sinks: tuple[str, ...] = ()
    if top.has("default_sinks"):
        default_sinks = tuple(top.string_list("default_sinks"))
        for sink_name in default_sinks:
            if sink_name not in sink_specs:
                raise top.error(
                    "default_sinks",
                    f"no sink named {sink_name!r}; sinks defined under "
                    f"'sinks:' are {', '.join(sink_specs) or 'none'}",
                )
    subjects_spec = _read_subjects(src, top)
    profiles = _read_profiles(src, top)
    resources = _read_resources(top)
    transitions = _read_transitions(
        src,
        top,
        states,
        list(sink_specs),
        default_sinks,
        name,
        tick_ms=tick_ms,
        probability_tick=probability_tick,
        profiles=profiles,
        resources=resources,
    )

    arrivals: float | Rate | None = None
    arrivals_profile = None
    if top.has("arrivals"):
        if isinstance(top.raw("arrivals"), _Map):
            section = top.mapping("arrivals")
            section.check_keys(("rate", "profile"), ("rate",))
            arrivals = _read_arrival_rate(section, "rate")
            if section.has("profile"):
                arrivals_profile = _profile_at(section, "profile", profiles)
        else:
            arrivals = _read_arrival_rate(top, "arrivals")
    if subjects_spec.count == 0 and arrivals is None:
        raise top.mapping("subjects").error(
            "count", "0 subjects and no arrivals: give count >= 1, or arrivals: (e.g. 30 per hour)"
        )
    churn: float | Rate | None = None
    churn_sinks = default_sinks
    if top.has("churn"):
        if isinstance(top.raw("churn"), _Map):
            section = top.mapping("churn")
            section.check_keys(("rate", "sinks"), ("rate",))
            churn = _read_chance(section, "rate")
            churn_sinks = _sink_names(section, "sinks", list(sink_specs), default_sinks)
        else:
            churn = _read_chance(top, "churn")

    spec = ModelSpec(
        path=source,
        name=name,
        description=top.optional_string("description"),
        states=tuple(states),
        initial_state=initial,
        transitions=transitions,
        tick_ms=tick_ms,
        ticks=n_ticks,
        timestamp_start=start,
        seed=file_seed,
        subjects=subjects_spec,
        sinks=sink_specs,
        default_sinks=default_sinks,
        probability_tick=probability_tick,
        profiles=profiles,
        resources=resources,
        arrivals=arrivals,
        arrivals_profile=arrivals_profile,
        churn=churn,
        churn_sinks=churn_sinks,
        jitter=top.boolean("jitter", False),
        live=_read_live(top),
    )
    _check_run(spec, src, top)
    return _override(spec, subjects=subjects, ticks=ticks, seed=seed)


def _override(
    spec: ModelSpec, *, subjects: int | None, ticks: int | None, seed: int | None
) -> ModelSpec:
    for label, value, minimum in (
        ("subjects", subjects, 1),
        ("ticks", ticks, 1),
        ("seed", seed, 0),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < minimum
        ):
            raise ModelError(f"{label} must be a whole number >= {minimum}, got {value!r}")
    if subjects is not None:
        spec.subjects.count = subjects
    if ticks is not None:
        spec.ticks = ticks
    if seed is not None:
        spec.seed = seed
    return spec


def load_model_file(
    path: str | os.PathLike[str],
    *,
    subjects: int | None = None,
    ticks: int | None = None,
    seed: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> ModelSpec:
    """Read and validate the model file at `path`.

    Args:
        path: the YAML file.
        subjects: overrides ``subjects.count``.
        ticks: overrides ``ticks``.
        seed: overrides ``seed``.
        environ: the variables for ``${...}`` (default: `os.environ`).

    Raises:
        ModelError: the file is missing, not YAML, or invalid; the message starts with
            ``file:line: key:`` and says what would be right.
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"{source}: no such model file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{source}: cannot read the model file: {exc}") from None
    return _parse(
        text,
        source,
        Path(source).resolve().parent,
        subjects=subjects,
        ticks=ticks,
        seed=seed,
        environ=environ,
    )


def load_model_text(
    text: str,
    *,
    source: str = "<model>",
    subjects: int | None = None,
    ticks: int | None = None,
    seed: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> ModelSpec:
    """Like `load_model_file`, from YAML text; `source` names it in messages."""
    return _parse(
        text, source, Path.cwd(), subjects=subjects, ticks=ticks, seed=seed, environ=environ
    )


# -- writing -------------------------------------------------------------------------------


def _percent(value: float, digits: int = 6) -> float:
    """`value` (a percentage) rounded *down* to `digits` significant digits.

    Rounding down keeps the outgoing sum of a state at or below the exact one, so a fitted
    model whose probabilities sum to 100% is still valid when written.
    """
    if value <= 0 or not math.isfinite(value):
        return 0.0 if value <= 0 else value
    exponent = math.floor(math.log10(value))
    quantum = Decimal(1).scaleb(exponent - digits + 1)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_FLOOR))


def _escape(value: Any) -> Any:
    """`value` with every ``${`` in its strings written as ``$${`` (read back literally)."""
    if isinstance(value, Mapping):
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape(v) for v in value]
    if isinstance(value, str):
        return value.replace("${", "$${")
    return value


def _online_settings(spec: ModelSpec) -> list[str]:
    """The online settings of `spec` that `dump_model` does not write."""
    found = {
        "rates": any(isinstance(t.probability, Rate) for t in spec.transitions)
        or spec.probability_tick is not None,
        "calendar profiles": any(t.profile is not None for t in spec.transitions),
        "resources": bool(spec.resources),
        "arrivals": spec.arrivals is not None,
        "churn": spec.churn is not None,
        "jitter": spec.jitter,
        "live settings": spec.live != LiveSpec(),
    }
    return [name for name, present in found.items() if present]


def dump_model(
    model: Model | ModelSpec,
    path: str | os.PathLike[str] | None = None,
    *,
    tick_ms: int | None = None,
    ticks: int | None = None,
    subjects: int | None = None,
    timestamp_start: int | None = None,
    seed: int | None = None,
    name: str | None = None,
    description: str | None = None,
    descriptions: Mapping[tuple[str, str], str] | None = None,
    sinks: Mapping[str, Mapping[str, Any]] | None = None,
    default_sinks: Sequence[str] | None = None,
    header: str | None = None,
    subjects_section: Mapping[str, Any] | None = None,
) -> str:
    """Write a model file for `model` and return its text (written to `path` when given).

    Args:
        model: a `Model` (then `tick_ms`, `ticks` and `subjects` are needed) or a loaded
            `ModelSpec` (its values are the defaults).
        path: where to write; None only returns the text.
        tick_ms, ticks, subjects, timestamp_start, seed, name, description: the run's settings.
        descriptions: free text per transition, keyed by ``(from_state, trigger)``.
        sinks: the ``sinks:`` section as plain settings (import paths as strings).
        default_sinks: the ``default_sinks:`` list.
        header: comment lines written at the top.
        subjects_section: how subjects are made (``factory``/``factory_args`` or
            ``attributes``, as plain settings); default: the `ModelSpec`'s, else plain
            subjects with an ``id``.

    Callbacks are written as import paths when they can be imported back; others are left
    out (with a comment in the header). The text is loaded back before it is written, so a
    file that `load_model_file` would reject is never produced.
    """
    spec = model if isinstance(model, ModelSpec) else None
    bare = model.model if isinstance(model, ModelSpec) else model
    tick_ms = tick_ms if tick_ms is not None else (spec.tick_ms if spec else None)
    ticks = ticks if ticks is not None else (spec.ticks if spec else None)
    subjects = subjects if subjects is not None else (spec.subjects.count if spec else None)
    if tick_ms is None or ticks is None or subjects is None:
        raise ModelError("dump_model: give tick_ms, ticks and subjects for a bare Model")
    if timestamp_start is None:
        timestamp_start = spec.timestamp_start if spec else 0
    if seed is None and spec is not None:
        seed = spec.seed
    notes: list[str] = []
    doc: dict[str, Any] = {"name": name or (spec.name if spec else bare.name)}
    text_description = description or (spec.description if spec else None)
    if text_description:
        doc["description"] = text_description
    if seed is not None:
        doc["seed"] = seed
    doc["states"] = list(bare.states)
    doc["initial_state"] = bare.initial_state
    doc["tick"] = format_duration(tick_ms)
    doc["ticks"] = ticks
    doc["start"] = _format_timestamp(timestamp_start)
    subjects_doc: dict[str, Any] = {"count": subjects}
    if subjects_section is not None:
        subjects_doc.update({k: v for k, v in subjects_section.items() if k != "count"})
    elif spec is not None and spec.subjects.factory_path:
        subjects_doc["factory"] = spec.subjects.factory_path
        if spec.subjects.factory_args:
            subjects_doc["factory_args"] = spec.subjects.factory_args
    elif spec is not None and spec.subjects.attributes:
        subjects_doc["attributes"] = {k: d.describe() for k, d in spec.subjects.attributes.items()}
    doc["subjects"] = subjects_doc
    if sinks is None and spec is not None and spec.sinks:
        notes.append("sinks were not written back; add a `sinks:` section to send events")
    if spec is not None and _online_settings(spec):
        notes.append(
            f"{', '.join(_online_settings(spec))} were not written back; probabilities are "
            f"per tick of {format_duration(tick_ms)}"
        )
    if sinks:
        doc["sinks"] = {k: dict(v) for k, v in sinks.items()}
    if default_sinks:
        doc["default_sinks"] = list(default_sinks)
    transitions = []
    for t in bare.transitions:
        entry: dict[str, Any] = {
            "trigger": t.trigger,
            "from": t.from_state,
            "to": t.to_state,
            "probability": _percent(float(t.probability)),
        }
        if t.action_callback is not None:
            target = _import_name(t.action_callback)
            if target is None:
                notes.append(f"callback of {t.trigger!r} is not importable and was left out")
            else:
                entry["callback"] = target
        note = (descriptions or {}).get((t.from_state, t.trigger))
        if note:
            entry["description"] = note
        transitions.append(entry)
    doc["transitions"] = transitions
    body = yaml.safe_dump(_escape(doc), sort_keys=False, allow_unicode=True, width=100)
    comments = [*(header.splitlines() if header else []), *notes]
    text = "".join(f"# {line}\n" if line else "#\n" for line in comments) + body
    target_name = os.fspath(path) if path is not None else "<dump_model>"
    load_model_text(text, source=target_name, environ={})
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
