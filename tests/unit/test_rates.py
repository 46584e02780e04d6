"""Rates given per unit of time are rescaled to the run's tick per state, exactly.

The rule (see `Model.at_tick`): in each state, the percentages that refer to the run's tick
are kept as given; every other chance (a `Rate`, or a per-tick percentage of a model written
for another tick) becomes a hazard, the state's total is rescaled to the tick and split in
proportion, and takes its share of the ticks the per-tick transitions leave.
"""

from __future__ import annotations

import math

import pytest

from dogesim import Model, ModelError, Simulation
from dogesim.rates import Profile, Rate

MINUTE = 60_000
HOUR = 3_600_000


def two_rates(tick_ms: int | None = None) -> Model:
    """One state left by two transitions of 30% per minute each."""
    model = Model(["in", "b", "c"], "in", tick_ms=tick_ms)
    model.add_transition("to_b", "in", "b", "30% per 1m")
    model.add_transition("to_c", "in", "c", Rate.percent(30, "1m"))
    return model


def chances(model: Model, state: str = "in") -> list[float]:
    """The per-tick percentages of `state`'s transitions, in order."""
    return [t.probability for t in model.outgoing(state)]


def z_ok(observed: float, expected: float, variance: float, z: float = 4.5) -> bool:
    """`observed` within `z` standard deviations of `expected`."""
    return abs(observed - expected) <= z * math.sqrt(variance)


# -- the law on the rescaled numbers ---------------------------------------------------------


def test_two_rates_rescale_as_one_state_total() -> None:
    """Two 30%/min leavers at 10 s ticks: stay 0.4 per minute, so 0.4**5 after 5 minutes."""
    scaled = two_rates().at_tick(10_000)
    p = chances(scaled)
    stay = 1 - sum(p) / 100
    assert stay**30 == pytest.approx(0.4**5, rel=1e-12)
    assert p[0] == pytest.approx(p[1], rel=1e-15)


@pytest.mark.parametrize("tick_ms", [1, 1_000, 10_000, MINUTE, 7 * MINUTE])
def test_state_law_does_not_depend_on_the_tick(tick_ms: int) -> None:
    """The chance to stay for a whole hour is 0.4**60 at every tick length."""
    stay = 1 - sum(chances(two_rates().at_tick(tick_ms))) / 100
    assert math.log(stay) * HOUR / tick_ms == pytest.approx(60 * math.log(0.4), rel=1e-9)


def test_rates_of_different_periods_and_kinds_add_as_hazards() -> None:
    """30%/min, 10%/h and 6/h from one state: stay = 0.7^(t/1m) 0.9^(t/1h) e^(-6 t/1h)."""
    model = Model(["in", "a", "b", "c"], "in")
    model.add_transition("a", "in", "a", "30% per 1m")
    model.add_transition("b", "in", "b", "10% per 1h")
    model.add_transition("c", "in", "c", "6 per 1h")
    tick = 10_000
    p = chances(model.at_tick(tick))
    hazards = [-math.log(0.7) / MINUTE, -math.log(0.9) / HOUR, 6 / HOUR]
    total = 1 - math.exp(-tick * sum(hazards))
    assert 1 - sum(p) / 100 == pytest.approx(
        0.7 ** (tick / MINUTE) * 0.9 ** (tick / HOUR) * math.exp(-6 * tick / HOUR), rel=1e-12
    )
    for got, hazard in zip(p, hazards, strict=True):
        assert got / 100 == pytest.approx(total * hazard / sum(hazards), rel=1e-12)


def test_per_tick_percentages_keep_their_value_and_rates_share_the_rest() -> None:
    """Mixed state: a plain 20% per tick stays 20%; 30%/min takes its chance of the other 80%."""
    model = Model(["in", "a", "b"], "in")
    model.add_transition("plain", "in", "a", 20)
    model.add_transition("rated", "in", "b", "30% per 1m")
    plain, rated = chances(model.at_tick(10_000))
    assert plain == pytest.approx(20, rel=1e-15)
    assert rated / 100 == pytest.approx(0.8 * (1 - 0.7 ** (1 / 6)), rel=1e-12)
    assert 1 - (plain + rated) / 100 == pytest.approx(0.8 * 0.7 ** (1 / 6), rel=1e-12)


def test_rate_whose_period_is_the_tick_counts_as_per_tick() -> None:
    """'30% per 10s' at 10 s ticks is exactly 30% per tick, beside a plain 20%."""
    model = Model(["in", "a", "b"], "in")
    model.add_transition("plain", "in", "a", 20)
    model.add_transition("rated", "in", "b", "30% per 10s")
    assert chances(model.at_tick(10_000)) == pytest.approx([20, 30], rel=1e-15)


def test_model_tick_percentages_join_rates_of_the_same_period() -> None:
    """A 1-minute model's plain 30% and a 30%/min rate are one per-minute group at 10 s."""
    model = Model(["in", "b", "c"], "in", tick_ms="1m")
    model.add_transition("to_b", "in", "b", 30)
    model.add_transition("to_c", "in", "c", "30% per 1m")
    assert chances(model.at_tick(10_000)) == pytest.approx(chances(two_rates().at_tick(10_000)))
    assert chances(model.at_tick(MINUTE)) == pytest.approx([30, 30], rel=1e-15)


