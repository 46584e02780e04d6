"""Laws of waiting times and of subject attributes: how long a state lasts, how long a move
delays the next attempt, how active a subject is.

- `Law`: the common interface (a frozen value object); the laws themselves:
  `Fixed`, `Uniform`, `Exponential`, `LogNormal`, `Gamma`, `Empirical`.
- `law_from_dict` / `Law.to_dict`: a law as plain data, the form model files and the fit
  share, e.g. ``{"law": "gamma", "shape": 2.0, "scale_ticks": 12.0}``. The forms the fit
  writes (`dogesim.report.spells`, ``DwellLaw.spec()``, lengths in ticks) are read too:
  ``{law: geometric, p}``, ``{law: fixed, ticks}``, ``{law: uniform, low, high}`` (whole
  ticks ``low .. high`` equally likely), ``{law: exponential, rate}``, ``{law: lognormal,
  mu, sigma}``, ``{law: gamma, shape, scale}``, ``{law: empirical, histogram: {ticks: p}}``.
- `StayKernel`: a semi-Markov kernel of one state (a stay's length and its destination
  given the length, the first stay apart), ``{kernel: {lengths, weights, to}, first: ...}``.
- `as_law`: a `Law` or such a mapping, checked (a `ModelError` names the place and value).
- `HORIZON`: the longest wait on the tick grid (``2**62`` ticks: never within any run).
- `regularized_gamma`: the regularised lower incomplete gamma function ``P(a, x)`` (the gamma
  and chi-square CDFs), which the discretised pmfs and the tests' critical values use.

Units. A law's time parameters are in ticks (plain numbers, keys ending in ``_ticks`` in the
data form) or durations (text such as ``"3 min"``, or milliseconds under keys ending in
``_ms``); a law in durations is turned into ticks by `Law.at_tick` when a run's tick is known.
Dimensionless parameters (``shape``, ``sigma``, weights) are plain numbers.

Discretisation (the tick grid). A law describes a continuous time ``X`` in ticks; a wait on
the grid is ``K = max(1, ceil(X))`` whole ticks: the spell covers every tick up to the first
whole tick at or after ``X``, and at least one. So ``P(K = 1) = F(1)`` and
``P(K = k) = F(k) - F(k - 1)`` for ``k >= 2``, ``F`` the law's CDF (`Law.pmf`). Sampling draws
``X`` and rounds it the same way, so simulated waits follow `Law.pmf` exactly. An exponential
law of mean ``m`` gives the geometric law with ``p = 1 - exp(-1/m)``. The grid ends at
`HORIZON` (``2**62`` ticks, the most any run has): a wait is ``min(K, HORIZON)``, so a heavy
tail (a log-normal of sigma 1000, a gamma of scale 1e300) puts its mass past the horizon on
it, a wait that never comes within a run, and ``P(K = k)`` is unchanged below it.

As the law of an attribute (a per-subject rate multiplier), `Law.draw` gives the continuous
values themselves (no grid, no units): e.g. ``LogNormal(median=exp(-0.32), sigma=0.8)`` has
mean 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any, ClassVar

import numpy as np

from dogesim.errors import ModelError, shown
from dogesim.rates import parse_duration

__all__ = [
    "HORIZON",
    "LAWS",
    "Empirical",
    "Exponential",
    "Fixed",
    "Gamma",
    "Law",
    "LogNormal",
    "StayKernel",
    "Uniform",
    "as_law",
    "law_from_dict",
    "regularized_gamma",
]

#: The longest wait on the tick grid: ``2**62`` ticks, the most a run has (`MAX_TICKS`), so a
#: wait this long never comes within any run. Longer draws (inf and NaN too) are clipped to it.
HORIZON = 2**62


#: Below the log of the largest float (``math.exp`` of it is finite).
_LOG_MAX = 709.0

#: From this `a` on, `regularized_gamma` is the Wilson-Hilferty normal approximation (its
#: error falls as 1/a; the series and the fraction need ~sqrt(a) terms, and lgamma
#: overflows past a ~ 2.5e305).
_HUGE_SHAPE = 1e6


def _wilson_hilferty(a: float, x: float) -> float:
    """``P(a, x)`` for huge `a`: ``(x/a)**(1/3)`` is about normal, mean ``1 - 1/(9a)``,
    variance ``1/(9a)``."""
    z = ((x / a) ** (1 / 3) - 1 + 1 / (9 * a)) * 3 * math.sqrt(a)
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def regularized_gamma(a: float, x: float) -> float:
    """``P(a, x)``: the regularised lower incomplete gamma function (``a > 0``, ``x >= 0``).

    The series for ``x < a + 1``, else the continued fraction of ``Q = 1 - P`` (modified
    Lentz), each to double precision."""
    if x <= 0.0:
        return 0.0
    if math.isinf(x):
        return 1.0
    if a >= _HUGE_SHAPE:
        return _wilson_hilferty(a, x)
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        n = a
        for _ in range(10_000):
            n += 1.0
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return min(1.0, total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-16:
            break
    return max(0.0, 1.0 - math.exp(log_front) * h)


def _on_grid(draws: np.ndarray) -> np.ndarray:
    """Continuous draws as waits on the tick grid: ``max(1, ceil(x))`` clipped to `HORIZON`
    before the cast to int64, so a heavy tail never wraps around to a negative wait. A draw
    past float's range is the horizon (``+inf``, and NaN, what an overflow leaves); ``-inf``
    is 1."""
    waits = np.nan_to_num(np.ceil(draws), nan=HORIZON, posinf=HORIZON, neginf=1.0)
    return np.clip(waits, 1.0, float(HORIZON)).astype(np.int64)


def _normalised(weights: Sequence[float]) -> np.ndarray:
    """`weights` (finite, >= 0, some > 0) as shares summing to 1; scaled by the largest
    first when their sum overflows (``1e308 + 1e308``)."""
    mass = np.asarray(weights, dtype=float)
    with np.errstate(over="ignore"):
        total = mass.sum()
    if math.isinf(total):
        mass = mass / mass.max()
        total = mass.sum()
    return mass / total


def _number(value: object, where: str, name: str, *, positive: bool = True) -> float:
    """`value` as a finite float (> 0 when `positive`, else >= 0)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ModelError(f"{where}: {name} must be a number, got {shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int past float's range: no finite number
        number = math.inf
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        side = "> 0" if positive else ">= 0"
        raise ModelError(f"{where}: {name} must be a finite number {side}, got {shown(value)}")
    return number


@dataclass(frozen=True)
class Law:
    """A law of a waiting time (or of an attribute); see the module docstring.

    Attributes:
        unit_ms: None when the time parameters are in ticks; else the milliseconds one unit
            of them stands for (they were given as durations: `at_tick` rescales them).
    """

    #: The name of the law in the data form (``{"law": name, ...}``).
    name: ClassVar[str] = ""
    #: The fields that are times (rescaled by `at_tick`).
    time_fields: ClassVar[tuple[str, ...]] = ()
    #: The fields that are plain numbers.
    number_fields: ClassVar[tuple[str, ...]] = ()

    unit_ms: int | None = dataclasses.field(default=None, kw_only=True)

    # -- building --------------------------------------------------------------------------

    @classmethod
    def _times(
        cls, values: Mapping[str, object], where: str
    ) -> tuple[dict[str, float], int | None]:
        """The time parameters as numbers of one unit: ticks, or ms when any is a duration."""
        durations = any(isinstance(v, str) for v in values.values())
        out: dict[str, float] = {}
        for field, value in values.items():
            if durations:
                if isinstance(value, str):
                    out[field] = float(parse_duration(value, f"{where}: {field}"))
                elif isinstance(value, Real) and not isinstance(value, bool) and value == 0:
                    out[field] = 0.0  # zero needs no unit (e.g. a histogram's first edge)
                else:
                    raise ModelError(
                        f"{where}: {field} = {shown(value)} is a number of ticks while other "
                        "times of this law are durations; give every time the same way"
                    )
            else:
                out[field] = _number(value, where, field, positive=False)
        return out, (1 if durations else None)

    def _where(self) -> str:
        return f"{self.name} law"

    @property
    def in_ticks(self) -> bool:
        """True when the time parameters are in ticks (a run can sample it as is)."""
        return self.unit_ms is None

    def at_tick(self, tick_ms: int) -> Law:
        """This law with its time parameters in ticks of `tick_ms` (itself when already)."""
        if self.unit_ms is None:
            return self
        factor = self.unit_ms / tick_ms
        changes: dict[str, Any] = {f: getattr(self, f) * factor for f in self.time_fields}
        return dataclasses.replace(self, unit_ms=None, **changes)

    def _ticks_only(self) -> None:
        if self.unit_ms is not None:
            raise ModelError(
                f"{self._where()}: its times are durations; rescale it to a tick first "
                "(law.at_tick(tick_ms), done by every run)"
            )

    # -- the law ---------------------------------------------------------------------------

    def cdf(self, x: float) -> float:
        """``P(X <= x)``."""
        raise NotImplementedError

    def expectation(self) -> float:
        """The mean of ``X`` (continuous, before the grid)."""
        raise NotImplementedError

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` continuous values of ``X`` (floats), e.g. attribute values."""
        raise NotImplementedError

    def ticks(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` waits on the tick grid, ``min(max(1, ceil(X)), HORIZON)`` (int64)."""
        self._ticks_only()
        return _on_grid(self.draw(rng, n))

    def pmf(self, kmax: int) -> np.ndarray:
        """``P(K = k)`` for ``k = 1 .. kmax`` (index ``k - 1``); the tail beyond is the rest."""
        self._ticks_only()
        cdf = np.asarray([self.cdf(float(k)) for k in range(1, kmax + 1)])
        return np.diff(np.concatenate(([0.0], cdf)))

    # -- data form -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The data form: ``{"law": name, <param>_ticks | <param>_ms: ..., <number>: ...}``."""
        suffix = "_ticks" if self.unit_ms is None else "_ms"
        scale = 1.0 if self.unit_ms is None else float(self.unit_ms)
        out: dict[str, Any] = {"law": self.name}
        for field in self.time_fields:
            out[field + suffix] = getattr(self, field) * scale
        for field in self.number_fields:
            out[field] = getattr(self, field)
        return out


@dataclass(frozen=True)
class Fixed(Law):
    """Always `value` (ticks, or a duration): ``K = max(1, ceil(value))``."""

    name: ClassVar[str] = "fixed"
    time_fields: ClassVar[tuple[str, ...]] = ("value",)
    value: float = 1.0

    def __init__(self, value: float | str, *, unit_ms: int | None = None) -> None:
        where = "fixed law"
        if unit_ms is None:
            times, unit = self._times({"value": value}, where)
        else:
            times, unit = {"value": _number(value, where, "value", positive=False)}, unit_ms
        object.__setattr__(self, "value", times["value"])
        object.__setattr__(self, "unit_ms", unit)

    def cdf(self, x: float) -> float:
        return 1.0 if x >= self.value else 0.0

    def expectation(self) -> float:
        return self.value

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)


