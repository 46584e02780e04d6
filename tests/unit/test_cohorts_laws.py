"""The laws of `dogesim.laws`: the tick-grid rule, their pmfs, sampling, the data form and
every validation error.

Statistical checks are Pearson chi-square tests with critical values computed from the
chi-square CDF at a false-alarm rate of 1e-6 per check, fixed seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dogesim.errors import ModelError
from dogesim.laws import (
    Empirical,
    Exponential,
    Fixed,
    Gamma,
    LogNormal,
    Uniform,
    as_law,
    law_from_dict,
    regularized_gamma,
)
from tests.unit.cohorts_stats import chi_square, chi_square_critical, fits_pmf

LAWS = [
    Fixed(3.5),
    Uniform(2, 7.5),
    Exponential(4),
    LogNormal(5, 0.6),
    Gamma(3, 2.5),
    Empirical.of_ticks({24: 30, 36: 5, 10: 2}),
    Empirical([0, 2.5, 10], [1, 3]),
]


def test_regularized_gamma_known_values() -> None:
    """P(a, x) matches closed forms: P(1, x) = 1 - e^-x and P(1/2, x) = erf(sqrt x)."""
    for x in (0.01, 0.5, 1.0, 3.0, 10.0, 40.0):
        assert regularized_gamma(1.0, x) == pytest.approx(-math.expm1(-x), rel=1e-12, abs=1e-15)
        assert regularized_gamma(0.5, x) == pytest.approx(math.erf(math.sqrt(x)), rel=1e-12)
    assert regularized_gamma(3.0, 0.0) == 0.0


def test_chi_square_critical_known_values() -> None:
    """The critical values agree with the closed form for 2 degrees of freedom."""
    # chi2 with df 2 is exponential of mean 2: P(X > x) = exp(-x/2)
    assert chi_square_critical(2, 1e-6) == pytest.approx(-2 * math.log(1e-6), rel=1e-9)
    assert chi_square_critical(1, 0.05) == pytest.approx(3.841459, rel=1e-5)


@pytest.mark.parametrize("law", LAWS, ids=lambda law: law.name)
def test_samples_follow_the_discretised_pmf(law: object) -> None:
    """Sampled waits K = max(1, ceil(X)) follow the law's pmf F(k) - F(k-1) (chi-square)."""
    assert hasattr(law, "ticks")
    rng = np.random.default_rng(20261202)
    samples = law.ticks(rng, 20_000)  # type: ignore[attr-defined]
    pmf = law.pmf(200)  # type: ignore[attr-defined]
    assert samples.min() >= 1
    assert pmf.sum() == pytest.approx(1.0, abs=1e-6)
    assert fits_pmf(samples, pmf)


def test_a_wrong_pmf_is_rejected() -> None:
    """The check can fail: gamma samples are rejected against a log-normal of the same mean."""
    rng = np.random.default_rng(7)
    samples = Gamma(3, 2.5).ticks(rng, 20_000)
    statistic, df = chi_square(samples, LogNormal(7.5 * math.exp(-0.18), 0.6).pmf(200))
    assert statistic > chi_square_critical(df)


def test_grid_rule_exact_values() -> None:
    """The grid rule on exact cases: fixed 3.5 -> 4; fixed 0 -> 1; exponential -> geometric;
    tick masses stay on their ticks."""
    assert Fixed(3.5).pmf(5).tolist() == [0, 0, 0, 1, 0]
    assert Fixed(0).pmf(2).tolist() == [1, 0]
    p = -math.expm1(-1 / 4)
    expected = [p * (1 - p) ** (k - 1) for k in range(1, 30)]
    assert Exponential(4).pmf(29) == pytest.approx(expected, rel=1e-12)
    pmf = Empirical.of_ticks({2: 1, 5: 3}).pmf(6)
    assert pmf == pytest.approx([0, 0.25, 0, 0, 0.75, 0])


def test_durations_rescale_to_ticks() -> None:
    """A law in durations becomes a law in ticks at a run's tick (10 min at 1 min ticks = 10)."""
    law = Gamma(2, "10 min")
    assert not law.in_ticks
    assert law.at_tick(60_000) == Gamma(2, 10)
    assert Uniform("1 min", "3 min").at_tick(30_000) == Uniform(2, 6)
    assert Empirical([0, "2 min"], [1]).at_tick(60_000) == Empirical([0, 2], [1])
    with pytest.raises(ModelError, match="durations; rescale it to a tick"):
        law.pmf(3)


@pytest.mark.parametrize("law", [*LAWS, Gamma(2, "10 min"), LogNormal("3 s", 0.5)], ids=str)
def test_data_form_round_trip(law: object) -> None:
    """law_from_dict(law.to_dict()) gives the law back (ticks and ms alike)."""
    assert law_from_dict(law.to_dict()) == law  # type: ignore[attr-defined]


