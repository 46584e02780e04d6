"""Compiling a payload template into a mapper function.

- `Template`: a checked template (all errors are raised here, at build time); `mapper(seed)`
  gives a fresh ``(timestamp, subject, transition) -> payload`` function for one run, and
  `rebindable(seed)` one that ``rebind(seed)`` starts again for another run.
- `compile_template`: ``Template(spec, ...).mapper(seed)`` in one call.
- `TemplateSubjectFactory`: makes subjects whose attributes come from a subject template
  (Faker names, sequence ids, references to other populations).
- `new_run_counter`: a counter shared by the mappers of one run, for ``{seq: run}``.

How it is fast: the template is turned into the source of one Python function returning one
dict display (``{'id': subject.id, 'at': _t3(timestamp), ...}``), built from checked parts
only (attribute paths of identifiers, whitelisted expressions, names of closure values), so
a templated mapper does the same work as a hand-written one. Constants, Faker providers,
relations and counters are closure variables of that function; nothing is looked up by
name per event.

How it is reproducible: each run's mapper gets new counters, a new Faker per locale seeded
from ``SeedSequence([run seed, *template path, *locale])`` and a new random stream per
``ref`` field seeded from ``SeedSequence([run seed, *field path])``. The same run seed and
template path give the same values, byte for byte (for a given Faker version), whatever
other templates or sinks exist.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

from dogesim.errors import ModelError, shown
from dogesim.templates.fields import HELPERS, Unit, read_field

__all__ = ["Template", "TemplateSubjectFactory", "compile_template", "new_run_counter"]


#: The mapper's arguments per template kind.
_ARGUMENTS = {
    "event": "timestamp, subject, transition",
    "key": "subject, transition",
    "subject": "index",
}


def _same(value: Any) -> Any:
    return value


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


#: Encoders of a mapper's result: as built, compact JSON, or text.
_ENCODERS: dict[str | None, Callable[[Any], Any]] = {
    None: _same,
    "json": json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode,
    "text": _text,
}


def new_run_counter(start: int = 0) -> Callable[[], int]:
    """A counter 0, 1, 2 ... to share between the mappers of one run (``{seq: run}``)."""
    return itertools.count(start).__next__


class Template:
    """A payload template, checked and compiled once.

    Args:
        spec: the template: a nested mapping (or list, or one directive) of fields; see
            `dogesim.templates.fields` for the directives.
        path: where the template is (``sinks.orders.value``): the start of every field path
            in messages, and part of the seeds of its Faker and relations.
        kind: ``"event"`` for a sink's value or row, ``(timestamp, subject, transition)``;
            ``"key"`` for a Kafka key function, ``(subject, transition)`` (no time fields);
            ``"subject"`` for a subject factory, ``(index)``.
        locale: the Faker locale (``"de_DE"``, or a list for several); Faker's default when
            None. A ``faker`` field may give its own ``locale``.
        pools: the populations (`dogesim.relations.EntityPool`) ``ref`` fields pick from.

    Raises:
        ModelError: a field is invalid; the message names its path and value.
    """

    def __init__(
        self,
        spec: Any,
        *,
        path: str = "value",
        kind: str = "event",
        locale: str | list[str] | None = None,
        pools: Mapping[str, Any] | None = None,
    ) -> None:
        if kind not in _ARGUMENTS:
            raise ModelError(
                f"{path}: template kind {shown(kind)} must be one of {', '.join(_ARGUMENTS)}"
            )
        self.spec = spec
        self.path = path
        self.kind = kind
        unit = Unit(path, kind, locale, pools)
        self.source = read_field(unit, spec, path)
        self._unit = unit
        names = [*HELPERS, *unit.constants, *unit.per_run, "_explain", "_Exception", "_encode"]
        self._closure = list(dict.fromkeys(names))
        args = _ARGUMENTS[kind]
        leaves = ", ".join(f"({p!r}, lambda {args}: {s})" for p, s in unit.leaves)
        # Two variants, so a mapper without an encoder pays no extra call per event.
        self._codes = {
            wrapped: compile(
                f"def _make({', '.join(self._closure)}):\n"
                f"    def mapper({args}):\n"
                f"        try:\n"
                f"            return {f'_encode({self.source})' if wrapped else self.source}\n"
                f"        except _Exception as exc:\n"
                f"            raise _explain(exc, {args}) from exc\n"
                f"    return mapper, [{leaves}]\n",
                f"<template {path}>",
                "exec",
            )
            for wrapped in (False, True)
        }

    def mapper(
        self,
        seed: int = 0,
        run_counter: Callable[[], int] | None = None,
        *,
        encode: str | None = None,
    ) -> Any:
        """A new mapper for one run with `seed`: fresh counters, Faker and relation streams.

        Args:
            seed: the run's seed.
            run_counter: the counter ``{seq: run}`` fields draw from; share one
                (`new_run_counter`) between the templates of a run. A new one when None.
            encode: None (the payload as built), ``"json"`` (compact JSON text, for Kafka
                values) or ``"text"`` (``str`` of the payload, None kept: for Kafka keys).
        """
        if encode not in _ENCODERS:
            raise ModelError(
                f"{self.path}: encode {shown(encode)}; give one of "
                f"{', '.join(str(e) for e in _ENCODERS)}"
            )
        counter = run_counter if run_counter is not None else new_run_counter()
        built: dict[str, Any] = {}
        for name, factory in self._unit.per_run.items():
            built[name] = factory(seed, counter, built)
        leaves: list[tuple[str, Callable[..., Any]]] = []

        def explain(exc: Exception, *event: Any) -> ModelError:
            return self._explain(leaves, exc, event)

        values = {**HELPERS, **self._unit.constants, **built}
        values["_explain"] = explain
        values["_Exception"] = Exception
        values["_encode"] = _ENCODERS[encode]
        namespace: dict[str, Any] = {"__builtins__": {}}
        # The checked source built in __init__, nothing else.
        exec(self._codes[encode is not None], namespace)
        mapper, found = namespace["_make"](*(values[name] for name in self._closure))
        leaves.extend(found)
        mapper.template = self
        return mapper

    def rebindable(
        self,
        seed: int = 0,
        run_counter: Callable[[], int] | None = None,
        *,
        encode: str | None = None,
    ) -> Any:
        """`mapper`, plus ``rebind(seed, run_counter=None)`` to start it on another run.

        ``rebind`` gives the same function object the fresh counters, Faker and relation
        streams `mapper` would (by replacing its closure's values), so a sink built around
        it before the run's seed is known needs no wrapper call per event.
        """
        mapper = self.mapper(seed, run_counter, encode=encode)

        def rebind(seed: int, run_counter: Callable[[], int] | None = None) -> None:
            fresh = self.mapper(seed, run_counter, encode=encode)
            for old, new in zip(mapper.__closure__ or (), fresh.__closure__ or (), strict=True):
                old.cell_contents = new.cell_contents

        mapper.rebind = rebind
        return mapper

    def _explain(
        self, leaves: list[tuple[str, Callable[..., Any]]], exc: Exception, event: tuple[Any, ...]
    ) -> ModelError:
        """The error naming the first field that fails for `event` (re-evaluated one by one)."""
        if self.kind == "event":
            where = f"event {getattr(event[2], 'trigger', '?')!r} at {event[0]}"
        elif self.kind == "key":
            where = f"key of event {getattr(event[1], 'trigger', '?')!r}"
        else:
            where = f"subject #{event[0]}"
        for path, leaf in leaves:
            try:
                leaf(*event)
            except Exception as inner:
                return ModelError(f"{path}: {type(inner).__name__}: {inner} ({where})")
        return ModelError(f"{self.path}: {type(exc).__name__}: {exc} ({where})")

    def __repr__(self) -> str:
        return f"Template(path={self.path!r}, kind={self.kind!r}, spec={shown(self.spec)})"


def compile_template(
    spec: Any,
    *,
    seed: int = 0,
    path: str = "value",
    locale: str | list[str] | None = None,
    pools: Mapping[str, Any] | None = None,
) -> Any:
    """A mapper ``(timestamp, subject, transition) -> payload`` for one run with `seed`.

    Shorthand for ``Template(spec, path=..., locale=..., pools=...).mapper(seed)``; build
    the `Template` once and call `Template.mapper` per run when there are several runs.

    Raises:
        ModelError: a field is invalid; the message names its path and value.
    """
    return Template(spec, path=path, locale=locale, pools=pools).mapper(seed)


class TemplateSubjectFactory:
    """Makes subjects (``SimpleNamespace``) whose attributes come from a subject template.

    Args:
        spec: a mapping of attribute name -> template (``const``, ``expr`` over ``index``,
            ``seq: subject``, ``faker``, ``ref``, nested mappings). Without an ``id``
            attribute, subjects get ``id`` = 0, 1, 2 ...
        seed: the run's seed.
        path: the template's path (``subjects.attributes``), for messages and seeds.
        locale: the Faker locale.
        pools: populations ``ref`` attributes pick from.
        pool: a population this factory's subjects join as they are created (their
            ``id`` attribute, weighted by the attribute named `weight` when given).
        weight: the attribute holding the subject's weight in `pool`.

    Raises:
        ModelError: the template is not a mapping of identifiers to templates, or a field
            is invalid.
    """

    def __init__(
        self,
        spec: Mapping[str, Any],
        seed: int = 0,
        *,
        path: str = "subjects.attributes",
        locale: str | list[str] | None = None,
        pools: Mapping[str, Any] | None = None,
        pool: Any = None,
        weight: str | None = None,
    ) -> None:
        if not isinstance(spec, Mapping):
            raise ModelError(f"{path}: {shown(spec)} is not a mapping of attribute templates")
        for name in spec:
            if not isinstance(name, str) or not name.isidentifier():
                raise ModelError(f"{path}: attribute name {shown(name)} is not an identifier")
        if weight is not None and weight not in spec:
            raise ModelError(f"{path}: weight attribute {weight!r} is not one of the attributes")
        fields = dict(spec) if "id" in spec else {"id": {"seq": "subject"}, **spec}
        self.template = Template(
            {"object": fields}, path=path, kind="subject", locale=locale, pools=pools
        )
        self._make = self.template.mapper(seed)
        self._pool = pool
        self._weight = weight
        self._made = 0

    def create(self) -> SimpleNamespace:
        """A new subject."""
        subject = SimpleNamespace(**self._make(self._made))
        self._made += 1
        if self._pool is not None:
            self._pool.add(
                subject.id, getattr(subject, self._weight) if self._weight is not None else 1.0
            )
        return subject

    __call__ = create