@dataclass(frozen=True)
class Uniform(Law):
    """Uniform between `low` and `high` (ticks or durations; ``low <= high``)."""

    name: ClassVar[str] = "uniform"
    time_fields: ClassVar[tuple[str, ...]] = ("low", "high")
    low: float = 0.0
    high: float = 1.0

    def __init__(self, low: float | str, high: float | str, *, unit_ms: int | None = None) -> None:
        where = "uniform law"
        if unit_ms is None:
            times, unit = self._times({"low": low, "high": high}, where)
        else:
            times = {
                k: _number(v, where, k, positive=False) for k, v in (("low", low), ("high", high))
            }
            unit = unit_ms
        if times["low"] > times["high"]:
            raise ModelError(
                f"{where}: low must be at most high, got low={shown(low)}, high={shown(high)}"
            )
        object.__setattr__(self, "low", times["low"])
        object.__setattr__(self, "high", times["high"])
        object.__setattr__(self, "unit_ms", unit)

    def cdf(self, x: float) -> float:
        if x >= self.high:
            return 1.0
        if x <= self.low:
            return 0.0
        return (x - self.low) / (self.high - self.low)

    def expectation(self) -> float:
        return (self.low + self.high) / 2

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)


@dataclass(frozen=True)
class Exponential(Law):
    """Exponential with mean `mean` (ticks or a duration); on the grid, geometric."""

    name: ClassVar[str] = "exponential"
    time_fields: ClassVar[tuple[str, ...]] = ("mean",)
    mean: float = 1.0

    def __init__(self, mean: float | str, *, unit_ms: int | None = None) -> None:
        where = "exponential law"
        if unit_ms is None:
            times, unit = self._times({"mean": mean}, where)
        else:
            times, unit = {"mean": _number(mean, where, "mean", positive=False)}, unit_ms
        if times["mean"] <= 0:
            raise ModelError(f"{where}: mean must be > 0, got {shown(mean)}")
        object.__setattr__(self, "mean", times["mean"])
        object.__setattr__(self, "unit_ms", unit)

    def cdf(self, x: float) -> float:
        return -math.expm1(-x / self.mean) if x > 0 else 0.0

    def expectation(self) -> float:
        return self.mean

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean, n)


