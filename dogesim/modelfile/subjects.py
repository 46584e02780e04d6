"""The ``subjects:`` section: a count and either a factory import path or attributes drawn
from simple distributions with the run's seed (`AttributeSubjectFactory`) or made by
templates (Faker, sequences, references to other entity types)."""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from dogesim.errors import ModelError, RunError
from dogesim.modelfile.payloads import is_template_attribute, template_attributes
from dogesim.modelfile.source import (
    MAX_SUBJECTS,
    _check_call,
    _describe,
    _join,
    _key_line,
    _Map,
    _plain,
    _Reader,
    _Seq,
    _Source,
)

#: Distributions for subject attributes: name -> how many parameters (and their shape).
DISTRIBUTIONS = (
    "uniform_int",
    "uniform",
    "normal",
    "lognormal",
    "gamma",
    "choice",
    "constant",
    "sequence",
)
_CHUNK = 1024
#: The ends numpy's integer draws take (int64).
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


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
        if kind == "lognormal":  # [mu, sigma] of the log: median e^mu
            return rng.lognormal(params[0], params[1], size=n).tolist()
        if kind == "gamma":  # [shape, scale]: mean shape * scale
            return rng.gamma(params[0], params[1], size=n).tolist()
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
                if (
                    isinstance(w, bool)
                    or not isinstance(w, (int, float))
                    or not 0 < w < math.inf  # inf shares out nothing
                ):
                    raise src.error(
                        arg.key_lines[k],
                        _join(where, str(k)),
                        f"weight {_describe(w)} is not a finite positive number",
                    )
                weights.append(float(w))
            if not values:
                raise src.error(line, where, "no values to choose from")
            return _Distribution(kind, tuple(values), _shares(weights))
        if not isinstance(arg, _Seq) or not arg:
            raise src.error(
                line,
                where,
                f"{_describe(arg)}: give a non-empty list of values, or a mapping value: weight",
            )
        return _Distribution(kind, tuple(_plain(v) for v in arg), None)
    # two numbers
    if not isinstance(arg, _Seq) or len(arg) != 2:
        shape = {
            "uniform_int": "[low, high]",
            "uniform": "[low, high]",
            "normal": "[mean, sd]",
            "lognormal": "[mu, sigma] (of the log)",
            "gamma": "[shape, scale]",
        }
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
            raise src.error(
                line,
                where,
                f"[{a}, {b}]: both ends must be integers, written without a point or an "
                "exponent (5, not 5.0 or 1e3)",
            )
        if not (a >= _INT64_MIN and b <= _INT64_MAX):
            raise src.error(
                line, where, f"[{a}, {b}]: both ends must be 64-bit integers, -2**63 .. 2**63 - 1"
            )
        if a > b:
            raise src.error(line, where, f"[{a}, {b}]: low must not exceed high")
    elif kind == "uniform" and a > b:
        raise src.error(line, where, f"[{a}, {b}]: low must not exceed high")
    elif kind == "uniform" and not math.isfinite(float(b) - float(a)):
        raise src.error(line, where, f"[{a}, {b}]: high - low is past the largest float")
    elif kind in ("normal", "lognormal") and b < 0:
        raise src.error(line, where, f"standard deviation {b} must be >= 0")
    elif kind == "gamma" and not (a > 0 and b > 0):
        raise src.error(line, where, f"[{a}, {b}]: shape and scale must be > 0")
    return _Distribution(kind, (a, b))


def _shares(weights: list[float]) -> tuple[float, ...]:
    """`weights` (finite, > 0) normalised; scaled by the largest first when their sum
    overflows (``1e308 + 1e308``)."""
    total = sum(weights)
    if math.isinf(total):
        top = max(weights)
        weights = [w / top for w in weights]
        total = sum(weights)
    return tuple(w / total for w in weights)


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


class _GuardedFactory:
    """Calls a factory from a model file, turning its failures into a `RunError`."""

    def __init__(self, factory: Callable[[], Any], path: str | None) -> None:
        self.factory = factory
        self.path = path

    def __call__(self) -> Any:
        try:
            return self.factory()
        except (Exception, SystemExit) as exc:
            # KeyboardInterrupt stays what it is: a stop request.
            raise RunError(
                f"subjects.factory {self.path!r} raised {type(exc).__name__}: {exc}"
            ) from exc


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
        templates: the attributes written as templates (Faker, ``seq``, ``ref``, ``expr``
            over ``index``; `dogesim.modelfile.payloads.TemplateAttributes`), or None.
    """

    count: int
    attributes: dict[str, _Distribution] = field(default_factory=dict)
    factory: Any = None
    factory_path: str | None = None
    factory_args: dict[str, Any] = field(default_factory=dict)
    templates: Any = None

    def make_factory(self, seed: int) -> Callable[[], Any]:
        """A fresh subject factory for one run with `seed`.

        A factory from an import path is guarded: when it raises (or calls ``sys.exit``)
        the run fails with a `RunError` naming it, not with a bare exit.
        """
        if self.factory is None:
            made = AttributeSubjectFactory(self.attributes, seed).create
            return made if self.templates is None else self.templates.wrap(made, seed)
        return _GuardedFactory(self._imported_factory(), self.factory_path)

    def _imported_factory(self) -> Callable[[], Any]:
        if inspect.isclass(self.factory):
            try:
                instance = self.factory(**self.factory_args)
            except (Exception, SystemExit) as exc:
                raise RunError(
                    f"subjects.factory {self.factory_path!r}: making the factory raised "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
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
    count = subjects.integer("count", minimum=0, maximum=MAX_SUBJECTS)
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
        if inspect.isclass(factory):
            _check_call(subjects, "factory", factory, as_="a factory class", **args)
        else:
            _check_call(subjects, "factory", factory, as_="factory()")
        return SubjectsSpec(count, factory=factory, factory_path=path, factory_args=args)
    if subjects.has("factory_args"):
        raise subjects.error("factory_args", "factory_args needs a factory")
    attributes: dict[str, _Distribution] = {}
    templated: list[str] = []
    templates = None
    if subjects.has("attributes"):
        attrs = subjects.mapping("attributes")
        for name in attrs.node:
            if not isinstance(name, str) or not name.isidentifier():
                raise attrs.error(
                    str(name), f"attribute name {_describe(name)} is not a Python identifier"
                )
            if is_template_attribute(attrs.node[name]):
                templated.append(name)
                continue
            attributes[name] = _read_distribution(src, attrs.node, name, attrs.where(name))
        if templated:
            templates = template_attributes(src, attrs, templated)
    return SubjectsSpec(count, attributes=attributes, templates=templates)
