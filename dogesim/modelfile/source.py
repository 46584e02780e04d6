"""Reading model files: YAML with line numbers, errors that name file, line and key,
``${ENV}`` interpolation, and typed readers of scalars, names, import paths and timestamps.

Booleans and numbers are read as in YAML 1.2 (``1e-3`` a float, ``1:30`` text, ``010`` ten);
`_ModelDumper` writes files that read back the same. ``${VAR}``, ``${VAR:-default}`` (unset
or empty) and ``${VAR-default}`` (unset) follow the shell; the substituted values that are
secrets are registered with `dogesim.redact` (`_register_secrets`), the others stay visible.

The loader bounds what a file can cost before any of it is interpreted: files larger than
`MAX_MODEL_BYTES` are refused before parsing (`read_model_text`), nesting deeper than
`MAX_DEPTH`, aliases that expand to more than `MAX_ALIAS_EXPANSION` extra values, and
integers longer than `MAX_INT_DIGITS` digits are refused at their line; an invalid
unquoted date (``2024-02-30``) stays text, for the key that reads it to refuse.
`MIN_TIMESTAMP`/`MAX_TIMESTAMP` bound times to what a calendar can print (years 1-9999).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import difflib
import importlib
import importlib.util
import math
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from dogesim import redact
from dogesim.errors import ModelError

#: How deeply mappings and lists may nest in a model file (real ones need about 6).
MAX_DEPTH = 64
#: How many values YAML aliases may add to a file beyond those written out in it.
MAX_ALIAS_EXPANSION = 100_000
#: The longest integer a model file may write (a 64-bit number has at most 20 digits).
MAX_INT_DIGITS = 40
#: Epoch milliseconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z.
MIN_TIMESTAMP = -62_135_596_800_000
MAX_TIMESTAMP = 253_402_300_799_999
#: The most ticks and subjects a run may have (beyond them a run would not end).
MAX_TICKS = 2**31 - 1
MAX_SUBJECTS = 10**9 - 1
#: The largest model file read (real ones are a few KB; a fitted cohort model with kernels
#: about 50 KB). Parsing costs about 12 s per MiB, so the limit bounds time and memory too.
MAX_MODEL_BYTES = 1024 * 1024
#: How much of a long value a message quotes.
_SHOWN_CHARS = 120


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
    """`yaml.SafeLoader` whose mappings and sequences record the line of every entry, with
    nesting depth and alias expansion bounded."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"values nest more than {MAX_DEPTH} levels deep; a model file needs a few",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return self.construct_document(node)


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand it by more than `MAX_ALIAS_EXPANSION` values
    (an alias bomb), counting each node once however often it is shared: linear time."""
    expanded: dict[int, int] = {}
    order: list[yaml.Node] = []
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        if id(node) in expanded:
            continue
        expanded[id(node)] = -1
        order.append(node)
        stack.extend(_children(node))
    for node in reversed(order):
        # Children come after their parents in `order`, so they are sized first; a child
        # still at -1 is an ancestor (a recursive alias), which construction refuses anyway.
        total = 1 + sum(max(expanded[id(c)], 0) for c in _children(node))
        expanded[id(node)] = min(total, 10 * MAX_ALIAS_EXPANSION)
    if expanded[id(root)] - len(order) > MAX_ALIAS_EXPANSION:
        raise yaml.composer.ComposerError(
            None,
            None,
            f"YAML aliases expand this file to more than {MAX_ALIAS_EXPANSION:,} values "
            "beyond those written in it; write the values out or use fewer aliases",
            root.start_mark,
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


class _HugeNumber(str):
    """An integer too long to read (more than `MAX_INT_DIGITS` digits), kept as its text so
    that the key reading it can say which key and what is wrong."""

    __slots__ = ()

    @property
    def digits(self) -> int:
        return sum(ch.isdigit() for ch in self)

    def problem(self) -> str:
        return f"a number of {self.digits} digits is out of range (at most {MAX_INT_DIGITS} digits)"


def _duration_ms(value: object) -> int:
    """`dogesim.rates.parse_duration` of a file's value, refusing a huge integer or a long
    text first (so that the message stays short).

    Raises:
        ValueError: not a duration.
    """
    from dogesim.rates import parse_duration

    if isinstance(value, _HugeNumber):
        raise ValueError(value.problem())
    if isinstance(value, str) and len(value) > 200:
        raise ValueError(f"{_describe(value)} is not a duration such as 500ms, 1s, 1m")
    return parse_duration(value)


def _construct_int(loader: _LineLoader, node: yaml.ScalarNode) -> Any:
    """A YAML 1.2 core integer: decimal (``010`` is ten), ``0o17`` or ``0x1F``."""
    if sum(ch.isdigit() for ch in node.value) > MAX_INT_DIGITS:
        # int() of it would be slow, or refused beyond 4300 digits: never convert it.
        return _HugeNumber(node.value)
    text = node.value.replace("_", "")
    if text[:2] in ("0o", "0x"):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


def _construct_timestamp(loader: _LineLoader, node: yaml.ScalarNode) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        # `2024-02-30` looks like a date but is none: keep the text, so the key that reads
        # it says what is wrong (and a description may say anything).
        return str(node.value)


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
_LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)

# Booleans and numbers as in YAML 1.2's core schema. YAML 1.1 also reads on/off/yes/no as
# booleans (a trigger or state named `on` became True), needs a dot in a float (`1e-3` was
# text), reads `1:30` as 90 (base 60) and `010` as 8 (octal). As in YAML 1.1 and Python,
# `_` may group digits (`1_000`).
_YAML_1_1_TYPES = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML_1_1_TYPES]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7][0-7_]*|0x[0-9a-fA-F][0-9a-fA-F_]*)$")
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)
_LineLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_LineLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789"))


class _ModelDumper(yaml.SafeDumper):
    """`yaml.SafeDumper` that also quotes text the model loader would read as a number
    (``1e3``, ``0o17``: plain to YAML 1.1), so a written file reads back the same."""


_ModelDumper.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_ModelDumper.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789"))


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
        text = f"{where}: {path}: {message}" if path else f"{where}: {message}"
        return ModelError(_shorten(redact.mask(text)))


# A value longer than a message should carry (a 100,000-character state name), quoted or
# in a list of names.
_LONG_QUOTED = re.compile(f"(?<!\\w)'([^'\\n]{{{_SHOWN_CHARS},}})'(?!\\w)")
_LONG_WORD = re.compile(f"[^\\s,']{{{2 * _SHOWN_CHARS},}}")


def _shorten(text: str) -> str:
    """`text` with every long quoted value or word cut to its start and its length."""
    keep = _SHOWN_CHARS // 2
    text = _LONG_QUOTED.sub(
        lambda m: f"'{m.group(1)[:keep]}...' ({len(m.group(1)):,} characters)", text
    )
    return _LONG_WORD.sub(
        lambda m: f"{m.group(0)[:keep]}... ({len(m.group(0)):,} characters)", text
    )


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    """A value as it should appear in a message: repr of plain str, not of our subclasses."""
    if isinstance(value, _HugeNumber):
        return f"{str(value)[:12]}... ({value.digits} digits, out of range)"
    if isinstance(value, str):
        text = repr(str(value))
    elif isinstance(value, (_Map, _Seq)):
        text = repr(_plain(value))
    else:
        text = repr(value)
    if len(text) > _SHOWN_CHARS:
        # A message quotes the start of a huge value, not all of it.
        text = f"{text[:_SHOWN_CHARS]}... ({len(text):,} characters)"
    return text


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

# ${NAME}, ${NAME:-default} (unset or empty: the default) and ${NAME-default} (unset only).
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


def _interpolate_str(text: str, src: _Source, line: int, path: str, key: object = None) -> str:
    """`text` with every ``${...}`` replaced, its secrets registered (`_register_secrets`);
    `key` is the key whose value `text` is (or whose list holds it)."""
    if "${" not in text:
        return text
    out: list[str] = []
    filled: list[tuple[int, int, str]] = []  # (start, end, variable) of each substituted value
    size = 0
    position = 0
    while True:
        start = text.find("${", position)
        if start < 0:
            out.append(text[position:])
            break
        if start > 0 and text[start - 1] == "$":
            # `$${` is a literal `${`: drop the escaping dollar.
            out.append(text[position : start - 1] + "${")
            size += start + 1 - position
            position = start + 2
            continue
        out.append(text[position:start])
        size += start - position
        match = _ENV_REF.match(text, start)
        if match is None:
            raise src.error(
                line,
                path,
                f"malformed reference in {text!r} at {text[start : start + 20]!r}: write "
                "${NAME}, ${NAME:-default} or ${NAME-default} (and $${ for a literal ${)",
            )
        value = _env_value(src, match, text, line, path)
        out.append(value)
        filled.append((size, size + len(value), match.group(1)))
        size += len(value)
        position = match.end()
    result = "".join(out)
    _register_secrets(result, filled, key)
    return _Interpolated(result)


def _env_value(src: _Source, match: re.Match[str], text: str, line: int, path: str) -> str:
    """The value of one reference: the variable's, or its default as a shell gives it
    (``:-`` when unset or empty, ``-`` when unset)."""
    name, operator, default = match.group(1), match.group(2), match.group(3)
    value = src.environ.get(name)
    if operator == ":-" and not value:
        return default
    if operator == "-" and value is None:
        return default
    if value is None:
        raise src.error(
            line,
            path,
            f"environment variable {name} is not set (in {text!r}); set it, or give a "
            f"default with ${{{name}:-value}} or ${{{name}-value}}",
        )
    return value


#: Variables named like secrets that are none: the shell's working directories (``PWD`` is
#: also ODBC's password keyword, hence the exception).
_PLAIN_VARIABLES = frozenset({"PWD", "OLDPWD"})


def _register_secrets(result: str, filled: list[tuple[int, int, str]], key: object) -> None:
    """Register for masking the substituted values that are secrets; the others (a topic, a
    path, a count) stay visible in messages.

    A value is a secret when its variable is named like one (``${DB_PASSWORD}``), when the
    key it is the value of is (``sasl.password: ${X}``: then the whole value is), or when it
    lands in a URL's password or a secret query parameter (``postgresql://u:${X}@h``); of a
    whole URL from the environment (``url: ${DATABASE_URL}``) its password is. A secret
    written literally in the file is not registered here: URLs are masked by their
    structure, and secret sink settings by `dogesim.modelfile.sinkkeys`.
    """
    if not filled:
        return
    spans = redact.secret_spans(result)
    if redact.is_secret_key(key):
        part = redact.secret_part(key, result)
        spans.append((len(result) - len(part), len(result)))
    for start, end, name in filled:
        if redact.is_secret_key(name) and name not in _PLAIN_VARIABLES:
            redact.register_setting(name, result[start:end])
        for low, high in spans:
            if low < end and start < high:  # a secret from (in part) the environment
                redact.register_secret(result[low:high])
                redact.register_secret(result[max(start, low) : min(end, high)])


def _interpolate(
    node: Any,
    src: _Source,
    line: int,
    path: str,
    seen: set[int] | None = None,
    key: object = None,
) -> Any:
    """Replace ``${...}`` in every string value under `node` (keys are left alone); `key` is
    the key whose value `node` is (secret keys make their values secrets).

    A container shared through a YAML alias is visited once (`seen`): twice would undo
    ``$${`` escapes and cost as much as the expanded file.
    """
    if isinstance(node, (_Map, _Seq)):
        seen = set() if seen is None else seen
        if id(node) in seen:
            return node
        seen.add(id(node))
    if isinstance(node, _Map):
        for child in list(node):
            at = node.key_lines.get(child, node.line)
            node[child] = _interpolate(node[child], src, at, _join(path, str(child)), seen, child)
        return node
    if isinstance(node, _Seq):
        for i, item in enumerate(node):
            node[i] = _interpolate(item, src, node.item_lines[i], _join(path, i), seen, key)
        return node
    if isinstance(node, str):
        return _interpolate_str(node, src, line, path, key)
    return node


# -- scalar readers --------------------------------------------------------------------------


def parse_timestamp(value: object) -> int:
    """Epoch milliseconds from an int (already ms), an ISO-8601 string, a date or a datetime.

    A date or a datetime without a time zone is taken as UTC.

    Raises:
        ValueError: the value is none of those.
    """
    if isinstance(value, _HugeNumber):
        raise ValueError(value.problem())
    ms = _timestamp_ms(value)
    if not MIN_TIMESTAMP <= ms <= MAX_TIMESTAMP:
        raise ValueError(
            f"{ms} ms is outside the calendar (years 1 to 9999, epoch ms {MIN_TIMESTAMP} to "
            f"{MAX_TIMESTAMP})"
        )
    return ms


def _timestamp_ms(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d{1,40}", text):
            return int(text)
        iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
        try:
            value = _dt.datetime.fromisoformat(iso)
        except (ValueError, OverflowError):
            raise ValueError(
                f"{text!r} is not an ISO-8601 time (e.g. 2024-01-01T00:00:00Z) nor epoch "
                "milliseconds"
            ) from None
    if isinstance(value, _dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=_dt.timezone.utc)
        # Exact integer arithmetic: a float timestamp loses milliseconds far from 1970.
        return (moment - _EPOCH) // _dt.timedelta(milliseconds=1)
    if isinstance(value, _dt.date):
        midnight = _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc)
        return (midnight - _EPOCH) // _dt.timedelta(milliseconds=1)
    raise ValueError(f"{value!r} is not a time: give ISO-8601 or epoch milliseconds")


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _format_timestamp(ms: int) -> str:
    if not MIN_TIMESTAMP <= ms <= MAX_TIMESTAMP:
        return f"epoch ms {ms}"
    moment = _EPOCH + _dt.timedelta(milliseconds=ms)
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
            # A required key set to null (`path: null`, `path:`) is as missing as an absent one.
            if self.node.get(key) is None:
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
        if isinstance(value, _HugeNumber):
            raise self.error(key, value.problem())
        if isinstance(value, _Interpolated):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"{_describe(value)} is not a number")
        if isinstance(value, int) and abs(value) > 1e300:
            raise self.error(key, f"{_describe(value)} is out of range")
        if not math.isfinite(float(value)):
            raise self.error(key, f"{_describe(value)} is not a finite number")
        return float(value)

    def integer(self, key: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.node.get(key)
        if isinstance(value, _HugeNumber):
            raise self.error(key, value.problem())
        if isinstance(value, _Interpolated):
            with contextlib.suppress(ValueError):
                value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"{_describe(value)} is not a whole number")
        if minimum is not None and value < minimum:
            raise self.error(key, f"{value} is too small; it must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"{value} is too large; it must be at most {maximum:,}")
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

    def name(self, key: str) -> str:
        """A name (a trigger): a non-empty string without control characters."""
        value = self.string(key)
        problem = _name_problem(value)
        if problem is not None:
            raise self.error(key, problem)
        return value

    def name_list(self, key: str) -> list[str]:
        """Names (states): each a non-empty string without control characters."""
        names = self.string_list(key)
        raw = self.node.get(key)
        for i, value in enumerate(names):
            problem = _name_problem(value)
            if problem is not None:
                if not isinstance(raw, _Seq):
                    raise self.error(key, problem)
                raise self.src.error(raw.item_lines[i], f"{self.where(key)}[{i}]", problem)
        return names

    def import_path(self, key: str) -> Any:
        return _resolve(self.string(key), self.src, self.line(key), self.where(key))


# Text-direction controls: invisible, they make a name read as another (U+202E reverses).
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _name_problem(text: str) -> str | None:
    """Why `text` cannot be a name (it holds NUL, a newline or another control character,
    a line separator, a text-direction control or half a surrogate pair), or None."""
    for ch in text:
        if ch in _BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            return (
                f"{_describe(text)} holds the control character {ch!a}; a name is "
                "printable text (letters, digits, spaces, punctuation)"
            )
    return None


def _import_near(module_name: str, directory: Path) -> Any:
    """Import `module_name`, looking first in the model file's folder (as Python looks first
    in a script's folder), so that ``helpers:my_callback`` finds ``helpers.py`` beside it."""
    top = module_name.split(".")[0]
    local = directory / f"{top}.py"
    if not (local.is_file() or (directory / top / "__init__.py").is_file()):
        return importlib.import_module(module_name)
    folder = str(directory.resolve())
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(module_name)
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)


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
        obj: Any = _import_near(module_name, src.directory)
    except BaseException as exc:
        # A module may sys.exit(), raise KeyboardInterrupt or anything else at import: the
        # user must learn which module of which file did it, not see a bare exit.
        raise src.error(
            line,
            path,
            f"cannot import module {module_name!r} for {target!r}: {type(exc).__name__}: {exc}",
        ) from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except Exception:
            raise src.error(
                line, path, f"{target!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    return obj


def _check_call(reader: _Reader, key: str, obj: Any, *args: Any, as_: str, **kwargs: Any) -> None:
    """Refuse `obj` at `key` when its signature cannot take the call the run will make
    (``os:system`` as a factory); objects without a readable signature pass."""
    import inspect

    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise reader.error(
            key, f"{reader.string(key)!r} cannot be called as {as_}: {exc}"
        ) from None


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


def read_model_text(source: str) -> str:
    """The text of the model file at `source`, read in at most `MAX_MODEL_BYTES` + 1 bytes
    (so an endless device or a huge file is refused at once, not read into memory).

    Raises:
        ModelError: missing, unreadable, larger than the limit, or not UTF-8.
    """
    try:
        with open(source, "rb") as handle:
            data = handle.read(MAX_MODEL_BYTES + 1)
    except FileNotFoundError:
        raise ModelError(f"{source}: no such model file") from None
    except OSError as exc:
        raise ModelError(f"{source}: cannot read the model file: {exc}") from None
    if len(data) > MAX_MODEL_BYTES:
        raise ModelError(
            f"{source}: the file is larger than {MAX_MODEL_BYTES // (1024 * 1024)} MiB, the "
            "most a model file may be (real ones are a few KB); is it the right file?"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"{source}: cannot read the model file: {exc}") from None