@dataclass(frozen=True)
class LogNormal(Law):
    """Log-normal: ``ln X`` is normal with median `median` (ticks or a duration) and
    standard deviation `sigma` (dimensionless); mean ``median * exp(sigma**2 / 2)``."""

    name: ClassVar[str] = "lognormal"
    time_fields: ClassVar[tuple[str, ...]] = ("median",)
    number_fields: ClassVar[tuple[str, ...]] = ("sigma",)
    median: float = 1.0
    sigma: float = 1.0

    def __init__(self, median: float | str, sigma: float, *, unit_ms: int | None = None) -> None:
        where = "lognormal law"
        if unit_ms is None:
            times, unit = self._times({"median": median}, where)
        else:
            times, unit = {"median": _number(median, where, "median")}, unit_ms
        if times["median"] <= 0:
            raise ModelError(f"{where}: median must be > 0, got {shown(median)}")
        object.__setattr__(self, "median", times["median"])
        object.__setattr__(self, "sigma", _number(sigma, where, "sigma"))
        object.__setattr__(self, "unit_ms", unit)

    def cdf(self, x: float) -> float:
        if x <= 0:
            return 0.0
        if math.isinf(x):
            return 1.0  # (inf - m) / inf is no number when sigma * sqrt(2) overflows
        z = (math.log(x) - math.log(self.median)) / (self.sigma * math.sqrt(2.0))
        return 0.5 * math.erfc(-z)

    def expectation(self) -> float:
        half = self.sigma * self.sigma / 2  # inf past float's range, not an OverflowError
        if half < _LOG_MAX:
            return self.median * math.exp(half)
        log_mean = math.log(self.median) + half
        return math.exp(log_mean) if log_mean < _LOG_MAX else math.inf

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(math.log(self.median), self.sigma, n)


