"""The reference engine checked on its own: exact sequences where the contract fixes them,
its rescaling law, stop/resume, and its statistics against the exact law.

A reference that is wrong would make the differential tests meaningless; these pin it.
"""

from __future__ import annotations

import math
import random
from typing import Any

from scipy import stats

from dogesim import MemorySink, Model, Profile, Rate, Transition
from tests.unit.reference import ExactLaw, Reference, state_chances

ALPHA = 1e-6


def chain(sink: MemorySink) -> Model:
    """a -> b -> c with certainty: the event sequence is fixed."""
    model = Model(["a", "b", "c"], "a")
    model.add_transition("go", "a", "b", 100, event_sinks=[sink])
    model.add_transition("on", "b", "c", 100, event_sinks=[sink])
    return model


def test_certain_moves_give_the_exact_sequence_in_creation_order() -> None:
    """Certain moves happen at ticks 0 and 1, subjects in creation order, stamped per tick."""
    sink = MemorySink(lambda ts, s, t: (ts, s.id, t.trigger))
    reference = Reference(chain(sink), 3, ticks=5, tick_ms=10, timestamp_start=100)
    reference.run()
    assert sink.events == [
        (100, 0, "go"),
        (100, 1, "go"),
        (100, 2, "go"),
        (110, 0, "on"),
        (110, 1, "on"),
        (110, 2, "on"),
    ]
    assert reference.subject_states() == ["c", "c", "c"]
    assert sink.closed_count == 1


def test_vetoes_keep_the_subject_and_emit_nothing() -> None:
    """A callback returning False vetoes every attempt: no event, no move."""
    sink = MemorySink()
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 100, lambda s, t: False, [sink])
    reference = Reference(model, 4, ticks=10, tick_ms=1)
    reference.run()
    assert sink.events == []
    assert reference.subject_states() == ["a"] * 4


def test_resource_queue_is_fifo_and_holds_last_their_ticks() -> None:
    """One unit held 3 ticks: subjects 0, 1, 2 are granted at ticks 0, 3, 6 in order."""
    sink = MemorySink(lambda ts, s, t: (ts, s.id))
    model = Model(["a", "b"], "a")
    model.add_resource("desk", 1)
    model.add_transition("go", "a", "b", 100, event_sinks=[sink], resource="desk", hold=3)
    Reference(model, 3, ticks=20, tick_ms=1).run()
    assert sink.events == [(0, 0), (3, 1), (6, 2)]


def test_stop_and_continue_equals_the_uninterrupted_run() -> None:
    """run(until=k) then run() gives the events of one uninterrupted run."""

    def events(stop: int | None) -> list[Any]:
        sink = MemorySink(lambda ts, s, t: (ts, s.id, t.trigger))
        model = Model(["a", "b"], "a")
        model.add_transition("go", "a", "b", 10, event_sinks=[sink])
        model.add_transition("back", "b", "a", 20, event_sinks=[sink])
        reference = Reference(model, 20, ticks=200, tick_ms=1, seed=4, arrivals=0.1)
        if stop is not None:
            reference.run(until=stop)
            assert sink.closed_count == 0
        reference.run()
        assert sink.closed_count == 1
        return sink.events

    assert events(77) == events(None)


def test_rates_are_rescaled_per_state() -> None:
    """30% and 30% per minute at 10 s ticks: 0.4 stays per minute, split evenly; counts add."""
    model = Model(["s", "a", "b"], "s")
    model.add_transition("x", "s", "a", Rate.percent(30, "1m"))
    model.add_transition("y", "s", "b", Rate.percent(30, "1m"))
    model.add_transition("z", "a", "b", Rate.per(2, "1m"))
    model.add_transition("w", "a", "s", Rate.per(1, "1m"))
    chances = state_chances(model, 10_000)
    assert math.isclose((1 - sum(c for _, c in chances["s"])) ** 6, 0.4)
    assert math.isclose(1 - sum(c for _, c in chances["a"]), math.exp(-3 / 6))
    assert math.isclose(chances["a"][0][1], 2 * chances["a"][1][1])


def test_reference_occupancy_follows_the_exact_law_with_profiles_and_vetoes() -> None:
    """Time-varying chances (an hourly profile) and vetoes: occupancy is binomial per the law."""
    veto_rng = random.Random(1)

    def veto(subject: Any, transition: Transition) -> bool:
        return veto_rng.random() >= 0.25

    model = Model(["a", "b", "c"], "a")
    hourly = [0.2 + 0.1 * (h % 7) for h in range(24)]
    model.add_transition("ab", "a", "b", 20, profile=Profile(hourly=hourly))
    model.add_transition("bc", "b", "c", 10, veto)
    model.add_transition("ca", "c", "a", 5)
    n, ticks, tick_ms = 2_000, 60, 600_000
    checks = [0, 5, 20, 59]
    seen: dict[int, list[str]] = {}

    def record(t: int, states: list[str]) -> None:
        if t in checks:
            seen[t] = list(states)

    Reference(model, n, ticks=ticks, tick_ms=tick_ms, seed=2, on_tick=record).run()
    law = ExactLaw(model, tick_ms, veto={"bc": 0.25}).occupancy(ticks, checks)
    alpha = ALPHA / (len(checks) * 3)
    for t in checks:
        for k, state in enumerate(("a", "b", "c")):
            x = seen[t].count(state)
            p = float(law[t][k])
            low, high = stats.binom.ppf(alpha / 2, n, p), stats.binom.isf(alpha / 2, n, p)
            assert low <= x <= high, (t, state, x, n * p)
