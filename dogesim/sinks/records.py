"""The records the file sinks write by default, and how subjects become JSON.

- `Mapper`: the type of a mapper, ``(timestamp, subject, transition) -> record``.
- `default_record`: the JSON Lines default (timestamp, trigger, states, the subject's fields).
- `flat_record`: the CSV default (`default_record` with nested keys joined by dots).
- `subject_fields`, `subjects_fields`: a dataclass subject's fields as a dict (one, or a
  tick's at once), read by functions compiled per class.
- `dataclass_names(subjects)`: the field names when all are instances of one dataclass.
- `field_names(kind)`: the field names of one dataclass (cached), or None.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = [
    "Mapper",
    "dataclass_names",
    "default_record",
    "field_names",
    "flat_record",
    "subject_fields",
    "subjects_fields",
]

#: Turns one event ``(timestamp, subject, transition)`` into the record that is written.
Mapper = Callable[[int, Any, "Transition"], Mapping[str, Any]]


#: Per dataclass: a function giving an instance's fields as a dict (compiled once per class).
_FIELDS_CACHE: dict[type, Callable[[Any], dict[str, Any]]] = {}


def _fields_reader(names: tuple[str, ...]) -> Callable[[Any], dict[str, Any]]:
    """``obj -> {name: obj.name, ...}`` for these field names, in their order.

    Generated as one dict display, the way `dataclasses` generates ``__init__``: ten times
    faster than zipping names with an attrgetter's tuple, which matters once per event.
    """
    body = ", ".join(f"{name!r}: obj.{name}" for name in names)
    namespace: dict[str, Any] = {}
    exec(f"def fields_of(obj):\n    return {{{body}}}\n", namespace)
    reader: Callable[[Any], dict[str, Any]] = namespace["fields_of"]
    return reader


def subject_fields(subject: Any) -> Any:
    """The subject as a dict of its fields, or its ``str()`` when it has none.

    Dataclasses give their fields (shallow: nested values are converted when written),
    mappings their items, other objects their ``vars()``; objects without attributes (ints,
    strings, slotted classes) are written as ``str(subject)``.
    """
    reader = _FIELDS_CACHE.get(type(subject))
    if reader is not None:
        return reader(subject)
    if dataclasses.is_dataclass(subject) and not isinstance(subject, type):
        names = tuple(f.name for f in dataclasses.fields(subject))
        # Field names are identifiers (a class body cannot declare others).
        reader = _FIELDS_CACHE[type(subject)] = _fields_reader(names)
        return reader(subject)
    if isinstance(subject, Mapping):
        return dict(subject)
    try:
        return dict(vars(subject))
    except TypeError:
        return str(subject)


def default_record(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
    """The default record: timestamp, trigger, from_state, to_state and the subject's fields."""
    return {
        "timestamp": timestamp,
        "trigger": transition.trigger,
        "from_state": transition.from_state,
        "to_state": transition.to_state,
        "subject": subject_fields(subject),
    }


#: Per tuple of field names: a function giving many instances' fields as dicts (compiled
#: once per dataclass's fields).
_FIELDS_LIST_CACHE: dict[tuple[str, ...], Callable[[Sequence[Any]], list[dict[str, Any]]]] = {}


def _fields_list_reader(names: tuple[str, ...]) -> Callable[[Sequence[Any]], list[dict[str, Any]]]:
    """``objs -> [{name: obj.name, ...}, ...]`` for these field names: `_fields_reader` as
    one list display, no Python call per object."""
    body = ", ".join(f"{name!r}: s.{name}" for name in names)
    namespace: dict[str, Any] = {}
    exec(f"def fields_of_all(subjects):\n    return [{{{body}}} for s in subjects]\n", namespace)
    reader: Callable[[Sequence[Any]], list[dict[str, Any]]] = namespace["fields_of_all"]
    return reader


def dataclass_names(subjects: Sequence[Any]) -> tuple[str, ...] | None:
    """The field names when all `subjects` are instances of one dataclass, else None."""
    kinds = set(map(type, subjects))
    if len(kinds) != 1:
        return None
    return field_names(kinds.pop())


def field_names(kind: type) -> tuple[str, ...] | None:
    """The field names of the dataclass `kind`, or None when it is not one."""
    names = _NAMES_CACHE.get(kind)
    if names is None:
        if not dataclasses.is_dataclass(kind):
            return None
        names = _NAMES_CACHE[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return names


#: Per dataclass: its field names (`dataclass_names`).
_NAMES_CACHE: dict[type, tuple[str, ...]] = {}


def subjects_fields(subjects: Sequence[Any]) -> list[dict[str, Any]] | None:
    """`subject_fields` of each subject, made at once when all are instances of one
    dataclass (the engine's usual tick); None otherwise, or when reading a field fails."""
    names = dataclass_names(subjects)
    if names is None:
        return None
    reader = _FIELDS_LIST_CACHE.get(names)
    if reader is None:
        reader = _FIELDS_LIST_CACHE[names] = _fields_list_reader(names)
    try:
        return reader(subjects)
    except Exception:
        return None  # the per-event path meets the failure at its event


#: Types written as they are, checked before the (slower) abstract Mapping test.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if type(value) in _SCALARS:
        out[prefix] = value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        _flatten(prefix, subject_fields(value), out)
    else:
        out[prefix] = value


def flat_record(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
    """The default CSV record: `default_record` with nested keys joined by dots.

    A `User(user_id=1, balance=5)` subject becomes the columns ``subject.user_id`` and
    ``subject.balance``.
    """
    out: dict[str, Any] = {}
    _flatten("", default_record(timestamp, subject, transition), out)
    return out


def _json_default(value: Any) -> Any:
    """Converts the values `json` cannot write by itself; anything else is an error."""
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return subject_fields(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, (Path, uuid.UUID)):
        return str(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON serializable")


#: How a default record's line ends when its subject is None.
_NULL_SUBJECT = b'"subject":null}\n'
