"""Time-varying chances as tables: a transition's chance per tick by calendar month, or by
the subject's age (ticks since it started or arrived).

- `ByMonth`: twelve chances in percent per tick, January first, for ticks that begin in
  that month (UTC).
- `ByAge`: chances in percent per tick for age bins ``[edges[k], edges[k+1])`` (the last
  bin is open), lower edges increasing from 0, in ticks (numbers) or durations (text such
  as ``"30d"``; rescaled by `ByAge.at_tick`). A subject present from the run's start is
  aged ``t`` at tick ``t``; one arriving at tick ``a`` is aged ``t - a``.
- `ChanceTable`: their common interface; `chance_table(value, where)` reads the data forms
  ``{by_month: [12 numbers]}`` and ``{by_age: {edges: [...], chances: [...]}}``.
- `month_of(timestamp)`: the calendar month (1-12, UTC) of an epoch-ms timestamp.
- `state_peak(constant, tables)`: the largest total chance one state reaches at any tick,
  over every (month, age) combination.
- `profiled_state_peak(terms, tables)`: the same when the state's other transitions have
  calendar profiles: what a model is checked against (100%), and the bound the engine
  thins from.

A transition with a table keeps, in ``Transition.probability``, the table's mean chance
(what the analytic per-tick matrix reads, an approximation there).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from numbers import Real
from typing import Any, ClassVar

from dogesim.errors import ModelError, shown
from dogesim.rates import Profile, parse_duration, profiled_peak

__all__ = [
    "ByAge",
    "ByMonth",
    "ChanceTable",
    "chance_table",
    "month_of",
    "profiled_state_peak",
    "state_peak",
]


@lru_cache(maxsize=4096)
def month_of(timestamp: int) -> int:
    """The calendar month (1-12) of `timestamp` (epoch ms, UTC)."""
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return (epoch + _dt.timedelta(milliseconds=timestamp)).month


def _percent(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ModelError(f"{where} must be a number of percent per tick, got {shown(value)}")
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= 100:
        raise ModelError(f"{where} must be a percentage from 0 to 100, got {shown(value)}")
    return number


def _numbers(value: object, where: str) -> list[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ModelError(f"{where} must be a list, got {shown(value)}")
    return list(value)


class ChanceTable:
    """A chance per tick that depends on the tick's month or on the subject's age."""

    #: The data-form key (``by_month`` or ``by_age``).
    key: ClassVar[str] = ""
    chances: tuple[float, ...]

    def at(self, month: int, age: int) -> float:
        """The chance in percent per tick at a tick of calendar `month` and subject `age`."""
        raise NotImplementedError

    def levels(self) -> list[tuple[int | None, float | None]]:
        """The (month, age edge) pairs this table changes at (None: does not depend)."""
        raise NotImplementedError

    def mean(self) -> float:
        """The plain mean of the chances (the transition's nominal probability)."""
        return math.fsum(self.chances) / len(self.chances)

    @property
    def in_ticks(self) -> bool:
        """True when every time of the table is in ticks."""
        return True

    def at_tick(self, tick_ms: int) -> ChanceTable:
        """This table with its times in ticks of `tick_ms`."""
        return self

    def to_dict(self) -> dict[str, Any]:
        """The data form (``{by_month: [...]}`` or ``{by_age: {...}}``)."""
        raise NotImplementedError


@dataclass(frozen=True)
class ByMonth(ChanceTable):
    """Twelve chances in percent per tick, for ticks beginning in January .. December."""

    key: ClassVar[str] = "by_month"
    chances: tuple[float, ...]

    def __init__(self, chances: Sequence[float], where: str = "by_month") -> None:
        values = _numbers(chances, where)
        if len(values) != 12:
            raise ModelError(f"{where}: give 12 chances (January .. December), got {len(values)}")
        object.__setattr__(
            self, "chances", tuple(_percent(v, f"{where}[{k}]") for k, v in enumerate(values))
        )

    def at(self, month: int, age: int) -> float:
        return self.chances[month - 1]

    def levels(self) -> list[tuple[int | None, float | None]]:
        return [(m, None) for m in range(1, 13)]

    def to_dict(self) -> dict[str, Any]:
        return {"by_month": list(self.chances)}


@dataclass(frozen=True)
class ByAge(ChanceTable):
    """Chances in percent per tick by age bin (lower `edges`, from 0, the last bin open)."""

    key: ClassVar[str] = "by_age"
    edges: tuple[float, ...]
    chances: tuple[float, ...]
    unit_ms: int | None = None

    def __init__(
        self,
        edges: Sequence[float | str],
        chances: Sequence[float],
        *,
        unit_ms: int | None = None,
        where: str = "by_age",
    ) -> None:
        raw_edges, values = _numbers(edges, f"{where}: edges"), _numbers(chances, f"{where}")
        if len(raw_edges) != len(values) or not values:
            raise ModelError(
                f"{where}: {len(raw_edges)} edges and {len(values)} chances; give one chance "
                "per age bin, each bin by its lower edge (the first 0)"
            )
        durations = any(isinstance(e, str) for e in raw_edges)
        cut: list[float] = []
        for k, edge in enumerate(raw_edges):
            if isinstance(edge, str):
                cut.append(float(parse_duration(edge, f"{where}: edges[{k}]")))
            elif isinstance(edge, bool) or not isinstance(edge, Real) or not float(edge) >= 0:
                raise ModelError(f"{where}: edges[{k}] must be a number >= 0, got {shown(edge)}")
            elif durations and edge != 0:
                raise ModelError(
                    f"{where}: edges[{k}] = {shown(edge)} is a number of ticks while other "
                    "edges are durations; give every edge the same way"
                )
            else:
                cut.append(float(edge))
        if cut[0] != 0 or any(b <= a for a, b in itertools.pairwise(cut)):
            raise ModelError(
                f"{where}: edges must increase strictly from 0 (lower edges of the age "
                f"bins), got {shown(list(raw_edges))}"
            )
        object.__setattr__(self, "edges", tuple(cut))
        object.__setattr__(
            self, "chances", tuple(_percent(v, f"{where}[{k}]") for k, v in enumerate(values))
        )
        object.__setattr__(self, "unit_ms", 1 if durations else unit_ms)

    def at(self, month: int, age: int) -> float:
        k = 0
        for j, edge in enumerate(self.edges):
            if age >= edge:
                k = j
            else:
                break
        return self.chances[k]

    def levels(self) -> list[tuple[int | None, float | None]]:
        return [(None, e) for e in self.edges]

    @property
    def in_ticks(self) -> bool:
        return self.unit_ms is None

    def at_tick(self, tick_ms: int) -> ByAge:
        if self.unit_ms is None:
            return self
        factor = self.unit_ms / tick_ms
        return ByAge([e * factor for e in self.edges], list(self.chances))

    def to_dict(self) -> dict[str, Any]:
        edges: list[Any] = [_plain(e) for e in self.edges]
        if self.unit_ms is not None:
            edges = [f"{_plain(e * self.unit_ms)}ms" if e else 0 for e in self.edges]
        return {"by_age": {"edges": edges, "chances": list(self.chances)}}


def _plain(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def chance_table(value: object, where: str) -> ChanceTable:
    """A `ChanceTable`, or one read from ``{by_month: [...]}`` / ``{by_age: {...}}``."""
    if isinstance(value, ChanceTable):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        if "by_month" in value:
            return ByMonth(value["by_month"], f"{where}: by_month")
        if "by_age" in value:
            body = value["by_age"]
            if not isinstance(body, Mapping) or set(body) != {"edges", "chances"}:
                raise ModelError(
                    f"{where}: by_age is a mapping {{edges: [0, 12, ...], chances: [...]}}, "
                    f"got {shown(body)}"
                )
            return ByAge(body["edges"], body["chances"], where=f"{where}: by_age")
    raise ModelError(
        f"{where}: a chance table is {{by_month: [12 chances]}} or {{by_age: {{edges: "
        f"[...], chances: [...]}}}}, got {shown(value)}"
    )


def profiled_state_peak(
    terms: Iterable[tuple[float, Profile | None]], tables: Sequence[ChanceTable]
) -> float:
    """`state_peak` of a state whose other transitions have chances `terms` (percent per
    tick, each with its calendar profile or None): the tables' peak plus the profiled
    terms' exact peak (`dogesim.rates.profiled_peak`).

    An upper bound of the state's largest total, reached whenever the profiles' peak moment
    can fall in the tables' peak month and age: always for hourly and weekly profiles (every
    month has every hour and weekday) and for ages; a date listed outside the tables' peak
    month makes it conservative. The engine thins candidates drawn at this bound, and a
    model is refused when it exceeds 100%."""
    return state_peak(profiled_peak(terms)[0], tables)


def state_peak(constant: float, tables: Sequence[ChanceTable]) -> float:
    """The largest total chance (percent per tick) of a state whose constant chances sum to
    `constant` and whose other transitions follow `tables`, over every month and age."""
    months = {m for t in tables for m, _ in t.levels() if m is not None} or {1}
    ages = sorted({a for t in tables for _, a in t.levels() if a is not None} or {0.0})
    peak = 0.0
    for month in months:
        for age in ages:
            # an age edge may be fractional (durations): the first whole age in its bin
            whole = math.ceil(age)
            peak = max(peak, constant + math.fsum(t.at(month, whole) for t in tables))
    return peak