def test_certain_rate_leaves_at_every_tick_and_others_get_nothing() -> None:
    """100% per minute at 10 s ticks: the state is left every tick, by that transition."""
    model = Model(["in", "a", "b"], "in")
    model.add_transition("sure", "in", "a", "100% per 1m")
    model.add_transition("other", "in", "b", "6 per 1h")
    assert chances(model.at_tick(10_000)) == [100.0, 0.0]


def test_rescaling_composes() -> None:
    """Rescaling to 10 s then to 7 min gives what rescaling straight to 7 min gives."""
    model = Model(["in", "a", "b", "c"], "in", tick_ms="1m")
    model.add_transition("a", "in", "a", 12)
    model.add_transition("b", "in", "b", "3 per 1h")
    model.add_transition("c", "in", "c", "40% per 1h")
    direct = chances(model.at_tick(7 * MINUTE))
    assert chances(model.at_tick(10_000).at_tick(7 * MINUTE)) == pytest.approx(direct, rel=1e-12)


def test_rescaled_model_at_its_own_tick_is_itself() -> None:
    """A model already rescaled to a tick is returned as it is for that tick."""
    scaled = two_rates().at_tick(10_000)
    assert scaled.at_tick(10_000) is scaled


def test_rates_over_100_per_period_are_refused_when_added() -> None:
    """Two 90%/min leavers are refused at build time, naming the state and each chance."""
    model = Model(["a", "b"], "a", name="m")
    model.add_transition("x", "a", "b", "90% per 1m")
    with pytest.raises(ModelError) as info:
        model.add_transition("y", "a", "a", "90% per 1m")
    text = str(info.value)
    assert "state 'a': outgoing probabilities sum to 180% per 1m" in text
    assert "x 90% per 1m" in text and "y 90% per 1m" in text


def test_per_tick_share_over_100_at_the_run_tick_is_refused() -> None:
    """80% per tick beside '30% per 10s' is 110% per tick at 10 s ticks: named, refused."""
    model = Model(["a", "b"], "a", name="m")
    model.add_transition("x", "a", "b", 80)
    model.add_transition("y", "a", "a", "30% per 10s")
    model.at_tick(20_000)  # at 20 s ticks the rate shares the rest: fine
    with pytest.raises(ModelError, match=r"m: state 'a': .*sum to 110% per tick of 10s"):
        model.at_tick(10_000)


def test_profile_and_every_field_survive_rescaling() -> None:
    """Profiles, callbacks, sinks, resources and holds are kept on the rescaled transitions."""
    profile = Profile(hourly=[0.5] * 24)
    model = Model(["in", "out"], "in", resources={"desk": 2})
    model.add_transition(
        "go", "in", "out", "30% per 1m", bool, [], profile=profile, resource="desk", hold=3
    )
    (scaled,) = model.at_tick(10_000).transitions
    (given,) = model.transitions
    assert scaled.profile is profile and scaled.action_callback is bool
    assert (scaled.resource, scaled.hold, scaled.rate) == ("desk", 3, given.rate)


# -- the law in the engine -------------------------------------------------------------------


def test_engine_two_rates_at_10s_ticks_leave_0_4_power_5_after_5_minutes() -> None:
    """20k subjects, two 30%/min leavers, 10 s ticks: 0.4**5 stay after 5 minutes, split 1:1."""
    n = 20_000
    result = Simulation(two_rates(), n, ticks=30, tick_ms=10_000, seed=11).run()
    stay = 0.4**5
    assert z_ok(result.occupancy[-1, 0], n * stay, n * stay * (1 - stay))
    moved = result.events_by_trigger()
    half = n * (1 - stay) / 2
    assert z_ok(moved["to_b"], half, n * 0.25)
    assert moved["to_b"] + moved["to_c"] == n - result.occupancy[-1, 0]


def test_engine_profile_multiplies_the_rescaled_chances_exactly() -> None:
    """Under an hourly profile the survival is the product over ticks of 1 - sum p_i m(t)."""
    hourly = [0.0] * 24
    hourly[1] = 2.0  # 01:00-02:00 doubles the chances, the rest of the day is closed
    profile = Profile(hourly=hourly)
    model = Model(["in", "b", "c"], "in")
    model.add_transition("to_b", "in", "b", "10% per 1m", profile=profile)
    model.add_transition("to_c", "in", "c", "5 per 1h", profile=profile)
    tick = 30_000
    start = HOUR - 20 * MINUTE  # 00:40: 20 closed minutes, then 20 open ones
    ticks = 80
    per_tick = sum(chances(model.at_tick(tick))) / 100
    survive = 1.0
    for t in range(ticks):
        survive *= 1 - per_tick * profile.multiplier(start + t * tick)
    n = 20_000
    run = Simulation(model, n, ticks=ticks, tick_ms=tick, timestamp_start=start, seed=5).run()
    assert z_ok(run.occupancy[-1, 0], n * survive, n * survive * (1 - survive))
    assert run.occupancy[39, 0] == n  # nothing moves while the profile is 0
