"""Laws at their extremes: heavy tails, huge and tiny parameters, values past int64 or
float's range. A wait on the grid is ``min(max(1, ceil(X)), HORIZON)`` (``HORIZON = 2**62``
ticks, never within any run), a run with such a law ends in bounded time, and a parameter
that makes a law meaningless is a `ModelError` naming the place and the value.

Statistical checks are normal bounds on binomial counts at a false-alarm rate of 1e-6 per
check (`Z_ALPHA`), fixed seeds; the hypothesis test is derandomised.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dogesim import MemorySink, Model, Simulation, Transition
from dogesim.engine.options import MAX_TICKS
from dogesim.errors import ModelError
from dogesim.laws import (
    _HUGE_SHAPE,
    HORIZON,
    Exponential,
    Fixed,
    Gamma,
    Law,
    LogNormal,
    StayKernel,
    Uniform,
    law_from_dict,
    regularized_gamma,
)
from dogesim.modelfile import load_model_text
from tests.unit.cohorts_stats import Z_ALPHA

ROOT = Path(__file__).resolve().parents[2]

#: Laws whose draws reach past int64 (or float's range) with a large chance.
HEAVY = [
    LogNormal(10, 1e3),
    Gamma(1e300, 1),
    Gamma(1, 1e300),
    Gamma(1e-3, 1e300),
    Exponential(1e300),
    Fixed(1e300),
    Uniform(0, 1.7e308),
]


def _binomial_ok(count: int, n: int, p: float) -> bool:
    """`count` successes of `n` trials of chance `p`, within the 1e-6 normal bound."""
    return abs(count - n * p) <= Z_ALPHA * math.sqrt(n * p * (1 - p)) + 1e-9


def test_the_horizon_is_the_longest_run() -> None:
    """The grid's horizon is the engine's largest tick count: a wait of it is never."""
    assert HORIZON == MAX_TICKS == 2**62


@pytest.mark.parametrize("law", HEAVY, ids=str)
def test_heavy_tailed_waits_are_clipped_to_the_horizon(law: Law) -> None:
    """Waits are whole ticks in 1 .. HORIZON, never negative, whatever the draw."""
    waits = law.ticks(np.random.default_rng(5), 10_000)
    assert waits.dtype == np.int64
    assert waits.min() >= 1
    assert waits.max() <= HORIZON


@pytest.mark.parametrize(
    "law", [LogNormal(10, 1e3), Gamma(1e-3, 1e300), Exponential(1e300)], ids=str
)
def test_clipped_waits_follow_the_truncated_law(law: Law) -> None:
    """``P(K = HORIZON) = 1 - F(HORIZON - 1)``: the tail past the horizon lands on it, and
    the waits below it keep the law (``P(K <= 100) = F(100)``)."""
    n = 20_000
    waits = law.ticks(np.random.default_rng(11), n)
    tail = 1.0 - law.cdf(float(HORIZON - 1))
    assert _binomial_ok(int((waits == HORIZON).sum()), n, tail)
    assert _binomial_ok(int((waits <= 100).sum()), n, law.cdf(100.0))


def test_nan_and_infinite_draws_are_the_horizon(monkeypatch: pytest.MonkeyPatch) -> None:
    """A draw past float's range (inf, or NaN from an overflow) is the horizon; -inf is 1."""
    law = Exponential(3)
    drawn = np.asarray([math.nan, math.inf, -math.inf, 0.0, 2.5, 1e30])
    monkeypatch.setattr(Exponential, "draw", lambda self, rng, n: drawn)
    waits = law.ticks(np.random.default_rng(0), len(drawn))
    assert waits.tolist() == [HORIZON, HORIZON, 1, 1, 3, HORIZON]


