"""Goodness of fit: occupancy shares from logs equal the engine's, TVD and spell KS distances
behave as their definitions and the sampling law say."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dogesim import DogesimError, MemorySink, Model, Simulation
from dogesim.report.analytic import occupancy_probabilities
from dogesim.report.compare import compare, memory_log, occupancy_shares, spell_ks, tvd
from dogesim.report.observed import Observed, observe


def chain(stay_b: float = 10, sink: MemorySink | None = None) -> Model:
    """A three-state chain; `stay_b` is b's chance (%) of going back to a."""
    sinks = [sink] if sink is not None else []
    model = Model(["a", "b", "c"], "a", name="abc")
    model.add_transition("go", "a", "b", 6, event_sinks=sinks)
    model.add_transition("back", "b", "a", stay_b, event_sinks=sinks)
    model.add_transition("deeper", "b", "c", 4, event_sinks=sinks)
    model.add_transition("reset", "c", "a", 15, event_sinks=sinks)
    return model


def run(stay_b: float, subjects: int, ticks: int, seed: int) -> tuple[np.ndarray, Observed]:
    """A real engine run with a default MemorySink; (occupancy, observed log)."""
    sink = MemorySink()
    model = chain(stay_b, sink)
    result = Simulation(model, subjects, ticks=ticks, tick_ms=1000, seed=seed).run()
    roster = dict.fromkeys(range(subjects), "a")
    obs = observe(
        memory_log(sink.events),
        tick=1000,
        states=model.states,
        window_start=0,
        ticks=ticks,
        roster=roster,
    )
    return np.asarray(result.occupancy), obs


def test_occupancy_shares_equal_the_engine_occupancy() -> None:
    """Shares after each tick, from the MemorySink log and the roster, are exactly the run's
    occupancy divided by the population."""
    occupancy, obs = run(10, 300, 80, seed=5)
    shares = occupancy_shares(obs)
    assert shares.shape == (80, 3)
    np.testing.assert_allclose(shares.to_numpy(), occupancy / 300, atol=1e-12)


def test_tvd_by_hand_and_errors() -> None:
    """TVD is half the L1 distance per tick; unequal windows are refused."""
    a = pd.DataFrame({"x": [1.0, 0.5], "y": [0.0, 0.5]})
    b = pd.DataFrame({"x": [0.0, 0.5], "y": [1.0, 0.5]})
    assert tvd(a, b).tolist() == [1.0, 0.0]
    assert tvd(a, np.array([[0.75, 0.25], [0.5, 0.5]])).tolist() == [0.25, 0.0]
    with pytest.raises(DogesimError, match="2 ticks vs 1"):
        tvd(a, b.iloc[:1])


def test_same_model_differs_by_sampling_noise_only() -> None:
    """Two runs of one model: mean TVD near the sampling floor sqrt(S / (2 pi n)) (within a
    factor 2), spell KS small; a different model is clearly farther; the analytic line is
    closer than another run."""
    n, ticks = 1500, 120
    _, first = run(10, n, ticks, seed=1)
    _, second = run(10, n, ticks, seed=2)
    _, other = run(30, n, ticks, seed=3)
    floor = math.sqrt(3 / (2 * math.pi * n))
    analytic = occupancy_probabilities(chain(), ticks)
    same = compare(first, second, analytic=analytic)
    summary = same.summary()
    assert 0.3 * floor < summary["tvd_mean"] < 2 * floor
    assert summary["tvd_analytic_mean"] < summary["tvd_mean"]
    assert max(same.spell_ks.values()) < 0.08
    different = compare(first, other).summary()
    assert different["tvd_mean"] > 4 * floor
    assert spell_ks(first, other)["b"] > 0.15
    assert spell_ks(first, first) == {"a": 0.0, "b": 0.0, "c": 0.0}
