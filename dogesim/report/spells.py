"""Spell lengths per state: the Kaplan–Meier survival curve and fitted dwell-time laws.

- `spells(observed, state=None, initial="keep")`: the stays (spells) in a state, their
  lengths in ticks and whether each is right-censored by the window's end.
- `kaplan_meier(lengths, censored, weights=None)`: the survival estimate ``P(L > k)`` with
  Greenwood intervals (`SurvivalCurve`).
- `DwellLaw` and its members `Geometric`, `Fixed`, `UniformTicks`, `Exponential`,
  `LogNormal`, `Gamma`, `Empirical`: discrete laws on ticks 1, 2, ... (pmf, survival,
  censored log-likelihood).
- `fit_dwell(lengths, censored, laws=...)`: every law fitted by censored maximum likelihood,
  ranked by AIC (`DwellFit`), with the KS distance of each from the KM curve.
- `dwell_report(observed, ...)`: `fit_dwell` for every state (`dwell_table` as a DataFrame).
- `DwellLaw.spec()`: a fitted law as plain settings for a model file's dwell section.
- `fit_kernel(observed)`: a semi-Markov kernel (`Kernel`): per state (and separately for
  subjects' first stays) the dwell law and the destination's shares given the length;
  `Kernel.dwell_laws()` gives them as a model's dwell laws (`dogesim.laws.StayKernel`),
  which the engine simulates and model files hold (``dwell: {school: {kernel: ...}}``).
- `ks_distance(curve, law)`: ``max_k |S_KM(k) - S_law(k)|`` over the observed range.

Lengths count attempts, as the engine does: a subject that enters a state at tick ``t``
makes its first attempt to leave at ``t + 1``; a stay of length ``k`` ends with the event
at tick ``t + k``. The geometric law ``P(L = k) = (1 - p)^(k - 1) p`` is the chain's (a
per-tick chance ``p``); its censored MLE ``p = exits / sum(lengths)`` is the chain fit's.
A continuous law ``X`` (exponential, log-normal, gamma, in ticks) is put on the grid as
``L = max(1, ceil(X))``: the stay ends at the first tick at or after ``X``, so
``P(L = k) = F(k) - F(k - 1)`` (``F(1)`` for ``k = 1``). An exponential law on the grid is
therefore exactly geometric (``p = 1 - exp(-rate)``); it is kept for its parameter.

Censoring: a stay still going at the window's end (length ``c`` attempts survived) adds
``log P(L > c)`` to the likelihood, and counts as at risk up to ``c`` in the KM curve. A
subject's first stay began at or before the window start; when the window starts with the
subjects' lives (a cohort, a simulation from tick 0) it is a complete stay (``initial=
"keep"``), otherwise its start is unknown (left-censored) and ``initial="drop"`` leaves it
out (for memoryless laws either is unbiased).

Choosing a law. The laws have 0 (empirical: one per support point) to 2 parameters; the
ranking uses AIC ``2 k - 2 log L`` so that the empirical histogram, which always has the
largest likelihood, wins only when the parametric laws are clearly worse. Ties go to the
earlier law in `LAWS` (geometric first). The KS distance to the KM curve says how far each
law is from the data, in survival probability.

Greenwood intervals are on the complementary log-log scale (inside [0, 1], better coverage
than the plain ones at small counts): ``S^exp(±z se)`` with ``se = sqrt(V) / |log S|`` and
``V = sum d_j / (n_j (n_j - d_j))``. With survey weights the counts are weighted and
``V`` is multiplied by Kish's design effect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from scipy import optimize, special

from dogesim.errors import DogesimError
from dogesim.laws import StayKernel
from dogesim.report.observed import kish_deff

if TYPE_CHECKING:
    from dogesim.report.observed import Observed

__all__ = [
    "LAWS",
    "DwellFit",
    "DwellLaw",
    "Empirical",
    "Exponential",
    "Fixed",
    "Gamma",
    "Geometric",
    "Kernel",
    "LogNormal",
    "StateDwell",
    "SurvivalCurve",
    "UniformTicks",
    "dwell_report",
    "dwell_table",
    "fit_dwell",
    "fit_kernel",
    "kaplan_meier",
    "ks_distance",
    "spells",
]

_TINY = 1e-300


def spells(observed: Observed, state: str | None = None, *, initial: str = "keep") -> pd.DataFrame:
    """The stays in `state` (all states when None), as `Observed.spells` gives them.

    Args:
        observed: the log.
        state: one state, or None for all.
        initial: ``"keep"`` counts each subject's first stay from its first tick;
            ``"drop"`` leaves first stays out (their start is unknown).
    """
    if initial not in ("keep", "drop"):
        raise DogesimError(f"initial={initial!r}: give 'keep' or 'drop'")
    table = observed.spells()
    if state is not None:
        if state not in observed.states:
            raise DogesimError(f"no state {state!r}; states: {', '.join(observed.states)}")
        table = table[table["state"] == state]
    if initial == "drop":
        table = table[~table["initial"].to_numpy(dtype=bool)]
    return table.reset_index(drop=True)


@dataclass
class SurvivalCurve:
    """A Kaplan–Meier curve ``S(k) = P(L > k)`` at the observed lengths ``k``.

    Attributes:
        time: the distinct exit lengths (ticks), increasing.
        survival: ``S`` just after each.
        ci_low, ci_high: Greenwood intervals (cloglog scale).
        at_risk, exits: (weighted) stays at risk at each length and exits at it.
        horizon: the largest length observed (exit or censoring).
        confidence: the interval's level.
    """

    time: np.ndarray
    survival: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    at_risk: np.ndarray
    exits: np.ndarray
    horizon: int
    confidence: float

    def at(self, k: np.ndarray | Sequence[int] | int) -> np.ndarray:
        """``S(k)`` at any lengths (a step function: 1 before the first exit)."""
        k = np.atleast_1d(np.asarray(k))
        padded = np.concatenate([[1.0], self.survival])
        return np.asarray(padded[np.searchsorted(self.time, k, side="right")], dtype=float)

    def frame(self) -> pd.DataFrame:
        """The curve as a table."""
        return pd.DataFrame(
            {
                "ticks": self.time,
                "at_risk": self.at_risk,
                "exits": self.exits,
                "survival": self.survival,
                "ci_low": self.ci_low,
                "ci_high": self.ci_high,
            }
        )


def _as_arrays(
    lengths: Any, censored: Any, weights: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    length = np.asarray(lengths, dtype=np.int64)
    cens = (
        np.zeros(len(length), dtype=bool) if censored is None else np.asarray(censored, dtype=bool)
    )
    w = np.ones(len(length)) if weights is None else np.asarray(weights, dtype=float)
    if not (len(length) == len(cens) == len(w)):
        raise DogesimError("spells: lengths, censored and weights differ in length")
    if len(length) and length.min() < 1:
        raise DogesimError(f"spells: a stay has {int(length.min())} attempts; lengths are >= 1")
    return length, cens, w


def kaplan_meier(
    lengths: Any,
    censored: Any = None,
    weights: Any = None,
    *,
    confidence: float = 0.95,
) -> SurvivalCurve:
    """The Kaplan–Meier estimate of ``P(L > k)`` from (possibly censored) lengths.

    A stay censored at ``c`` survived ``c`` attempts: it is at risk at every ``k <= c``.
    """
    length, cens, w = _as_arrays(lengths, censored, weights)
    if not len(length):
        raise DogesimError("kaplan_meier: no spells")
    time = np.unique(length[~cens])
    exits = np.array([w[(length == k) & ~cens].sum() for k in time])
    order = np.sort(length)
    sorted_w = w[np.argsort(length, kind="stable")]
    # At risk at k: every stay with length >= k (censored at c counts for k <= c).
    tail = np.concatenate([np.cumsum(sorted_w[::-1])[::-1], [0.0]])
    at_risk = tail[np.searchsorted(order, time, side="left")]
    hazard = np.divide(exits, at_risk, out=np.zeros_like(exits), where=at_risk > 0)
    survival = np.cumprod(1 - hazard)
    deff = kish_deff(w)
    raw_risk = np.array([(length >= k).sum() for k in time], dtype=float)
    raw_exits = np.array([((length == k) & ~cens).sum() for k in time], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(raw_risk > raw_exits, raw_exits / (raw_risk * (raw_risk - raw_exits)), 0.0)
        var = deff * np.cumsum(terms)
        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        log_s = np.log(np.maximum(survival, _TINY))
        se = np.sqrt(var) / np.abs(log_s)
        low = np.where(survival > 0, survival ** np.exp(-z * se), 0.0)
        high = np.where(survival > 0, survival ** np.exp(z * se), 0.0)
    low = np.where(survival >= 1, 1.0, np.nan_to_num(low, nan=0.0))
    high = np.where(survival >= 1, 1.0, np.nan_to_num(high, nan=1.0))
    low, high = np.minimum(low, high), np.maximum(low, high)
    return SurvivalCurve(time, survival, low, high, at_risk, exits, int(length.max()), confidence)


def _collapse(
    length: np.ndarray, censored: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (length, censored) pairs with their summed weights."""
    key = length * 2 + censored.astype(np.int64)
    unique, inverse = np.unique(key, return_inverse=True)
    return unique // 2, (unique % 2).astype(bool), np.bincount(inverse, weights=w)