def _dwell_events(law: Law, subjects: int, ticks: int = 60, seed: int = 3) -> list[Any]:
    sink = MemorySink()
    model = Model(
        ["school", "out"],
        "school",
        [Transition("leave", "school", "out", 10, event_sinks=[sink])],
        dwell={"school": law},
    )
    Simulation(model, subjects, ticks=ticks, tick_ms=1000, seed=seed).run()
    return sink.events


def _delay_events(law: Law, subjects: int, ticks: int = 60, seed: int = 3) -> list[Any]:
    sink = MemorySink()
    model = Model(["x"], "x", [Transition("again", "x", "x", 100, event_sinks=[sink], delay=law)])
    Simulation(model, subjects, ticks=ticks, tick_ms=1000, seed=seed).run()
    return sink.events


@pytest.mark.timeout(120)
@pytest.mark.parametrize("subjects", [5, 300], ids=["loop", "numpy"])
@pytest.mark.parametrize("law", HEAVY, ids=str)
def test_runs_with_heavy_tailed_laws_end(law: Law, subjects: int) -> None:
    """A dwell or delay law past int64 ends its run: its events are bounded by one per
    subject and tick (a wait never comes out negative, so no attempt repeats a tick)."""
    ticks = 60
    dwell = _dwell_events(law, subjects, ticks)
    delay = _delay_events(law, subjects, ticks)
    assert len(dwell) <= subjects
    assert subjects <= len(delay) <= subjects * ticks
    for events in (dwell, delay):
        assert all(0 <= e.timestamp < ticks * 1000 for e in events)


@pytest.mark.timeout(120)
def test_runs_with_never_ending_laws_match_the_law() -> None:
    """Fixed(1e300) never ends a stay; as a delay, each subject moves once (at tick 0, at
    100%) and never again. LogNormal(10, 1e3): leavers by tick T ~ Binomial(n, F(T))."""
    assert _dwell_events(Fixed(1e300), 300) == []
    assert len(_delay_events(Fixed(1e300), 300)) == 300
    n, ticks = 4000, 60
    law = LogNormal(10, 1e3)
    # a subject present at tick 0 leaves at tick K - 1: within the run when K <= ticks
    assert _binomial_ok(len(_dwell_events(law, n, ticks)), n, law.cdf(float(ticks)))


def _extreme_floats(low: float, high: float) -> st.SearchStrategy[float]:
    """Positive floats between `low` and `high`, their ends and powers of ten between."""
    exponents = range(math.ceil(math.log10(low)), math.floor(math.log10(high)) + 1)
    return st.one_of(
        st.floats(min_value=low, max_value=high),
        st.sampled_from([low, high, *(10.0**e for e in exponents)]),
    )


laws = st.one_of(
    st.builds(LogNormal, _extreme_floats(1e-300, 1e300), _extreme_floats(1e-300, 1e300)),
    st.builds(Gamma, _extreme_floats(1e-300, 1e300), _extreme_floats(1e-300, 1e300)),
    st.builds(Exponential, _extreme_floats(1e-300, 1e300)),
    st.builds(Fixed, _extreme_floats(1e-300, 1e300)),
    st.builds(
        lambda a, b: Uniform(min(a, b), max(a, b)),
        _extreme_floats(1e-300, 1.7e308),
        _extreme_floats(1e-300, 1.7e308),
    ),
)