@dataclass(frozen=True)
class Gamma(Law):
    """Gamma with `shape` k (dimensionless) and `scale` (ticks or a duration); mean k*scale."""

    name: ClassVar[str] = "gamma"
    time_fields: ClassVar[tuple[str, ...]] = ("scale",)
    number_fields: ClassVar[tuple[str, ...]] = ("shape",)
    shape: float = 1.0
    scale: float = 1.0

    def __init__(self, shape: float, scale: float | str, *, unit_ms: int | None = None) -> None:
        where = "gamma law"
        if unit_ms is None:
            times, unit = self._times({"scale": scale}, where)
        else:
            times, unit = {"scale": _number(scale, where, "scale")}, unit_ms
        if times["scale"] <= 0:
            raise ModelError(f"{where}: scale must be > 0, got {shown(scale)}")
        object.__setattr__(self, "shape", _number(shape, where, "shape"))
        object.__setattr__(self, "scale", times["scale"])
        object.__setattr__(self, "unit_ms", unit)

    def cdf(self, x: float) -> float:
        return regularized_gamma(self.shape, x / self.scale) if x > 0 else 0.0

    def expectation(self) -> float:
        return self.shape * self.scale

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.gamma(self.shape, self.scale, n)


@dataclass(frozen=True)
class Empirical(Law):
    """A histogram: ``X`` falls in bin ``[edges[i], edges[i+1])`` with chance proportional to
    ``weights[i]``, uniformly within it. Bins ``[k-1, k)`` put a mass on exactly ``k`` ticks
    (`Empirical.of_ticks` builds those from ``{ticks: weight}``)."""

    name: ClassVar[str] = "empirical"
    edges: tuple[float, ...] = (0.0, 1.0)
    weights: tuple[float, ...] = (1.0,)

    def __init__(
        self,
        edges: Sequence[float | str],
        weights: Sequence[float],
        *,
        unit_ms: int | None = None,
    ) -> None:
        where = "empirical law"
        if isinstance(edges, (str, bytes)) or not isinstance(edges, Sequence) or len(edges) < 2:
            raise ModelError(
                f"{where}: edges must be a list of at least 2 bin edges, got {shown(edges)}"
            )
        if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
            raise ModelError(f"{where}: weights must be a list of numbers, got {shown(weights)}")
        if len(weights) != len(edges) - 1:
            raise ModelError(
                f"{where}: {len(edges)} edges make {len(edges) - 1} bins, but "
                f"{len(weights)} weights were given; give one weight per bin"
            )
        if unit_ms is None:
            times, unit = self._times({f"edges[{i}]": e for i, e in enumerate(edges)}, where)
        else:
            times = {
                f"edges[{i}]": _number(e, where, f"edges[{i}]", positive=False)
                for i, e in enumerate(edges)
            }
            unit = unit_ms
        cut = tuple(times.values())
        if any(b <= a for a, b in itertools.pairwise(cut)):
            raise ModelError(f"{where}: edges must increase strictly, got {shown(list(edges))}")
        mass = tuple(
            _number(w, where, f"weights[{i}]", positive=False) for i, w in enumerate(weights)
        )
        if sum(mass) <= 0:
            raise ModelError(f"{where}: the weights sum to 0; give at least one positive weight")
        object.__setattr__(self, "edges", cut)
        object.__setattr__(self, "weights", mass)
        object.__setattr__(self, "unit_ms", unit)

    @classmethod
    def of_ticks(cls, counts: Mapping[int, float]) -> Empirical:
        """Masses on whole numbers of ticks, ``{24: 30, 36: 5}`` (weights, normalised)."""
        if not isinstance(counts, Mapping) or not counts:
            raise ModelError(f"empirical law: give {{ticks: weight}}, got {shown(counts)}")
        keys = sorted(counts)
        for k in keys:
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ModelError(f"empirical law: ticks must be whole numbers >= 1, got {shown(k)}")
        edges: list[float] = []
        weights: list[float] = []
        for k in keys:
            if edges and edges[-1] != k - 1:
                edges.append(float(k - 1))
                weights.append(0.0)
            elif not edges:
                edges.append(float(k - 1))
            edges.append(float(k))
            weights.append(counts[k])
        return cls(edges, weights)

    def _shares(self) -> np.ndarray:
        return _normalised(self.weights)

    def cdf(self, x: float) -> float:
        total = 0.0
        for a, b, share in zip(self.edges, self.edges[1:], self._shares().tolist(), strict=False):
            if x >= b:
                total += share
            elif x > a:
                total += share * (x - a) / (b - a)
        return min(total, 1.0)

    def expectation(self) -> float:
        mids = (np.asarray(self.edges[:-1]) + np.asarray(self.edges[1:])) / 2
        return float(mids @ self._shares())

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        bins = rng.choice(len(self.weights), size=n, p=self._shares())
        low = np.asarray(self.edges[:-1])[bins]
        width = np.asarray(self.edges[1:])[bins] - low
        return low + rng.random(n) * width

    def to_dict(self) -> dict[str, Any]:
        suffix = "_ticks" if self.unit_ms is None else "_ms"
        scale = 1.0 if self.unit_ms is None else float(self.unit_ms)
        return {
            "law": self.name,
            "edges" + suffix: [e * scale for e in self.edges],
            "weights": list(self.weights),
        }

    def at_tick(self, tick_ms: int) -> Law:
        if self.unit_ms is None:
            return self
        factor = self.unit_ms / tick_ms
        return Empirical([e * factor for e in self.edges], list(self.weights), unit_ms=None)