def _short(value: float) -> float:
    """A probability to 8 significant digits (readable in model files; a positive one stays
    positive)."""
    return float(f"{float(value):.8g}")


def _plain_number(value: float) -> int | float:
    """Whole numbers as ints (tick counts), others as floats."""
    return int(value) if float(value).is_integer() else float(value)


class DwellLaw:
    """A law of a stay's length on ticks 1, 2, ...; subclasses define `cdf` and `fit`."""

    name: ClassVar[str] = "law"
    #: Free parameters (for AIC).
    n_params: ClassVar[int] = 0

    def cdf(self, k: np.ndarray) -> np.ndarray:
        """``P(L <= k)`` for integer `k` >= 0."""
        raise NotImplementedError

    def survival(self, k: np.ndarray) -> np.ndarray:
        """``P(L > k)``."""
        return 1.0 - self.cdf(np.asarray(k))

    def pmf(self, k: np.ndarray) -> np.ndarray:
        """``P(L = k)`` for integer `k` >= 1."""
        k = np.asarray(k)
        return np.maximum(self.cdf(k) - self.cdf(k - 1), 0.0)

    def log_likelihood(self, length: np.ndarray, censored: np.ndarray, w: np.ndarray) -> float:
        """The censored log-likelihood: ``log P(L = k)`` per exit, ``log P(L > c)`` per
        censored stay, weighted."""
        with np.errstate(divide="ignore"):
            exit_part = np.log(self.pmf(length[~censored]))
            cens_part = np.log(self.survival(length[censored]))
        total = float((w[~censored] * exit_part).sum() + (w[censored] * cens_part).sum())
        return total if not math.isnan(total) else -math.inf

    def mean(self) -> float:
        """The mean length in ticks (summed to where the survival is negligible)."""
        k = np.arange(0, 100_000)
        return float(self.survival(k).sum())

    def params(self) -> dict[str, float]:
        """The parameters, by name."""
        return {}

    def spec(self) -> dict[str, Any]:
        """The law as plain model-file settings, lengths in ticks: ``{"law": name, ...}``."""
        return {"law": self.name, **{k: _plain_number(v) for k, v in self.params().items()}}

    def describe(self) -> str:
        """``name(param=value, ...)``."""
        inner = ", ".join(f"{k}={v:.6g}" for k, v in self.params().items())
        return f"{self.name}({inner})"

    @classmethod
    def fit(cls, length: np.ndarray, censored: np.ndarray, w: np.ndarray) -> DwellLaw:
        """The censored MLE."""
        raise NotImplementedError


