"""Time-varying chances: per-transition probabilities by month of year or by the subject's
age (ticks since its start), with Wilson intervals, and which factor explains more.

- `fit_by_factor(observed, factor="month"|"age", age_bins=...)`: the fitted chances per
  level of the factor (`FactorFit`), its log-likelihood and the likelihood-ratio test
  against constant chances.
- `compare_factors(observed, ...)`: both factors side by side (`FactorComparison`): LR
  statistics, degrees of freedom, p-values, AIC, and the one with the lower AIC.
- `month_concentration(observed)`: each calendar month's share of all events.
- `FactorFit.matrix(level, states)` and `FactorFit.shares(observed)`: the fitted chain's
  per-tick matrix at a level and its expected shares over a window (the analytic line of a
  time-varying chain, from the initial mix).

The model. In the chain each tick's attempt from state ``s`` takes transition ``i`` with
a chance ``p_i``; here ``p_i`` may depend on a level ``l`` of the tick (its calendar month,
or the age bin the subject is in): ``p_{i,l} = n_{i,l} / E_{s,l}``, the events of ``i`` in
ticks of level ``l`` over the subject-ticks spent in ``s`` at level ``l`` — the chain's MLE
within each level. The likelihood-ratio statistic ``G = 2 (log L_factor - log L_const)``
has ``df = sum_s (L_s - 1) K_s`` (``L_s`` levels with exposure in ``s``, ``K_s`` transitions
seen from ``s``) and is referred to the chi-square law. The two factors are not nested;
the one with the lower AIC (``2 params - 2 log L``) explains more per parameter.

Survey weights make the log-likelihoods pseudo-likelihoods; ``G`` is then divided by the
population's Kish design effect (a first-order Rao–Scott correction) before the test, and
the intervals use the effective sample size as in `dogesim.report.fit`.

Cost: the exposure is tallied per subject-tick (``subjects x ticks`` integers), meant for
panels and windows of up to some 10^7 subject-ticks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from dogesim.errors import DogesimError
from dogesim.report.fit import wilson_interval
from dogesim.report.observed import kish_deff

if TYPE_CHECKING:
    from dogesim.report.observed import Observed

__all__ = [
    "FactorComparison",
    "FactorFit",
    "compare_factors",
    "fit_by_factor",
    "month_concentration",
]

_FACTORS = ("month", "age", "none")


@dataclass
class FactorFit:
    """Chances per level of one factor.

    Attributes:
        factor: ``month`` (levels 1-12), ``age`` (levels: the age bins' lower edges in
            ticks) or ``none`` (one level: the constant chain).
        table: one row per transition and level: ``from_state``, ``trigger``, ``to_state``,
            ``level``, ``events``, ``exposure``, ``probability``, ``ci_low``, ``ci_high``.
        log_likelihood, constant_log_likelihood: of this model and of constant chances.
        lr_statistic, df, p_value: the likelihood-ratio test against constant chances.
        parameters: free parameters; `aic` ``2 parameters - 2 log_likelihood``.
    """

    factor: str
    table: pd.DataFrame
    log_likelihood: float
    constant_log_likelihood: float
    lr_statistic: float
    df: int
    p_value: float
    parameters: int
    aic: float
    confidence: float
    _edges: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64), repr=False)

    def matrix(self, level: int, states: Sequence[str]) -> np.ndarray:
        """The per-tick transition matrix at one level (rows sum to 1, stays on the
        diagonal; a level a state was never seen at keeps the state's pooled chances)."""
        index = {s: k for k, s in enumerate(states)}
        matrix = np.zeros((len(states), len(states)))
        pooled = self.table.groupby(["from_state", "to_state"])[["events", "exposure"]].sum()
        at = self.table[self.table["level"] == level].set_index(["from_state", "to_state"])
        for (src, dst), row in pooled.iterrows():
            if (src, dst) in at.index and at.loc[(src, dst), "exposure"] > 0:
                p = float(at.loc[(src, dst), "probability"])
            else:
                p = float(row["events"] / row["exposure"]) if row["exposure"] else 0.0
            if src != dst:
                matrix[index[src], index[dst]] += p
        np.fill_diagonal(matrix, 0.0)
        np.fill_diagonal(matrix, 1.0 - matrix.sum(axis=1))
        return matrix

    def shares(
        self, observed: Observed, initial: Mapping[str, float] | None = None
    ) -> pd.DataFrame:
        """The chain's expected shares after each tick of `observed`'s window, from the
        initial mix (default: the roster's), with each tick's chances at its level (by
        month; by age for a cohort that starts at tick 0)."""
        states = list(observed.states)
        if initial is None:
            weights = observed.roster.groupby("state")["weight"].sum()
            initial = {s: float(weights.get(s, 0.0)) for s in states}
        pi = np.array([float(initial.get(s, 0.0)) for s in states])
        pi = pi / pi.sum()
        ticks = np.arange(observed.ticks)
        edges = self._edges
        levels = _levels(observed, self.factor, np.zeros_like(ticks), ticks, edges)
        cache: dict[int, np.ndarray] = {}
        rows = []
        for level in levels:
            key = int(level)
            if key not in cache:
                cache[key] = self.matrix(key, states)
            pi = pi @ cache[key]
            rows.append(pi)
        return pd.DataFrame(
            np.array(rows), columns=states, index=pd.RangeIndex(len(rows), name="tick")
        )

    @property
    def edges(self) -> list[int]:
        """The levels: months 1-12, the age bins' lower edges (ticks), or [0]."""
        if self.factor == "month":
            return list(range(1, 13))
        if self.factor == "age":
            return [int(e) for e in self._edges]
        return [0]

    def chances(self, from_state: str, trigger: str) -> list[float]:
        """One transition's chance (%) at every level of `edges`; a level the state was
        never seen at gets the transition's pooled chance (as `matrix` does)."""
        rows = self.table[
            (self.table["from_state"] == from_state) & (self.table["trigger"] == trigger)
        ]
        if not len(rows):
            raise DogesimError(f"no transition {trigger!r} from {from_state!r} in the fit")
        exposure = float(rows["exposure"].sum())
        pooled = 100 * float(rows["events"].sum()) / exposure if exposure else 0.0
        at = {
            int(k): 100 * float(p)
            for k, p, e in zip(rows["level"], rows["probability"], rows["exposure"], strict=True)
            if e > 0
        }
        return [at.get(level, pooled) for level in self.edges]

    def profile(self, from_state: str, trigger: str) -> dict[int, float]:
        """One transition's chance (%) per level."""
        rows = self.table[
            (self.table["from_state"] == from_state) & (self.table["trigger"] == trigger)
        ]
        if not len(rows):
            raise DogesimError(f"no transition {trigger!r} from {from_state!r} in the fit")
        return {
            int(k): 100 * float(p) for k, p in zip(rows["level"], rows["probability"], strict=True)
        }


@dataclass
class FactorComparison:
    """`fit_by_factor` for month of year and age, and which explains more (lower AIC)."""

    month: FactorFit
    age: FactorFit
    better: str

    def table(self) -> pd.DataFrame:
        """One row per factor: LR statistic, df, p-value, log-likelihood, AIC."""
        return pd.DataFrame(
            [
                {
                    "factor": f.factor,
                    "log_likelihood": f.log_likelihood,
                    "lr_statistic": f.lr_statistic,
                    "df": f.df,
                    "p_value": f.p_value,
                    "aic": f.aic,
                }
                for f in (self.month, self.age)
            ]
        )


def _levels(
    observed: Observed, factor: str, subject_start: np.ndarray, ticks: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    if factor == "month":
        months = observed.grid.month_of_year(np.arange(observed.ticks))
        return months[ticks]
    if factor == "age":
        return edges[np.searchsorted(edges, ticks - subject_start, side="right") - 1]
    return np.zeros(len(ticks), dtype=np.int64)


def _default_edges(ticks: int) -> np.ndarray:
    width = max(1, -(-ticks // 6))
    return np.arange(0, ticks, width, dtype=np.int64)


def fit_by_factor(
    observed: Observed,
    factor: str = "month",
    *,
    age_bins: Sequence[int] | None = None,
    confidence: float = 0.95,
) -> FactorFit:
    """Fit each transition's chance per level of `factor` (see the module docstring).

    Args:
        observed: the log (`observed.observe`).
        factor: ``"month"`` (calendar month of the tick), ``"age"`` (ticks since the
            subject's start, in `age_bins`) or ``"none"``.
        age_bins: the bins' lower edges in ticks, increasing from 0 (default: 6 equal bins
            over the window).
        confidence: the intervals' level.
    """
    if factor not in _FACTORS:
        raise DogesimError(f"factor {factor!r}: give one of {', '.join(_FACTORS)}")
    edges = np.asarray(age_bins if age_bins is not None else _default_edges(observed.ticks))
    if age_bins is not None and (len(edges) == 0 or edges[0] != 0 or np.any(np.diff(edges) <= 0)):
        raise DogesimError(f"age_bins {list(age_bins)}: lower edges increasing from 0")
    spells = observed.spells()
    starts = observed.roster["start"].reindex(spells["subject"]).to_numpy(dtype=np.int64)
    first = spells["first"].to_numpy(dtype=np.int64)
    length = spells["length"].to_numpy(dtype=np.int64)
    weight = spells["weight"].to_numpy(dtype=float)
    # Every attempt (subject-tick at risk) with its state, weight and level.
    owner = np.repeat(np.arange(len(spells)), length)
    tick = first[owner] + (np.arange(len(owner)) - np.repeat(np.cumsum(length) - length, length))
    level = _levels(observed, factor, starts[owner], tick, edges)
    state = spells["state"].to_numpy(dtype=object)
    exposure = (
        pd.DataFrame({"state": state[owner], "level": level, "w": weight[owner]})
        .groupby(["state", "level"])["w"]
        .agg(["sum", "size"])
    )
    moved = ~spells["censored"].to_numpy(dtype=bool)
    exit_tick = (first + length - 1)[moved]
    exit_level = _levels(observed, factor, starts[moved], exit_tick, edges)
    events = (
        pd.DataFrame(
            {
                "from_state": state[moved],
                "trigger": spells["trigger"].to_numpy(dtype=object)[moved],
                "to_state": spells["to_state"].to_numpy(dtype=object)[moved],
                "level": exit_level,
                "w": weight[moved],
            }
        )
        .groupby(["from_state", "trigger", "to_state", "level"])["w"]
        .sum()
    )
    deff = kish_deff(observed.roster["weight"].to_numpy(dtype=float))
    transitions = events.reset_index()[["from_state", "trigger", "to_state"]].drop_duplicates()
    rows = []
    for from_state, trigger, to_state in transitions.itertuples(index=False):
        for (s, lev), (e, raw) in exposure.loc[[from_state]].iterrows():
            n = float(events.get((from_state, trigger, to_state, lev), 0.0))
            p = n / e if e else 0.0
            n_eff = raw / deff
            low, high = wilson_interval(p * n_eff, n_eff, confidence)
            rows.append((s, trigger, to_state, int(lev), n, float(e), p, low, high))
    table = pd.DataFrame(
        rows,
        columns=[
            "from_state",
            "trigger",
            "to_state",
            "level",
            "events",
            "exposure",
            "probability",
            "ci_low",
            "ci_high",
        ],
    )
    loglik = _log_likelihood(table, exposure["sum"])
    const = _constant(table, exposure["sum"])
    levels_per_state = exposure.reset_index().groupby("state")["level"].nunique()
    k_per_state = transitions.groupby("from_state").size()
    df = int(sum((levels_per_state[s] - 1) * k for s, k in k_per_state.items()))
    lr = max(0.0, 2.0 * (loglik - const)) / deff
    params = int(sum(levels_per_state[s] * k for s, k in k_per_state.items()))
    p_value = float(stats.chi2.sf(lr, df)) if df > 0 else 1.0
    return FactorFit(
        factor,
        table,
        loglik,
        const,
        lr,
        df,
        p_value,
        params,
        2 * params - 2 * loglik,
        confidence,
        edges,
    )


def _log_likelihood(table: pd.DataFrame, exposure: pd.Series) -> float:
    """Multinomial log-likelihood per (state, level) at the MLE."""
    total = 0.0
    moved = table.groupby(["from_state", "level"])["events"].sum()
    for (state, level), e in exposure.items():
        n_moved = float(moved.get((state, level), 0.0))
        stay = e - n_moved
        if stay > 0:
            total += stay * math.log(stay / e)
    for n, p in zip(table["events"], table["probability"], strict=True):
        if n > 0:
            total += n * math.log(p)
    return total


def _constant(table: pd.DataFrame, exposure: pd.Series) -> float:
    """The log-likelihood of constant chances (levels pooled)."""
    pooled_e = exposure.groupby(level="state").sum()
    counts = table.groupby(["from_state", "trigger"])["events"].sum()
    total = 0.0
    for state, e in pooled_e.items():
        n_state = counts.loc[[state]] if state in counts.index.get_level_values(0) else []
        moved = float(sum(n_state))
        for n in n_state:
            if n > 0:
                total += n * math.log(n / e)
        if e - moved > 0:
            total += (e - moved) * math.log((e - moved) / e)
    return total


def compare_factors(
    observed: Observed, *, age_bins: Sequence[int] | None = None, confidence: float = 0.95
) -> FactorComparison:
    """Fit chances by month of year and by age; the better is the one with the lower AIC."""
    month = fit_by_factor(observed, "month", confidence=confidence)
    age = fit_by_factor(observed, "age", age_bins=age_bins, confidence=confidence)
    return FactorComparison(month, age, "month" if month.aic <= age.aic else "age")


def month_concentration(observed: Observed) -> pd.Series:
    """Each calendar month's share of the (weighted) events, indexed 1-12."""
    months = observed.grid.month_of_year(observed.events["tick"].to_numpy(dtype=np.int64))
    weights = observed.roster["weight"].reindex(observed.events["subject"]).to_numpy(dtype=float)
    shares = pd.Series(weights, index=months).groupby(level=0).sum()
    shares = shares.reindex(range(1, 13), fill_value=0.0)
    total = float(shares.sum())
    return shares / total if total else shares
