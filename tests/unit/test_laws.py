"""Focused law tests pinning the engine bugs reported in issue 9 (failing first).

- Rates are rescaled per state: two transitions of 30% per minute out of one state, run at
  10 s ticks, leave 0.4**5 of the subjects in it after 5 minutes.
- The calendar never freezes: with one long-lived subject and sparse arrivals over 10^5
  ticks, nearly every newcomer has left the initial state by the end.
- Resources keep every sink's timestamps in order, over 40 seeds.
- A move granted a free resource at its attempt keeps creation order within its tick (found
  by the differential tests: the engine sends such grants after the tick's other events).

Every bound is an exact binomial or Poisson quantile at a false-alarm rate of 1e-6 per test.
"""

from __future__ import annotations

import math
import random
from typing import Any

from scipy import stats

from dogesim import MemorySink, Model, Rate, Simulation, Transition
from tests.unit.reference import ExactLaw, state_chances

#: Chance of a false alarm per test.
ALPHA = 1e-6


def two_rates() -> Model:
    """One state left by two transitions of 30% per minute each."""
    model = Model(["s", "a", "b"], "s")
    model.add_transition("to_a", "s", "a", Rate.percent(30, "1m"))
    model.add_transition("to_b", "s", "b", Rate.percent(30, "1m"))
    return model


def test_per_state_rescaling_law_of_the_reference() -> None:
    """The reference's rescaled chances leave exactly 0.4 per minute in the state."""
    chances = state_chances(two_rates(), 10_000)["s"]
    stay = 1.0 - sum(chance for _, chance in chances)
    assert math.isclose(stay**6, 0.4, rel_tol=1e-12)
    assert math.isclose(chances[0][1], chances[1][1], rel_tol=1e-12)


def test_two_rates_out_of_one_state_rescale_per_state() -> None:
    """After 5 minutes at 10 s ticks, the share still in 's' is 0.4**5 = 0.0102 (not 0.0252)."""
    n = 40_000
    sim = Simulation(two_rates(), n, ticks=30, tick_ms=10_000, seed=9)
    sim.run()
    left = sim.subject_states().count("s")
    share = 0.4**5
    low, high = stats.binom.ppf(ALPHA / 2, n, share), stats.binom.isf(ALPHA / 2, n, share)
    assert low <= left <= high, (left, n * share)


def test_sparse_arrivals_keep_moving_over_many_calendar_blocks() -> None:
    """Newcomers over 10^5 ticks of 1 ms (arrivals 0.001/tick) nearly all leave 'new'."""
    model = Model(["new", "active", "gone"], "new")
    model.add_transition("activate", "new", "active", 50)
    model.add_transition("leave", "active", "gone", 0.01)
    ticks, rate = 100_000, 0.001
    sim = Simulation(model, 1, ticks=ticks, tick_ms=1, arrivals=rate, seed=3)
    sim.run()
    states = sim.subject_states()
    newcomers = len(states) - 1
    assert stats.poisson.ppf(ALPHA / 4, rate * ticks) <= newcomers
    assert newcomers <= stats.poisson.isf(ALPHA / 4, rate * ticks)
    # The initial subject is 'new' after the run with chance 0.5**ticks: never.
    still_new = states.count("new")
    expected = ExactLaw(model, 1).arrivals(ticks, rate, None)[0]
    assert still_new <= stats.poisson.isf(ALPHA / 2, expected), (still_new, newcomers)


def call_centre(sink: MemorySink) -> Model:
    """Callers queue for one agent who holds each call 1..300 ticks (drawn per grant)."""
    model = Model(["browsing", "waiting", "on_call", "resolved"], "browsing")
    model.add_resource("agents", 1)

    def hold(subject: Any, transition: Transition) -> int:
        return random.randint(1, 300)

    model.add_transition("call", "browsing", "waiting", 0.5, event_sinks=[sink])
    model.add_transition(
        "answer", "waiting", "on_call", 100, event_sinks=[sink], resource="agents", hold=hold
    )
    model.add_transition("hang_up", "on_call", "resolved", 100, event_sinks=[sink])
    model.add_transition("again", "resolved", "browsing", 0.5, event_sinks=[sink])
    return model


def test_resources_keep_timestamps_in_order_over_40_seeds() -> None:
    """With a queue for a resource, every seed's events come in non-decreasing timestamps."""
    out_of_order = []
    for seed in range(40):
        sink = MemorySink()
        Simulation(call_centre(sink), 3, ticks=5_000, tick_ms=1_000, seed=seed).run()
        stamps = [event.timestamp for event in sink.events]
        assert len(stamps) > 10
        if stamps != sorted(stamps):
            out_of_order.append(seed)
    assert out_of_order == []


def test_grants_at_the_attempt_keep_creation_order_within_a_tick() -> None:
    """A move granted a free resource at its attempt comes in creation order within the tick
    (DESIGN.md §1), not after the tick's other events."""
    sink = MemorySink(lambda ts, subject, transition: subject.id)
    model = Model(["a", "b", "c"], "a")
    model.add_resource("desk", 8)  # never full: every grant is immediate
    model.add_transition("go", "a", "b", 50, event_sinks=[sink], resource="desk", hold=1)
    model.add_transition("plain", "a", "c", 50, event_sinks=[sink])
    Simulation(model, 8, ticks=1, tick_ms=1, seed=1).run()
    assert sink.events == list(range(8))