@dataclass(frozen=True)
class StayKernel(Law):
    """A semi-Markov kernel for one state: how long a stay lasts and where it goes, given
    its length (``Q_j(L)``).

    A stay lasts ``lengths[k]`` ticks with chance proportional to ``weights[k]``; a stay of
    that length ends with the move to destination ``d`` with chance ``to[d][k]`` (each
    length's shares are normalised; a length of positive weight needs a positive share). A
    destination names a transition leaving the state: its trigger, or its target state
    when one transition leads there. `first`, when given, is the kernel of a subject's
    first stay (the one it starts in, from the run's start or its arrival); later stays
    follow this one. The kernel decides both when and where a stay ends: the chances of
    the state's transitions (probabilities, tables, profiles) are not used.

    Data form: ``{kernel: {lengths: [...], weights: [...], to: {FE: [...], ...}},
    first: {kernel: {...}}}``.
    """

    name: ClassVar[str] = "kernel"
    lengths: tuple[int, ...] = (1,)
    weights: tuple[float, ...] = (1.0,)
    to: tuple[tuple[str, tuple[float, ...]], ...] = ()
    first: StayKernel | None = None

    def __init__(
        self,
        lengths: Sequence[int],
        weights: Sequence[float],
        to: Mapping[str, Sequence[float]],
        *,
        first: StayKernel | Mapping[str, Any] | None = None,
        where: str = "kernel",
    ) -> None:
        for key, value in (("lengths", lengths), ("weights", weights)):
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
                raise ModelError(f"{where}: {key} must be a non-empty list, got {shown(value)}")
        if len(weights) != len(lengths):
            raise ModelError(
                f"{where}: {len(lengths)} lengths and {len(weights)} weights; give one "
                "weight per length"
            )
        ticks = tuple(_whole(v, where, f"lengths[{k}]") for k, v in enumerate(lengths))
        if any(b <= a for a, b in itertools.pairwise(ticks)) or ticks[0] < 1:
            raise ModelError(
                f"{where}: lengths must be whole ticks >= 1, increasing, got {shown(list(lengths))}"
            )
        mass = tuple(
            _number(w, where, f"weights[{k}]", positive=False) for k, w in enumerate(weights)
        )
        if sum(mass) <= 0:
            raise ModelError(f"{where}: the weights sum to 0; give a positive weight")
        if not isinstance(to, Mapping) or not to:
            raise ModelError(
                f"{where}: to must map destinations to shares per length, got {shown(to)}"
            )
        rows: list[tuple[str, tuple[float, ...]]] = []
        for destination, shares in to.items():
            if not isinstance(destination, str) or not destination:
                raise ModelError(f"{where}: destination {shown(destination)} is not a name")
            spot = f"to.{destination}"
            if isinstance(shares, (str, bytes)) or not isinstance(shares, Sequence):
                raise ModelError(f"{where}: {spot} must be a list of shares, got {shown(shares)}")
            if len(shares) != len(ticks):
                raise ModelError(
                    f"{where}: {spot} has {len(shares)} shares for {len(ticks)} lengths; "
                    "give one share per length"
                )
            rows.append(
                (
                    destination,
                    tuple(
                        _number(v, where, f"{spot}[{k}]", positive=False)
                        for k, v in enumerate(shares)
                    ),
                )
            )
        for k, w in enumerate(mass):
            if w > 0 and not any(shares[k] > 0 for _, shares in rows):
                raise ModelError(
                    f"{where}: a stay of {ticks[k]} ticks has weight {w:g} but no destination "
                    "has a positive share at that length"
                )
        if first is not None and not isinstance(first, StayKernel):
            read = law_from_dict(first, f"{where}: first")
            if not isinstance(read, StayKernel):
                raise ModelError(f"{where}: first must be a kernel too ({{kernel: {{...}}}})")
            first = read
        object.__setattr__(self, "lengths", ticks)
        object.__setattr__(self, "weights", mass)
        object.__setattr__(self, "to", tuple(rows))
        object.__setattr__(self, "first", first)
        object.__setattr__(self, "unit_ms", None)

    @property
    def destinations(self) -> list[str]:
        """The destinations, in the order given."""
        return [d for d, _ in self.to]

    def _shares(self) -> np.ndarray:
        return _normalised(self.weights)

    def cdf(self, x: float) -> float:
        shares = self._shares().tolist()
        return float(sum(s for k, s in zip(self.lengths, shares, strict=True) if k <= x))

    def expectation(self) -> float:
        return float(np.asarray(self.lengths) @ self._shares())

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.ticks(rng, n).astype(float)

    def ticks(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` stay lengths drawn from the support itself (whole ticks)."""
        lengths = np.asarray(self.lengths, dtype=np.int64)
        return lengths[rng.choice(len(lengths), size=n, p=self._shares())]

    def pmf(self, kmax: int) -> np.ndarray:
        out = np.zeros(kmax)
        for k, share in zip(self.lengths, self._shares().tolist(), strict=True):
            if k <= kmax:
                out[k - 1] += share
        return out

    def row(self, length: int) -> list[float]:
        """The destinations' shares (normalised) for a stay of `length` ticks."""
        k = self.lengths.index(length)
        shares = [s[k] for _, s in self.to]
        if math.isinf(sum(shares)):  # shares near float's top: scaled first
            top = max(shares)
            shares = [s / top for s in shares]
        total = math.fsum(shares)
        return [s / total for s in shares]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kernel": {
                "lengths": list(self.lengths),
                "weights": list(self.weights),
                "to": {d: list(s) for d, s in self.to},
            }
        }
        if self.first is not None:
            out["first"] = self.first.to_dict()
        return out

    def at_tick(self, tick_ms: int) -> Law:
        return self


#: Every law by its data-form name.
LAWS: dict[str, type[Law]] = {
    law.name: law for law in (Fixed, Uniform, Exponential, LogNormal, Gamma, Empirical)
}

#: The parameters each law takes in the data form (times may end in _ticks or _ms, or be
#: given bare as duration text).
_PARAMETERS: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "uniform": ("low", "high"),
    "exponential": ("mean",),
    "lognormal": ("median", "sigma"),
    "gamma": ("shape", "scale"),
    "empirical": ("edges", "weights"),
}


def law_from_dict(data: Mapping[str, Any], where: str = "law") -> Law:
    """The `Law` a data form describes (see the module docstring).

    Raises:
        ModelError: an unknown law or key, a missing or bad parameter, mixed units.
    """
    if isinstance(data, Mapping) and "kernel" in data:
        return _kernel_from_dict(data, where)
    if not isinstance(data, Mapping) or "law" not in data:
        raise ModelError(
            f"{where}: a law is a mapping like {{law: gamma, shape: 2, scale_ticks: 12}}, "
            f"got {shown(data)}"
        )
    name = data["law"]
    fitted = _fitted_form(data, where) if isinstance(name, str) else None
    if fitted is not None:
        return fitted
    if not isinstance(name, str) or name not in LAWS:
        raise ModelError(f"{where}: unknown law {shown(name)}; laws are {sorted(LAWS)}")
    wanted = _PARAMETERS[name]
    given: dict[str, Any] = {}
    unit: int | None = None
    for key, value in data.items():
        if key == "law":
            continue
        if not isinstance(key, str):
            allowed = ", ".join(wanted)
            raise ModelError(
                f"{where}: {name} law has no key {shown(key)}; its parameters: {allowed}"
            )
        base, unit_of_key = key, None
        if key.endswith("_ticks"):
            base = key[: -len("_ticks")]
        elif key.endswith("_ms"):
            base, unit_of_key = key[: -len("_ms")], 1
        if base not in wanted:
            allowed = ", ".join(wanted)
            raise ModelError(f"{where}: {name} law has no key {key!r}; its parameters: {allowed}")
        if base in given:
            raise ModelError(f"{where}: {name} law: {base} is given twice")
        if unit_of_key is not None:
            unit = 1
        given[base] = value
    missing = [p for p in wanted if p not in given]
    if missing:
        raise ModelError(f"{where}: {name} law needs {', '.join(missing)}")
    try:
        return LAWS[name](**given, unit_ms=unit)
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise ModelError(f"{where}: {name} law: {exc}") from None


def _kernel_from_dict(data: Mapping[str, Any], where: str) -> StayKernel:
    """``{kernel: {lengths, weights, to}, first: {kernel: ...}}`` as a `StayKernel`."""
    extra = sorted(set(data) - {"kernel", "first"})
    if extra:
        raise ModelError(f"{where}: a kernel has no key {extra[0]!r}; its keys: kernel, first")
    body = data["kernel"]
    if not isinstance(body, Mapping) or set(body) != {"lengths", "weights", "to"}:
        raise ModelError(
            f"{where}: kernel is a mapping {{lengths: [...], weights: [...], to: {{state: "
            f"[...]}}}}, got {shown(body)}"
        )
    first = data.get("first")
    if first is not None:
        first = _kernel_from_dict(first, f"{where}: first") if isinstance(first, Mapping) else first
    return StayKernel(body["lengths"], body["weights"], body["to"], first=first, where=where)


def _whole(value: object, where: str, key: str) -> int:
    number = _number(value, where, key)
    if not number.is_integer():
        raise ModelError(f"{where}: {key} must be a whole number of ticks, got {shown(value)}")
    whole = value if isinstance(value, int) else int(number)  # an int exactly, past 2**53 too
    if whole > HORIZON:
        raise ModelError(
            f"{where}: {key} must be at most 2**62 ticks (the longest run), got {shown(value)}"
        )
    return whole


#: A fitted uniform law over more whole ticks than this is one bin (the same law).
_TICK_BINS = 4096


def _finite_mean(mean: float, name: str, value: float) -> float:
    """`mean` (of a geometric or exponential law given by `name` = `value`), when finite."""
    if not math.isfinite(mean):
        raise ModelError(
            f"{name} = {value!r} is too small: the mean wait is past float's range; give "
            f"{name} >= 1e-300"
        )
    return mean


def _exp_of_mu(mu: object, where: str) -> float:
    """The median ``e**mu`` of a fitted log-normal, when `mu` makes it a float > 0."""
    number = math.nan
    if not isinstance(mu, bool) and isinstance(mu, Real):
        with contextlib.suppress(OverflowError):  # an int past float's range: no number
            number = float(mu)
    if not math.isfinite(number):
        raise ModelError(f"{where}: lognormal law: mu must be a finite number, got {shown(mu)}")
    median = math.exp(number) if number < 710 else math.inf
    if not 0 < median < math.inf:
        raise ModelError(
            f"{where}: lognormal law: mu = {mu!r} makes the median e**mu "
            f"{'0' if median == 0 else 'inf'} in floats; give -745 < mu < 709.78"
        )
    return median


def _fitted_form(data: Mapping[str, Any], where: str) -> Law | None:
    """The law of a data form as `dogesim.report.spells` writes it (`DwellLaw.spec()`:
    lengths in ticks), or None when `data` is in this module's own form."""
    name, keys = data["law"], set(data) - {"law"}
    try:
        if name == "geometric" and keys == {"p"}:
            p = _number(data["p"], where, "p")
            if p > 1:
                raise ModelError(f"{where}: geometric law: p must be at most 1, got {p}")
            return Fixed(1) if p == 1 else Exponential(_finite_mean(-1.0 / math.log1p(-p), "p", p))
        if name == "fixed" and keys == {"ticks"}:
            return Fixed(_number(data["ticks"], where, "ticks", positive=False))
        if name == "exponential" and keys == {"rate"}:
            rate = _number(data["rate"], where, "rate")
            return Exponential(_finite_mean(1.0 / rate, "rate", rate))
        if name == "lognormal" and keys == {"mu", "sigma"}:
            return LogNormal(_exp_of_mu(data["mu"], where), data["sigma"])
        if (
            name == "uniform"
            and keys == {"low", "high"}
            and not any(isinstance(data[k], str) for k in keys)
        ):
            # whole ticks low .. high, equally likely (the fitted law's meaning)
            low, high = _whole(data["low"], where, "low"), _whole(data["high"], where, "high")
            if not 1 <= low <= high:
                raise ModelError(
                    f"{where}: uniform law: give whole ticks 1 <= low <= high, got low={low}, "
                    f"high={high}"
                )
            if high - low >= _TICK_BINS:  # the same law in one bin (not one per tick)
                return Empirical([float(low - 1), float(high)], [1.0])
            return Empirical.of_ticks(dict.fromkeys(range(low, high + 1), 1.0))
        if name == "empirical" and keys == {"histogram"}:
            histogram = data["histogram"]
            if not isinstance(histogram, Mapping):
                raise ModelError(f"{where}: empirical law: histogram must map ticks to weights")
            return Empirical.of_ticks(
                {
                    _whole(
                        int(k) if isinstance(k, str) and k.isdigit() else k, where, "histogram key"
                    ): w
                    for k, w in histogram.items()
                }
            )
    except ModelError as exc:
        if str(exc).startswith(where):
            raise
        raise ModelError(f"{where}: {exc}") from None
    return None


def as_law(value: object, where: str) -> Law:
    """`value` as a `Law`: a law itself, or its data form."""
    if isinstance(value, Law):
        return value
    if isinstance(value, Mapping):
        return law_from_dict(value, where)
    raise ModelError(
        f"{where}: expected a law (dogesim.laws.Gamma(...), or a mapping like "
        f"{{law: gamma, shape: 2, scale_ticks: 12}}), got {shown(value)}"
    )