def test_data_form_examples() -> None:
    """The documented data forms parse: scale_ticks, bare duration text, ms keys."""
    assert law_from_dict({"law": "gamma", "shape": 2, "scale_ticks": 12}) == Gamma(2, 12)
    assert law_from_dict({"law": "gamma", "shape": 2, "scale": "1 min"}).at_tick(1000) == Gamma(
        2, 60
    )
    assert law_from_dict({"law": "fixed", "value_ms": 3000}).at_tick(1000) == Fixed(3)
    assert as_law({"law": "exponential", "mean_ticks": 3}, "here") == Exponential(3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"shape": 2}, "a law is a mapping like"),
        ({"law": "weibull"}, "unknown law 'weibull'; laws are"),
        ({"law": ["gamma"], "shape": 2}, r"unknown law \['gamma'\]; laws are"),
        ({"law": {"gamma": 1}}, "unknown law {'gamma': 1}; laws are"),
        ({"law": None}, "unknown law None; laws are"),
        ({"law": "gamma", 3: 1, "shape": 2, "scale_ticks": 1}, "gamma law has no key 3"),
        ({"law": "gamma", "shape": 2}, "gamma law needs scale"),
        ({"law": "gamma", "shape": 2, "scale_ticks": 1, "rate": 3}, "no key 'rate'"),
        ({"law": "gamma", "shape": -1, "scale_ticks": 1}, "shape must be a finite number > 0"),
        ({"law": "gamma", "shape": 1, "scale_ticks": 0}, "scale must be > 0"),
        ({"law": "lognormal", "median_ticks": 2, "sigma": math.nan}, "sigma must be a finite"),
        ({"law": "uniform", "low_ticks": 5, "high_ticks": 2}, "low must be at most high"),
        ({"law": "uniform", "low_ticks": 1, "high": "2 min"}, "give every time the same way"),
        ({"law": "exponential", "mean_ticks": "x"}, "mean"),
        ({"law": "fixed", "value_ticks": True}, "value must be a number"),
        ({"law": "fixed", "value_ticks": 10**400}, "value must be a finite number >= 0"),
        ({"law": "empirical", "edges_ticks": [0, 1], "weights": [1, 2]}, "one weight per bin"),
        ({"law": "empirical", "edges_ticks": [0, 2, 1], "weights": [1, 2]}, "increase strictly"),
        ({"law": "empirical", "edges_ticks": [0, 1], "weights": [0]}, "weights sum to 0"),
    ],
)
def test_bad_laws_are_refused(data: dict[str, object], message: str) -> None:
    """Every bad law is a ModelError naming the place and the value."""
    with pytest.raises(ModelError, match=message) as caught:
        law_from_dict(data, "state 'school'")
    assert str(caught.value).startswith("state 'school': ")


def test_as_law_refuses_other_values() -> None:
    """Something that is neither a law nor a mapping is refused with an example."""
    with pytest.raises(ModelError, match="expected a law"):
        as_law(3, "dwell")
    with pytest.raises(ModelError, match="ticks must be whole numbers"):
        Empirical.of_ticks({0: 1})


def test_attribute_draws_are_continuous() -> None:
    """As an attribute law, draw gives continuous values with the law's mean."""
    rng = np.random.default_rng(3)
    law = LogNormal(math.exp(-0.32), 0.8)
    values = law.draw(rng, 200_000)
    assert law.expectation() == pytest.approx(1.0)
    # the sample mean's standard error is sqrt(e^{s^2} - 1) / sqrt(n) ~ 0.0021
    assert abs(values.mean() - 1.0) < 5 * 0.0021
    assert not np.allclose(values, np.round(values))


def test_fitted_forms_are_read() -> None:
    """The forms the fit writes (lengths in ticks) read as the same discrete laws."""
    p = 0.2
    geometric = law_from_dict({"law": "geometric", "p": p})
    assert geometric.pmf(10) == pytest.approx([p * (1 - p) ** (k - 1) for k in range(1, 11)])
    assert law_from_dict({"law": "fixed", "ticks": 24}) == Fixed(24)
    assert law_from_dict({"law": "exponential", "rate": 0.5}) == Exponential(2)
    assert law_from_dict({"law": "lognormal", "mu": 1.0, "sigma": 0.5}) == LogNormal(math.e, 0.5)
    uniform = law_from_dict({"law": "uniform", "low": 3, "high": 6}).pmf(7)
    assert uniform == pytest.approx([0, 0, 0.25, 0.25, 0.25, 0.25, 0])
    histogram = law_from_dict({"law": "empirical", "histogram": {2: 0.5, "4": 0.5}}).pmf(4)
    assert histogram == pytest.approx([0, 0.5, 0, 0.5])
    with pytest.raises(ModelError, match="here: low must be a finite number > 0"):
        law_from_dict({"law": "uniform", "low": 0, "high": 2}, "here")
    with pytest.raises(ModelError, match="here: geometric law: p must be at most 1"):
        law_from_dict({"law": "geometric", "p": 1.5}, "here")
    with pytest.raises(ModelError, match="here: uniform law: give whole ticks 1 <= low <= high"):
        law_from_dict({"law": "uniform", "low": 5, "high": 2}, "here")