@dataclass
class Geometric(DwellLaw):
    """The chain's law: a chance `p` per tick of leaving."""

    p: float
    name: ClassVar[str] = "geometric"
    n_params: ClassVar[int] = 1

    def cdf(self, k: np.ndarray) -> np.ndarray:
        return 1.0 - (1.0 - self.p) ** np.maximum(np.asarray(k, dtype=float), 0.0)

    def params(self) -> dict[str, float]:
        return {"p": self.p}

    @classmethod
    def fit(cls, length: np.ndarray, censored: np.ndarray, w: np.ndarray) -> Geometric:
        trials = float((w * length).sum())
        return cls(float(w[~censored].sum()) / trials if trials else 0.0)


@dataclass
class Fixed(DwellLaw):
    """Exactly `ticks` attempts."""

    ticks: int
    name: ClassVar[str] = "fixed"
    n_params: ClassVar[int] = 1

    def cdf(self, k: np.ndarray) -> np.ndarray:
        return (np.asarray(k) >= self.ticks).astype(float)

    def params(self) -> dict[str, float]:
        return {"ticks": float(self.ticks)}

    @classmethod
    def fit(cls, length: np.ndarray, censored: np.ndarray, w: np.ndarray) -> Fixed:
        exits = length[~censored]
        if not len(exits):
            return cls(int(length.max()) + 1)
        # The most common exit length (by weight): the only value with a finite likelihood
        # when all exits agree, and the closest law otherwise.
        values, inverse = np.unique(exits, return_inverse=True)
        return cls(int(values[np.argmax(np.bincount(inverse, weights=w[~censored]))]))


