"""Spells: lengths and censoring from logs, Kaplan–Meier with Greenwood intervals, dwell laws
fitted by censored likelihood and chosen by AIC, KS distances."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dogesim import DogesimError
from dogesim.report.fit import fit_observed
from dogesim.report.observed import observe
from dogesim.report.spells import (
    Empirical,
    Fixed,
    Gamma,
    Geometric,
    LogNormal,
    UniformTicks,
    dwell_report,
    dwell_table,
    fit_dwell,
    fit_kernel,
    kaplan_meier,
    ks_distance,
    spells,
)
from tests.unit.fit_helpers import count_covered, coverage_bounds, draw_chain


def test_spells_of_a_hand_log() -> None:
    """One subject over 10 ticks: a for ticks 0-2 (leaves at 2), b for 3-6 (leaves at 6),
    a from 7, censored after 3 attempts; a silent subject is one censored stay of 10."""
    log = pd.DataFrame(
        [
            {"subject": 1, "timestamp": 2000, "from_state": "a", "to_state": "b"},
            {"subject": 1, "timestamp": 6000, "from_state": "b", "to_state": "a"},
        ]
    )
    obs = observe(
        log, tick=1000, states=["a", "b"], window_start=0, ticks=10, roster={1: "a", 2: "b"}
    )
    table = spells(obs)
    assert table[
        ["subject", "state", "first", "length", "censored", "initial"]
    ].values.tolist() == [
        [1, "a", 0, 3, False, True],
        [1, "b", 3, 4, False, False],
        [1, "a", 7, 3, True, False],
        [2, "b", 0, 10, True, True],
    ]
    assert spells(obs, "a", initial="drop")["length"].tolist() == [3]
    with pytest.raises(DogesimError, match="no state 'z'"):
        spells(obs, "z")


def test_kaplan_meier_by_hand() -> None:
    """Lengths 1, 2, 2+, 3, 4+ (+ censored): S(1)=4/5, S(2)=4/5*3/4, S(3)=S(2)*1/2, with the
    Greenwood variance sum d/(n(n-d))."""
    curve = kaplan_meier([1, 2, 2, 3, 4], [False, False, True, False, True])
    assert curve.time.tolist() == [1, 2, 3]
    assert curve.at_risk.tolist() == [5, 4, 2]
    assert curve.survival.tolist() == pytest.approx([0.8, 0.6, 0.3])
    assert curve.at([0, 1, 2, 3, 10]).tolist() == pytest.approx([1, 0.8, 0.6, 0.3, 0.3])
    var = 1 / (5 * 4) + 1 / (4 * 3) + 1 / (2 * 1)
    se = math.sqrt(var) / abs(math.log(0.3))
    assert curve.ci_low[2] == pytest.approx(0.3 ** math.exp(1.959964 * se), rel=1e-5)
    uncensored = kaplan_meier([1, 1, 2, 5])
    assert uncensored.survival.tolist() == pytest.approx([0.5, 0.25, 0.0])


@pytest.mark.parametrize("seeds", [100, pytest.param(1000, marks=pytest.mark.slow)])
def test_greenwood_intervals_cover_at_nominal_rate(seeds: int) -> None:
    """Over many seeds of 80 gamma-law stays with random censoring, the 95% interval of S(k)
    at three lengths covers the true survival at a rate consistent with Binomial(seeds, .95)."""
    rng = np.random.default_rng(31)
    law = Gamma(3.0, 2.0)
    checks = (2, 5, 9)
    truth = law.survival(np.array(checks))
    pairs: dict[int, list[tuple[float, float]]] = {k: [] for k in checks}
    for _ in range(seeds):
        length = np.maximum(np.ceil(rng.gamma(3.0, 2.0, 80)), 1).astype(int)
        cut = rng.integers(1, 20, 80)
        censored = cut < length
        observed = np.where(censored, cut, length)
        curve = kaplan_meier(observed, censored)
        for k in checks:
            where = np.searchsorted(curve.time, k, side="right") - 1
            low = curve.ci_low[where] if where >= 0 else 1.0
            high = curve.ci_high[where] if where >= 0 else 1.0
            pairs[k].append((low, high))
    low, high = coverage_bounds(seeds, 0.95, alpha=1e-3 / len(checks))
    for k, t in zip(checks, truth, strict=True):
        assert low <= count_covered(pairs[k], float(t)) <= high, k


def draw(law: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Lengths on the tick grid from a named law (continuous ones as max(1, ceil(X)))."""
    draws = {
        "geometric": lambda: rng.geometric(0.15, n).astype(float),
        "fixed": lambda: np.full(n, 24.0),
        "uniform": lambda: rng.integers(5, 16, n).astype(float),
        "lognormal": lambda: np.ceil(rng.lognormal(2.0, 0.4, n)),
        "gamma": lambda: np.ceil(rng.gamma(6.0, 1.5, n)),
    }
    return np.maximum(draws[law](), 1).astype(int)