@pytest.mark.timeout(600)
@settings(
    max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(law=laws, subjects=st.sampled_from([3, 64]))
def test_random_extreme_laws_give_bounded_waits_and_runs(law: Law, subjects: int) -> None:
    """Any law with parameters from 1e-300 to 1e300: waits in 1 .. HORIZON, and a run with
    it as a dwell and a delay ends with at most one event per subject and tick."""
    waits = law.ticks(np.random.default_rng(1), 1000)
    assert waits.dtype == np.int64
    assert waits.min() >= 1 and waits.max() <= HORIZON
    ticks = 20
    assert len(_dwell_events(law, subjects, ticks)) <= subjects
    assert subjects <= len(_delay_events(law, subjects, ticks)) <= subjects * ticks


# -- parameters refused at load ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"law": "uniform", "low": 1, "high": 2**62},
            None,  # a valid law: whole ticks 1 .. 2**62 (one bin, not 2**62 of them)
        ),
        ({"law": "uniform", "low": 1, "high": 10**25}, "high must be at most 2\\*\\*62 ticks"),
        ({"law": "geometric", "p": 5e-324}, "p = 5e-324 is too small"),
        ({"law": "exponential", "rate": 1e-320}, "rate = 1e-320 is too small"),
        ({"law": "fixed", "ticks": 10**400}, "ticks must be a finite number"),
    ],
)
def test_fitted_forms_at_their_extremes(data: dict[str, Any], message: str | None) -> None:
    """The fit's forms with huge ranges or tiny chances: a law, or a ModelError naming it."""
    if message is None:
        law = law_from_dict(data, "dwell.a")
        waits = law.ticks(np.random.default_rng(2), 1000)
        assert waits.min() >= 1 and waits.max() <= HORIZON
        assert law.cdf(2.0**61) == pytest.approx(0.5)
        return
    with pytest.raises(ModelError, match=message) as caught:
        law_from_dict(data, "dwell.a")
    assert str(caught.value).startswith("dwell.a: ")


def test_kernel_lengths_past_the_horizon_are_refused() -> None:
    """A kernel's stay length past 2**62 ticks (past int64) is a ModelError naming it."""
    data = {"kernel": {"lengths": [1, 10**25], "weights": [1, 1], "to": {"b": [1, 1]}}}
    with pytest.raises(ModelError, match=r"dwell.a: lengths\[1\] must be at most 2\*\*62"):
        law_from_dict(data, "dwell.a")


MODEL = """\
name: extremes
seed: 5
states: [a, b]
initial_state: a
tick: 1s
ticks: 20
start: 2024-01-01T00:00:00Z
subjects:
  count: 30
  attributes:
    size: {uniform_int: [1, 3]}
sinks:
  mem: {type: memory}
default_sinks: [mem]
transitions:
  - {trigger: go, from: a, to: b, probability: 30}
"""


@pytest.mark.parametrize(
    ("distribution", "message"),
    [
        (
            "{uniform_int: [-10000000000000000000000000000000, 5]}",
            re.escape(
                "uniform_int: [-10000000000000000000000000000000, 5]: both ends must be 64-bit "
                "integers, -2**63 .. 2**63 - 1"
            ),
        ),
        (
            "{uniform_int: [1, 9223372036854775808]}",
            re.escape("uniform_int: [1, 9223372036854775808]: both ends must be 64-bit integers"),
        ),
        (
            "{uniform_int: [-1.0e+31, 5]}",
            re.escape("both ends must be integers, written without a point or an exponent"),
        ),
        ("{uniform: [-1.7e+308, 1.7e+308]}", "high - low is past the largest float"),
        ("{choice: {a: .inf, b: 1}}", r"choice.a: weight inf is not a finite positive number"),
    ],
)
def test_attribute_distributions_out_of_range_are_model_errors(
    distribution: str, message: str
) -> None:
    """Bounds numpy cannot draw from are ModelErrors at file:line naming the value."""
    text = MODEL.replace("{uniform_int: [1, 3]}", distribution)
    with pytest.raises(ModelError, match=message) as caught:
        load_model_text(text, source="m.yaml")
    assert str(caught.value).startswith("m.yaml:11: subjects.attributes.size.")


@pytest.mark.parametrize(
    "distribution",
    [
        "{uniform_int: [-9223372036854775808, 9223372036854775807]}",
        "{choice: {a: 1.0e+308, b: 1.0e+308}}",
        "{choice: {a: 5.0e-324, b: 1.0e-323}}",
    ],
)
def test_attribute_distributions_at_their_ends_draw(distribution: str) -> None:
    """The widest int64 range, and weights near float's ends, draw (a tiny run)."""
    text = MODEL.replace("{uniform_int: [1, 3]}", distribution)
    load_model_text(text, source="m.yaml").run()