@dataclass
class UniformTicks(DwellLaw):
    """Equally likely lengths `low` .. `high` (inclusive)."""

    low: int
    high: int
    name: ClassVar[str] = "uniform"
    n_params: ClassVar[int] = 2

    def cdf(self, k: np.ndarray) -> np.ndarray:
        k = np.asarray(k, dtype=float)
        return np.clip((k - self.low + 1) / (self.high - self.low + 1), 0.0, 1.0)

    def params(self) -> dict[str, float]:
        return {"low": float(self.low), "high": float(self.high)}

    @classmethod
    def fit(cls, length: np.ndarray, censored: np.ndarray, w: np.ndarray) -> UniformTicks:
        exits = length[~censored]
        low = int(exits.min()) if len(exits) else int(length.max()) + 1
        high = max(int(exits.max()) if len(exits) else low, low)
        if censored.any():
            high = max(high, int(length[censored].max()) + 1)
        # Widening past the largest exit can only help censored stays; try the few sizes.
        best, best_ll = cls(low, high), -math.inf
        top = max(high, int(length.max()) + 1)
        for h in range(high, min(top, high + 200) + 1):
            law = cls(low, h)
            ll = law.log_likelihood(length, censored, w)
            if ll > best_ll:
                best, best_ll = law, ll
        return best


