"""Time-varying chances: by month of year and by age, Wilson coverage, and the LR test
choosing the factor that varies."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from dogesim import DogesimError
from dogesim.report.observed import Observed, observe
from dogesim.report.timevarying import compare_factors, fit_by_factor, month_concentration
from tests.unit.fit_helpers import (
    count_covered,
    coverage_bounds,
    draw_chain,
    month_times,
    wilson_coverage,
)

TICKS = 36


def september(_: np.ndarray, month: np.ndarray, __: np.ndarray) -> np.ndarray:
    """A chance of 30% in September, 2% otherwise."""
    return np.where(month == 9, 0.3, 0.02)


def early(_: np.ndarray, __: np.ndarray, age: np.ndarray) -> np.ndarray:
    """A chance of 15% in the first year of age, 2% later."""
    return np.where(age < 12, 0.15, 0.02)


def monthly(chance: Any, subjects: int, rng: np.random.Generator) -> Observed:
    """A two-state chain a -> b (chance `chance`), b -> a at 10%, on calendar months."""
    times = month_times(TICKS)
    log, roster = draw_chain(
        {"a": [("b", chance)], "b": [("a", 0.1)]}, "a", subjects, TICKS, rng, times=times
    )
    return observe(
        log, tick="1mo", states=["a", "b"], window_start=int(times[0]), ticks=TICKS, roster=roster
    )


def test_month_profile_is_recovered_and_chosen() -> None:
    """A September peak: the month factor's estimates are within 4 sd of 30% and 2%, the LR
    test rejects constant chances, and month explains more than age."""
    obs = monthly(september, 400, np.random.default_rng(1))
    comparison = compare_factors(obs, age_bins=[0, 12, 24])
    assert comparison.better == "month"
    month = comparison.month
    assert month.p_value < 1e-6 and month.df == 11 + 11
    profile = month.profile("a", "a->b")
    table = month.table.set_index(["from_state", "level"])
    for level, truth in ((9, 0.3), (3, 0.02)):
        exposure = table.loc[("a", level), "exposure"]
        assert abs(profile[level] / 100 - truth) <= 4 * np.sqrt(truth * (1 - truth) / exposure)
    assert month_concentration(obs)[9] > 0.3


def test_age_profile_is_chosen_over_month() -> None:
    """A chance that falls after the first year of age: age explains more than month."""
    obs = monthly(early, 400, np.random.default_rng(2))
    comparison = compare_factors(obs, age_bins=[0, 12, 24])
    assert comparison.better == "age" and comparison.age.p_value < 1e-6
    profile = comparison.age.profile("a", "a->b")
    assert set(profile) == {0, 12, 24}
    assert profile[0] > 10 > 3 > profile[12]


@pytest.mark.parametrize("seeds", [30, pytest.param(600, marks=pytest.mark.slow)])
def test_constant_chances_keep_the_test_level(seeds: int) -> None:
    """With constant chances the month LR test rejects at 5% a number of times consistent
    with Binomial(seeds, 0.05)."""
    rng = np.random.default_rng(3)
    rejections = sum(
        fit_by_factor(monthly(0.05, 150, rng), "month").p_value < 0.05 for _ in range(seeds)
    )
    low, high = coverage_bounds(seeds, 0.05)
    assert low <= rejections <= high


@pytest.mark.parametrize("seeds", [20, pytest.param(400, marks=pytest.mark.slow)])
def test_monthly_intervals_cover_at_nominal_rate(seeds: int) -> None:
    """Pooled over the 12 months and the seeds, the 95% Wilson intervals cover the true
    monthly chance as often as the Wilson interval's exact coverage at each month's
    exposure predicts (within 4 sd; at a few events per month it is not exactly 95%)."""
    rng = np.random.default_rng(4)
    covered, expected, variance = 0, 0.0, 0.0
    for _ in range(seeds):
        table = fit_by_factor(monthly(september, 100, rng), "month").table
        rows = table[table["from_state"] == "a"]
        for level, low, high, exposure in zip(
            rows["level"], rows["ci_low"], rows["ci_high"], rows["exposure"], strict=True
        ):
            truth = 0.3 if level == 9 else 0.02
            covered += count_covered([(low, high)], truth)
            exact = wilson_coverage(int(exposure), truth)
            expected += exact
            variance += exact * (1 - exact)
    assert abs(covered - expected) <= 4 * np.sqrt(variance), (covered, expected)


def test_month_concentration_and_errors_by_hand() -> None:
    """Two of three events in July: July's share is 2/3; a bad factor or age bins are errors."""
    times = month_times(12, start=int(pd.Timestamp("2001-06-01", tz="UTC").value // 1_000_000))
    log = pd.DataFrame(
        [
            {"subject": 1, "timestamp": int(times[1]), "from_state": "a", "to_state": "b"},
            {
                "subject": 2,
                "timestamp": int(times[1]) + 86_400_000,
                "from_state": "a",
                "to_state": "b",
            },
            {"subject": 1, "timestamp": int(times[5]), "from_state": "b", "to_state": "a"},
        ]
    )
    obs = observe(log, tick="1mo", window_start=int(times[0]), ticks=12)
    shares = month_concentration(obs)
    assert shares[7] == pytest.approx(2 / 3) and shares[11] == pytest.approx(1 / 3)
    with pytest.raises(DogesimError, match="factor 'week'"):
        fit_by_factor(obs, "week")
    with pytest.raises(DogesimError, match="lower edges increasing from 0"):
        fit_by_factor(obs, "age", age_bins=[3, 6])


def test_per_tick_age_chain_reproduces_the_observed_shares() -> None:
    """A chain with one age bin per tick, fitted by MLE, reproduces the observed shares of
    a cohort exactly (pi_t P_t sums the observed moves); constant chances do not."""
    from dogesim.report.compare import occupancy_shares, tvd

    obs = monthly(early, 300, np.random.default_rng(6))
    observed = occupancy_shares(obs)
    per_tick = fit_by_factor(obs, "age", age_bins=list(range(TICKS)))
    np.testing.assert_allclose(per_tick.shares(obs).to_numpy(), observed.to_numpy(), atol=1e-12)
    constant = fit_by_factor(obs, "none")
    assert tvd(observed, constant.shares(obs)).mean() > 0.05
    matrix = constant.matrix(0, obs.states)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