@pytest.mark.parametrize("law", ["geometric", "fixed", "uniform", "lognormal", "gamma"])
def test_the_true_law_is_chosen_and_recovered(law: str) -> None:
    """2,000 stays from each law, 10% censored at random: AIC ranks the law first among the
    parametric ones (or a law nesting it, by a chance margin), its parameters are recovered
    within 8%, and its KS distance to the KM curve is small."""
    rng = np.random.default_rng(7)
    length = draw(law, 2000, rng)
    censored = rng.random(2000) < 0.1
    observed = np.where(censored, np.maximum(1, (length * rng.random(2000)).astype(int)), length)
    fit = fit_dwell(observed, censored)
    parametric = [x for x in fit.laws if not isinstance(x, Empirical)]
    chosen = parametric[0]
    # A wider law that contains the true one (gamma with shape 1 is geometric on the grid)
    # may win by chance, but only by what a chi-square(1) statistic gives at p = 0.001.
    nesting = {"geometric": {"exponential", "gamma"}, "fixed": {"uniform"}}.get(law, set())
    assert chosen.name == law or (
        chosen.name in nesting
        and fit.aic[law] - fit.aic[chosen.name] <= 2 + stats.chi2.ppf(0.999, 1)
    ), (chosen.describe(), fit.aic)
    expected = {
        "geometric": {"p": 0.15},
        "fixed": {"ticks": 24},
        "uniform": {"low": 5, "high": 15},
        "lognormal": {"mu": 2.0, "sigma": 0.4},
        "gamma": {"shape": 6.0, "scale": 1.5},
    }[law]
    for name, value in expected.items():
        assert fit.law(law).params()[name] == pytest.approx(value, rel=0.08), name
    assert fit.ks[law] < 0.03


def test_geometric_dwell_is_the_chain_fit() -> None:
    """On a chain's log the censored geometric MLE of a state's stays is exactly the chain's
    fitted total chance of leaving it."""
    rng = np.random.default_rng(3)
    log, roster = draw_chain(
        {"a": [("b", 0.04), ("c", 0.02)], "b": [("a", 0.1)], "c": [("a", 0.3)]}, "a", 200, 60, rng
    )
    obs = observe(log, tick=1000, window_start=0, ticks=60, roster=roster)
    chain = fit_observed(obs)
    report = dwell_report(obs, laws=[Geometric])
    for state in ("a", "b", "c"):
        total = sum(t.probability for t in chain.transitions if t.from_state == state)
        assert report[state].law("geometric").params()["p"] == pytest.approx(total, rel=1e-12)


def test_fixed_and_uniform_likelihoods_with_censoring() -> None:
    """A fixed law has probability 0 for other lengths and 1 of surviving shorter censoring;
    a uniform law stretches past the largest censored stay."""
    fixed = Fixed(5)
    length = np.array([5, 5, 3])
    censored = np.array([False, False, True])
    assert fixed.log_likelihood(length, censored, np.ones(3)) == 0.0
    assert fixed.log_likelihood(np.array([4]), np.array([False]), np.ones(1)) == -math.inf
    uniform = UniformTicks.fit(np.array([2, 4, 9]), np.array([False, False, True]), np.ones(3))
    assert uniform.low == 2 and uniform.high >= 10
    assert LogNormal(1.0, 0.5).pmf(np.arange(1, 400)).sum() == pytest.approx(1.0, abs=1e-9)


def test_ks_distance_and_table() -> None:
    """The empirical law sits on the KM curve (KS 0); a wrong geometric law is far; the
    table has one row per state and law with exactly one best per state."""
    length = np.array([24] * 30 + [12] * 10)
    curve = kaplan_meier(length)
    assert ks_distance(curve, Empirical.fit(length, np.zeros(40, bool), np.ones(40))) == 0.0
    assert ks_distance(curve, Geometric(1 / 21)) > 0.3
    fit = fit_dwell(length)
    assert fit.best.name == "empirical"
    log = pd.DataFrame(
        [
            {"subject": s, "timestamp": 1000 * (3 + s % 4), "from_state": "a", "to_state": "b"}
            for s in range(20)
        ]
    )
    obs = observe(log, tick=1000, window_start=0, ticks=10)
    table = dwell_table(dwell_report(obs))
    assert set(table["state"]) == {"a", "b"}
    assert table.groupby("state")["best"].sum().tolist() == [1, 1]


def test_law_specs_are_plain_settings() -> None:
    """Fitted laws export as plain settings in ticks; the histogram's masses sum to 1."""
    assert Fixed(24).spec() == {"law": "fixed", "ticks": 24}
    assert Gamma(2.5, 3.0).spec() == {"law": "gamma", "shape": 2.5, "scale": 3}
    histogram = Empirical.fit(
        np.array([3, 3, 5, 7]), np.array([False, False, False, True]), np.ones(4)
    )
    spec = histogram.spec()
    assert spec["law"] == "empirical" and spec["histogram"] == pytest.approx(
        {3: 0.5, 5: 0.25, 8: 0.25}
    )


def test_kernel_recovers_destination_by_length() -> None:
    """Stays of 3 ticks go to b, of 8 ticks to c: the kernel's destination table says so,
    the dwell law puts half the mass on each length, and first stays are kept apart."""
    rows = []
    for s in range(40):
        length = 3 if s % 2 else 8
        to = "b" if s % 2 else "c"
        rows.append(
            {"subject": s, "timestamp": 1000 * (length - 1), "from_state": "a", "to_state": to}
        )
    obs = observe(pd.DataFrame(rows), tick=1000, states=["a", "b", "c"], window_start=0, ticks=12)
    kernel = fit_kernel(obs)
    table = kernel.destinations[("a", True)]
    assert table.loc[3].to_dict() == {"b": 1.0, "c": 0.0} and table.loc[8].to_dict() == {
        "b": 0.0,
        "c": 1.0,
    }
    assert kernel.dwell[("a", True)].histogram() == pytest.approx({3: 0.5, 8: 0.5})
    assert kernel.key("a", False) == ("a", True) and kernel.key("b", False) is None