@dataclass
class _Continuous(DwellLaw):
    """A continuous law in ticks put on the grid as ``max(1, ceil(X))``."""

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        """The continuous law's cdf at `x` > 0."""
        raise NotImplementedError

    def cdf(self, k: np.ndarray) -> np.ndarray:
        k = np.asarray(k, dtype=float)
        return np.where(k < 1, 0.0, self._cdf(np.maximum(k, 1.0)))

    @classmethod
    def _from(cls, theta: np.ndarray) -> _Continuous:
        raise NotImplementedError

    @classmethod
    def _start(cls, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def fit(cls, length: np.ndarray, censored: np.ndarray, w: np.ndarray) -> DwellLaw:
        # The likelihood only needs each distinct (length, censored) pair's total weight.
        length, censored, w = _collapse(length, censored, w)
        exits = length[~censored].astype(float)
        # Start from the continuous law fitted to the exits, each put mid-tick.
        x = np.maximum(exits - 0.5, 0.5) if len(exits) else length.astype(float) + 1
        wx = w[~censored] if len(exits) else w

        def loss(theta: np.ndarray) -> float:
            ll = cls._from(theta).log_likelihood(length, censored, w)
            return -ll if math.isfinite(ll) else 1e300

        start = cls._start(x, wx)
        result = optimize.minimize(loss, start, method="Nelder-Mead", options={"xatol": 1e-6})
        return cls._from(result.x if result.fun <= loss(start) else start)


@dataclass
class Exponential(_Continuous):
    """Exponential with `rate` per tick (on the grid: geometric, ``p = 1 - e^-rate``)."""

    rate: float
    name: ClassVar[str] = "exponential"
    n_params: ClassVar[int] = 1

    def cdf(self, k: np.ndarray) -> np.ndarray:
        k = np.asarray(k, dtype=float)
        return np.where(k < 1, 0.0, 1.0 - np.exp(-self.rate * np.maximum(k, 0.0)))

    def params(self) -> dict[str, float]:
        return {"rate": self.rate}

    @classmethod
    def fit(cls, length: np.ndarray, censored: np.ndarray, w: np.ndarray) -> Exponential:
        # The grid law is geometric, whose MLE is closed-form.
        p = Geometric.fit(length, censored, w).p
        return cls(-math.log(1.0 - p) if p < 1 else math.inf)


@dataclass
class LogNormal(_Continuous):
    """Log-normal: ``log X`` normal with mean `mu` and sd `sigma` (X in ticks)."""

    mu: float
    sigma: float
    name: ClassVar[str] = "lognormal"
    n_params: ClassVar[int] = 2

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(special.ndtr((np.log(x) - self.mu) / self.sigma))

    def params(self) -> dict[str, float]:
        return {"mu": self.mu, "sigma": self.sigma}

    @classmethod
    def _from(cls, theta: np.ndarray) -> LogNormal:
        return cls(float(theta[0]), float(np.exp(np.clip(theta[1], -12, 5))))

    @classmethod
    def _start(cls, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        logs = np.log(x)
        mu = float(np.average(logs, weights=w))
        sd = math.sqrt(float(np.average((logs - mu) ** 2, weights=w))) or 0.1
        return np.array([mu, math.log(max(sd, 1e-3))])


@dataclass
class Gamma(_Continuous):
    """Gamma with `shape` and `scale` (ticks)."""

    shape: float
    scale: float
    name: ClassVar[str] = "gamma"
    n_params: ClassVar[int] = 2

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(special.gammainc(self.shape, x / self.scale))

    def params(self) -> dict[str, float]:
        return {"shape": self.shape, "scale": self.scale}

    @classmethod
    def _from(cls, theta: np.ndarray) -> Gamma:
        a, s = np.exp(np.clip(theta, -12, 12))
        return cls(float(a), float(s))

    @classmethod
    def _start(cls, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        mean = float(np.average(x, weights=w))
        var = float(np.average((x - mean) ** 2, weights=w)) or mean * 0.1
        shape = max(mean * mean / var, 1e-2)
        return np.log(np.array([shape, mean / shape]))


@dataclass
class Empirical(DwellLaw):
    """The Kaplan–Meier curve itself as a law: a histogram of lengths (the censored NPMLE).

    Past the largest exit the remaining mass sits one tick past the horizon.
    """

    time: np.ndarray
    survival_at: np.ndarray
    horizon: int
    name: ClassVar[str] = "empirical"
    n_params: ClassVar[int] = 0

    def cdf(self, k: np.ndarray) -> np.ndarray:
        k = np.atleast_1d(np.asarray(k))
        padded = np.concatenate([[1.0], self.survival_at])
        s = padded[np.searchsorted(self.time, k, side="right")]
        return np.where(k > self.horizon, 1.0, 1.0 - s)

    def params(self) -> dict[str, float]:
        return {"support": float(len(self.time)), "horizon": float(self.horizon)}

    def spec(self) -> dict[str, Any]:
        """``{"law": "empirical", "histogram": {ticks: probability, ...}}``."""
        return {"law": self.name, "histogram": self.histogram()}

    def histogram(self) -> dict[int, float]:
        """Probability of each length (ticks) with positive mass."""
        ks = np.append(self.time, self.horizon + 1)
        mass = self.pmf(ks)
        return {int(k): float(m) for k, m in zip(ks, mass, strict=True) if m > 0}

    @classmethod
    def fit(cls, length: np.ndarray, censored: np.ndarray, w: np.ndarray) -> Empirical:
        curve = kaplan_meier(length, censored, w)
        return cls(curve.time, curve.survival, curve.horizon)


#: The laws `fit_dwell` tries, in order (ties go to the earlier).
LAWS: tuple[type[DwellLaw], ...] = (
    Geometric,
    Fixed,
    UniformTicks,
    Exponential,
    LogNormal,
    Gamma,
    Empirical,
)


def ks_distance(curve: SurvivalCurve, law: DwellLaw) -> float:
    """``max_k |S_KM(k) - S_law(k)|`` over ticks 0 .. the horizon (the observed range)."""
    k = np.arange(0, curve.horizon + 1)
    return float(np.max(np.abs(curve.at(k) - law.survival(k))))


@dataclass
class DwellFit:
    """The laws fitted to one set of stays, best (lowest AIC) first.

    Attributes:
        curve: the Kaplan–Meier curve.
        laws: the fitted laws; `log_likelihood`, `aic` and `ks` per law name.
        spells, exits: number of stays and of uncensored ones.
    """

    curve: SurvivalCurve
    laws: list[DwellLaw]
    log_likelihood: dict[str, float]
    aic: dict[str, float]
    ks: dict[str, float]
    spells: int
    exits: int

    @property
    def best(self) -> DwellLaw:
        """The law with the lowest AIC."""
        return self.laws[0]

    def law(self, name: str) -> DwellLaw:
        """The fitted law called `name`."""
        for law in self.laws:
            if law.name == name:
                return law
        raise DogesimError(f"no fitted law {name!r}; fitted: {[x.name for x in self.laws]}")


def fit_dwell(
    lengths: Any,
    censored: Any = None,
    weights: Any = None,
    *,
    laws: Sequence[type[DwellLaw]] = LAWS,
    confidence: float = 0.95,
) -> DwellFit:
    """Fit each law in `laws` to the stays by censored maximum likelihood; rank by AIC."""
    length, cens, w = _as_arrays(lengths, censored, weights)
    if not len(length):
        raise DogesimError("fit_dwell: no spells")
    curve = kaplan_meier(length, cens, w, confidence=confidence)
    fitted: list[tuple[float, int, DwellLaw]] = []
    loglik: dict[str, float] = {}
    aic: dict[str, float] = {}
    ks: dict[str, float] = {}
    for position, kind in enumerate(laws):
        law = kind.fit(length, cens, w)
        ll = law.log_likelihood(length, cens, w)
        k = len(curve.time) if isinstance(law, Empirical) else law.n_params
        loglik[law.name] = ll
        aic[law.name] = 2 * k - 2 * ll if math.isfinite(ll) else math.inf
        ks[law.name] = ks_distance(curve, law)
        fitted.append((aic[law.name], position, law))
    fitted.sort(key=lambda item: (item[0], item[1]))
    return DwellFit(
        curve,
        [law for _, _, law in fitted],
        loglik,
        aic,
        ks,
        len(length),
        int((~cens).sum()),
    )


@dataclass
class StateDwell:
    """`fit_dwell` for one state of a log."""

    state: str
    fit: DwellFit


def dwell_report(
    observed: Observed,
    *,
    states: Sequence[str] | None = None,
    initial: str = "keep",
    laws: Sequence[type[DwellLaw]] = LAWS,
    confidence: float = 0.95,
) -> dict[str, DwellFit]:
    """`fit_dwell` for every state with at least one stay (or the given `states`)."""
    table = spells(observed, initial=initial)
    out: dict[str, DwellFit] = {}
    for state in states or observed.states:
        part = table[table["state"] == state]
        if not len(part):
            continue
        out[state] = fit_dwell(
            part["length"].to_numpy(),
            part["censored"].to_numpy(dtype=bool),
            part["weight"].to_numpy(dtype=float),
            laws=laws,
            confidence=confidence,
        )
    return out


def dwell_table(report: dict[str, DwellFit]) -> pd.DataFrame:
    """One row per state and law: parameters, log-likelihood, AIC, KS distance, best."""
    rows = []
    for state, fit in report.items():
        for law in fit.laws:
            rows.append(
                {
                    "state": state,
                    "law": law.describe(),
                    "spells": fit.spells,
                    "exits": fit.exits,
                    "log_likelihood": fit.log_likelihood[law.name],
                    "aic": fit.aic[law.name],
                    "ks": fit.ks[law.name],
                    "best": law is fit.best,
                }
            )
    return pd.DataFrame(rows)


@dataclass
class Kernel:
    """A semi-Markov kernel: how long a stay lasts and where it goes, given its length.

    Attributes:
        dwell: ``(state, first)`` -> the stay's length law (`Empirical`); ``first`` marks a
            subject's first stay (from its start), kept apart when `separate_first`.
        destinations: ``(state, first)`` -> a table indexed by length (1 .. horizon + 1),
            one column per destination, rows summing to 1: where a stay of that length
            goes (exits within `window` ticks of the length, else the nearest five).
        separate_first: whether first stays have their own laws.
    """

    dwell: dict[tuple[str, bool], Empirical]
    destinations: dict[tuple[str, bool], pd.DataFrame]
    separate_first: bool

    def stay_kernel(self, state: str) -> StayKernel | None:
        """`state`'s kernel as a model's dwell law (`dogesim.laws.StayKernel`, lengths in
        ticks, destinations by target state), first stays apart when fitted apart; None
        for a state no stay was seen to leave."""
        later_key, first_key = self.key(state, False), self.key(state, True)
        if later_key is None or first_key is None:
            return None
        first = self._stay_kernel(first_key) if first_key != later_key else None
        return self._stay_kernel(later_key, first)

    def _stay_kernel(self, key: tuple[str, bool], first: StayKernel | None = None) -> StayKernel:
        histogram = self.dwell[key].histogram()
        table = self.destinations[key]
        rows = table.loc[[min(k, int(table.index[-1])) for k in histogram]]
        to = {str(d): [_short(x) for x in rows[d].to_numpy()] for d in table.columns}
        weights = [_short(w) for w in histogram.values()]
        return StayKernel(list(histogram), weights, to, first=first)

    def dwell_laws(self) -> dict[str, StayKernel]:
        """Every state's `stay_kernel` (states never left have none): ``Model(dwell=...)``."""
        states = dict.fromkeys(state for state, _ in self.dwell)
        out = {}
        for state in states:
            law = self.stay_kernel(state)
            if law is not None:
                out[state] = law
        return out

    def key(self, state: str, first: bool) -> tuple[str, bool] | None:
        """The key holding `state`'s laws for a first (or later) stay, None if final."""
        for candidate in ((state, first and self.separate_first), (state, not first)):
            if candidate in self.dwell:
                return candidate
        return None


def fit_kernel(observed: Observed, *, separate_first: bool = True, window: int = 1) -> Kernel:
    """Fit a semi-Markov kernel from a log's stays (see `Kernel`).

    Args:
        observed: the log.
        separate_first: fit subjects' first stays apart (a cohort's first stay often
            follows another law: two years of school, not a geometric wait).
        window: destinations given length ``L`` pool the exits of length ``L +/- window``.
    """
    table = spells(observed)
    dwell: dict[tuple[str, bool], Empirical] = {}
    destinations: dict[tuple[str, bool], pd.DataFrame] = {}
    first_flags = (True, False) if separate_first else (False,)
    for state in observed.states:
        for first in first_flags:
            part = table[table["state"] == state]
            if separate_first:
                part = part[part["initial"].to_numpy(dtype=bool) == first]
            exits = part[~part["censored"].to_numpy(dtype=bool)]
            if not len(exits):
                continue
            dwell[(state, first)] = Empirical.fit(
                part["length"].to_numpy(),
                part["censored"].to_numpy(dtype=bool),
                part["weight"].to_numpy(dtype=float),
            )
            destinations[(state, first)] = _destinations(exits, window)
    return Kernel(dwell, destinations, separate_first)


def _destinations(exits: pd.DataFrame, window: int) -> pd.DataFrame:
    """Destination shares per length from the exits near it (weighted)."""
    length = exits["length"].to_numpy(dtype=np.int64)
    weight = exits["weight"].to_numpy(dtype=float)
    targets = sorted(set(exits["to_state"]), key=str)
    onehot = np.stack([(exits["to_state"] == t).to_numpy(dtype=float) for t in targets], axis=1)
    horizon = int(length.max()) + 1
    rows = []
    for k in range(1, horizon + 1):
        near = np.abs(length - k) <= window
        if not near.any():
            near = np.zeros(len(length), dtype=bool)
            near[np.argsort(np.abs(length - k), kind="stable")[:5]] = True
        mass = (onehot[near] * weight[near, None]).sum(axis=0)
        rows.append(
            mass / mass.sum() if mass.sum() > 0 else np.full(len(targets), 1 / len(targets))
        )
    return pd.DataFrame(rows, columns=targets, index=pd.RangeIndex(1, horizon + 1, name="length"))