def test_weights_near_float_max_share_out_evenly() -> None:
    """Weights whose sum overflows (1e308 + 1e308) are equal shares, in a histogram, a
    kernel's lengths and its destinations alike."""
    histogram = law_from_dict({"law": "empirical", "histogram": {1: 1e308, 2: 1e308}})
    assert histogram.pmf(2).tolist() == [0.5, 0.5]
    assert set(histogram.ticks(np.random.default_rng(1), 100).tolist()) == {1, 2}
    kernel = StayKernel([1, 2], [1e308, 1e308], {"b": [1e308, 1], "c": [1e308, 1]})
    assert kernel.pmf(2).tolist() == [0.5, 0.5]
    assert set(kernel.ticks(np.random.default_rng(1), 100).tolist()) == {1, 2}
    assert kernel.row(1) == [0.5, 0.5]


@pytest.mark.parametrize("mu", [1000, -1000, 710.0, -746.0])
def test_fitted_lognormal_mu_past_float_is_refused(mu: float) -> None:
    """A fitted log-normal's mu whose median e**mu is no positive float is a ModelError."""
    with pytest.raises(ModelError, match=f"dwell.a: lognormal law: mu = {mu!r} makes the median"):
        law_from_dict({"law": "lognormal", "mu": mu, "sigma": 1}, "dwell.a")


def test_gamma_cdf_of_huge_shapes() -> None:
    """The gamma CDF of a huge shape is finite (no lgamma overflow), 1/2 near its mean, and
    continuous where the normal approximation takes over (shape 1e6)."""
    assert Gamma(1e308, 1).cdf(1e308) == pytest.approx(0.5, abs=1e-6)
    assert Gamma(1.7e308, 1).cdf(1.0) == 0.0
    # P(a, a) = 1/2 + 1/(3 sqrt(2 pi a)) + O(1/a); the series stopped short of it before
    assert regularized_gamma(1e8, 1e8) == pytest.approx(0.5 + 1 / (3 * math.sqrt(2e8 * math.pi)))
    a = _HUGE_SHAPE
    for x in (a - 3 * math.sqrt(a), a, a + 2 * math.sqrt(a)):
        assert regularized_gamma(a * (1 - 1e-12), x) == pytest.approx(
            regularized_gamma(a, x), abs=1e-7
        )


def test_means_past_float_are_infinite() -> None:
    """A mean past float's range is inf, not an OverflowError (the report's figures)."""
    assert LogNormal(1, 1e308).expectation() == math.inf
    assert LogNormal(1, 40).expectation() == math.inf
    assert LogNormal(1e-300, 37).expectation() == pytest.approx(math.exp(37**2 / 2) * 1e-300)
    assert Gamma(1e308, 1e308).expectation() == math.inf


@pytest.mark.parametrize("mean", [".inf", ".nan"])
def test_a_random_hold_of_infinite_mean_is_refused(mean: str) -> None:
    """``hold: {exponential: .inf}`` (or NaN) is a ModelError at its line."""
    text = (ROOT / "models" / "support_center.yaml").read_text(encoding="utf-8")
    assert "hold: {exponential: 15m}" in text
    text = text.replace("hold: {exponential: 15m}", f"hold: {{exponential: {mean}}}")
    with pytest.raises(ModelError, match=r"^m\.yaml:\d+: .*hold\.exponential: .* positive mean"):
        load_model_text(text, source="m.yaml")


def test_the_cdf_at_infinity_is_one() -> None:
    """``F(inf) = 1`` for every law, a log-normal of sigma near float's top too."""
    for law in [*HEAVY, LogNormal(1, 1.3e308)]:  # sigma * sqrt(2) is inf
        assert law.cdf(math.inf) == 1.0
