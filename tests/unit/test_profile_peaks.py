"""Calendar profiles whose peaks fall at different times: a state is refused only when its
outgoing chances really exceed 100% at some moment, not when the per-transition peaks sum
over 100%; and the engine keeps each transition's exact per-tick law at every hour."""

from __future__ import annotations

import math

import pytest

from dogesim import MemorySink, Model, ModelError, Profile, Simulation

HOUR_MS = 3_600_000
DAY = [1.0] * 12 + [0.0] * 12  # hours 0-11
NIGHT = [0.0] * 12 + [1.0] * 12  # hours 12-23


def _model(sink: MemorySink, p_day: float, p_night: float) -> Model:
    model = Model(["a", "b"], "a")
    model.add_transition("day", "a", "b", p_day, None, [sink], profile=Profile(hourly=DAY))
    model.add_transition("night", "a", "b", p_night, None, [sink], profile=Profile(hourly=NIGHT))
    return model


@pytest.mark.parametrize(("hour", "trigger", "chance"), [(10, "day", 0.6), (13, "night", 0.7)])
def test_peaks_at_different_hours_are_accepted_and_keep_their_law(
    hour: int, trigger: str, chance: float
) -> None:
    """60% by day and 70% by night out of one state (peaks sum to 130%, no hour above 70%):
    the model is accepted; in a tick of hour `hour` only its transition fires, at its own
    chance (every subject attempts: a binomial count, bounds at 5 sd)."""
    sink = MemorySink(lambda ts, s, t: t.trigger)
    n = 4000
    Simulation(
        _model(sink, 60, 70), n, ticks=1, tick_ms=HOUR_MS, timestamp_start=hour * HOUR_MS, seed=8
    ).run()
    assert set(sink.events) == {trigger}
    sd = math.sqrt(n * chance * (1 - chance))
    assert abs(len(sink.events) - n * chance) < 5 * sd


def test_a_moment_over_100_percent_is_still_refused() -> None:
    """Two profiles that overlap at hour 11 with 60% + 50%: refused, naming the state."""
    sink = MemorySink(lambda ts, s, t: None)
    model = Model(["a", "b"], "a")
    late_day = [0.0] * 11 + [1.0] * 13
    model.add_transition("day", "a", "b", 60, None, [sink], profile=Profile(hourly=DAY))
    with pytest.raises(ModelError, match=r"state 'a'.*reach 110% .*11:00 UTC"):
        model.add_transition("late", "a", "b", 50, None, [sink], profile=Profile(hourly=late_day))


def test_a_listed_date_that_lifts_the_total_over_100_percent_is_refused() -> None:
    """40% flat plus 35% that doubles on 2026-12-25 (local time, UTC+5): 110% on that day
    only; refused naming the moment; without the date, 75%, accepted."""
    flat = Model(["a", "b"], "a")
    flat.add_transition("x", "a", "b", 40)
    flat.add_transition("y", "a", "b", 35, profile=Profile(hourly=[1.0] * 24))
    holiday = Profile(hourly=[1.0] * 24, dates={"2026-12-25": 2.0}, utc_offset_hours=5)
    Simulation(flat, 10, ticks=2, tick_ms=HOUR_MS, seed=1).run()
    model = Model(["a", "b"], "a")
    model.add_transition("x", "a", "b", 40)
    model.add_transition("y", "a", "b", 35, profile=holiday)
    with pytest.raises(ModelError, match=r"state 'a'.* reach 110% per tick \(e\.g\. at (Thu|Fri)"):
        Simulation(model, 10, ticks=2, tick_ms=HOUR_MS, seed=1).run()


def test_a_model_file_with_peaks_at_different_hours_loads_and_runs() -> None:
    """The model-file check agrees with the engine: day 60% and night 70% load and run."""
    from dogesim.modelfile import load_model_text

    text = f"""\
name: shifts
states: [a, b]
initial_state: a
tick: 1h
ticks: 24
subjects: {{count: 50}}
transitions:
  - {{trigger: day, from: a, to: b, probability: 60, profile: {{hourly: {DAY}}}}}
  - {{trigger: night, from: a, to: b, probability: 70, profile: {{hourly: {NIGHT}}}}}
  - {{trigger: back, from: b, to: a, probability: 50}}
"""
    spec = load_model_text(text)
    assert spec.run(seed=2).moves > 0
