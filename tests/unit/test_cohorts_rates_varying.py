"""Per-subject rates (``rate_attribute``) in states whose chances vary in time (calendar
profiles, chance tables): at every tick a subject moves with chance ``1 - exp(-r H(t))``,
``H(t) = -ln(1 - P(t))`` split in proportion to the chances at that tick.

Before, the engine refused such a state ("does not combine yet"): a model of listeners who
open sessions by time of day, each at their own pace, could not be run. The tests compare
against the law itself, computed subject by subject from the subjects' own rates, with a
normal bound at a false-alarm rate of 1e-6 per check (`Z_ALPHA`).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from dogesim import MemorySink, Model, Profile, Simulation
from dogesim.errors import ModelError
from tests.unit.cohorts_stats import Z_ALPHA

HOURLY = [0.2] * 24
HOURLY[12] = 4.0  # 5% x 4 = 20% at noon, 1% at other hours


def _subjects(n: int, seed: int) -> list[SimpleNamespace]:
    paces = np.random.default_rng(seed).lognormal(0.0, 0.8, n)
    return [SimpleNamespace(id=i, pace=float(p)) for i, p in enumerate(paces)]


def _profiled_pace(model: Model, trigger: str, to: str, sink: MemorySink) -> None:
    """A -> `to` at 5% x `HOURLY`, scaled by the subject's pace, into `sink`."""
    model.add_transition(
        trigger,
        "A",
        to,
        5,
        profile=Profile(hourly=HOURLY),
        rate_attribute="pace",
        event_sinks=[sink],
    )


def test_a_profiled_rate_scaled_exit_follows_the_law_hour_by_hour() -> None:
    """A -> B at 5% x the hourly profile, scaled by each subject's pace, B final: the moves
    in each hour of the day equal the law's expectation (from every subject's own
    survival), within the bound of their variance."""
    sink = MemorySink()
    model = Model(["A", "B"], "A")
    _profiled_pace(model, "go", "B", sink)
    subjects = _subjects(3000, 1)
    Simulation(model, subjects, ticks=1440, tick_ms=60_000, seed=2).run()
    observed = np.bincount([e.timestamp // 3_600_000 for e in sink.events], minlength=24)
    hazard = np.asarray([-math.log1p(-0.05 * HOURLY[t // 60]) for t in range(1440)])
    edges = np.concatenate([[0.0], np.cumsum(hazard)])[::60]  # cumulative hazard per hour
    rates = np.asarray([s.pace for s in subjects])
    survive = np.exp(-np.outer(rates, edges))  # subject x hour edge
    p = survive[:, :-1] - survive[:, 1:]  # chance each subject leaves in each hour
    expected, variance = p.sum(axis=0), (p * (1 - p)).sum(axis=0)
    assert observed.sum() > 1500
    for hour in range(24):
        assert abs(observed[hour] - expected[hour]) <= Z_ALPHA * math.sqrt(variance[hour]), (
            hour,
            observed[hour],
            expected[hour],
        )


def test_a_table_and_a_profile_with_rates_split_moves_by_the_chances_now() -> None:
    """A left by a month table (10%) and a profiled 5% (x4 at noon), both scaled by the
    pace: given a move, "prof" has chance 20/30 at noon and 1/11 at other hours, whatever
    the subject's pace."""
    sink = MemorySink()
    model = Model(["A", "B", "C"], "A")
    model.add_transition(
        "tab", "A", "B", by_month=[10] * 12, rate_attribute="pace", event_sinks=[sink]
    )
    _profiled_pace(model, "prof", "C", sink)
    model.add_transition("back_b", "B", "A", 100)
    model.add_transition("back_c", "C", "A", 100)
    Simulation(model, _subjects(1000, 3), ticks=1440, tick_ms=60_000, seed=4).run()
    moves: dict[int, list[int]] = {}
    for event in sink.events:
        counts = moves.setdefault((event.timestamp // 3_600_000) % 24, [0, 0])
        counts[event.trigger == "prof"] += 1
    for hour, share in ((12, 20 / 30), (0, 1 / 11), (18, 1 / 11)):
        tab, prof = moves[hour]
        n = tab + prof
        assert n > 1000
        assert abs(prof - n * share) <= Z_ALPHA * math.sqrt(n * share * (1 - share)), (
            hour,
            tab,
            prof,
        )


def test_rates_in_a_state_whose_profile_reaches_100_percent_are_refused() -> None:
    """50% that a profile doubles at noon is 100% then: a certain move has no rate to
    scale, refused before the run names the state and the peak."""
    hourly = [1.0] * 24
    hourly[12] = 2.0
    model = Model(["A", "B"], "A")
    model.add_transition("go", "A", "B", 50, profile=Profile(hourly=hourly), rate_attribute="pace")
    with pytest.raises(ModelError, match=r"state 'A' has per-subject rates .* reach 100% at some"):
        Simulation(model, _subjects(3, 1), ticks=10, tick_ms=60_000, seed=1).run()
