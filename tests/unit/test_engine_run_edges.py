"""What a run does at its edges: the model it sees (churn, rescaling) and its sinks before
the first event (reopened, timestamps checked)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from dogesim import CountingSink, Model, Simulation
from dogesim.engine import effective_model
from dogesim.errors import SinkError
from dogesim.rates import Rate


class _StampCheckingSink:
    """A sink that records the ranges it was asked to check and refuses them when told."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.checked: list[tuple[int, int]] = []
        self.events: list[int] = []
        self.closes = 0

    def check_timestamps(self, first_ms: int, last_ms: int) -> None:
        self.checked.append((first_ms, last_ms))
        if self.refuse:
            raise SinkError(f"timestamps {first_ms} .. {last_ms} refused")

    def collect(self, timestamp: int, subject: Any, transition: Any) -> None:
        self.events.append(timestamp)

    def close(self) -> None:
        self.closes += 1


def _busy(sink: Any) -> Model:
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 100, event_sinks=[sink])
    model.add_transition("back", "b", "a", 100, event_sinks=[sink])
    return model


def test_churn_rate_is_rescaled_with_the_states_other_rates() -> None:
    """Churn given as a rate shares the state's law: 30%/min + 30%/min churn leave 40% a minute."""
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", Rate.percent(30, "1m"))
    seen = effective_model(model, 10_000, Rate.percent(30, "1m"), ())
    chances = [t.probability / 100 for t in seen.outgoing("a")]
    assert [t.trigger for t in seen.outgoing("a")] == ["go", "churn"]
    assert math.isclose((1 - sum(chances)) ** 6, 0.4, rel_tol=1e-9)
    assert math.isclose(chances[0], chances[1], rel_tol=1e-12)


def test_plain_churn_is_a_percentage_per_tick_of_the_run() -> None:
    """A number given as churn is kept as that percentage per tick, whatever the model's tick."""
    model = Model(["a", "b"], "a", tick_ms=60_000)
    model.add_transition("go", "a", "b", 30)
    seen = effective_model(model, 10_000, 2.0, ())
    churn = [t for t in seen.outgoing("a") if t.trigger == "churn"]
    assert [t.probability for t in churn] == [pytest.approx(2.0, rel=1e-12)]
    assert seen.is_final("churned") and seen.is_final("b")


def test_backfill_run_checks_its_timestamps_before_any_event() -> None:
    """Before any event, a sink with check_timestamps is asked for the first and last stamps."""
    sink = _StampCheckingSink()
    Simulation(_busy(sink), 2, ticks=5, tick_ms=1000, timestamp_start=10_000, seed=1).run()
    assert sink.checked == [(10_000, 14_000)]
    assert sink.events[:2] == [10_000, 10_000]


def test_jittered_run_checks_the_end_of_its_last_tick() -> None:
    """With jitter the last stamp checked is the last millisecond of the last tick."""
    sink = _StampCheckingSink()
    Simulation(_busy(sink), 1, ticks=3, tick_ms=100, timestamp_start=0, seed=1, jitter=True).run()
    assert sink.checked == [(0, 299)]


def test_refused_timestamps_end_the_run_before_any_event() -> None:
    """A sink refusing the run's timestamps stops it before any event; every sink is closed once."""
    refusing, other = _StampCheckingSink(refuse=True), _StampCheckingSink()
    model = _busy(other)
    model.add_transition("stay", "a", "a", 0, event_sinks=[refusing])
    with pytest.raises(SinkError, match="refused"):
        Simulation(model, 3, ticks=10, tick_ms=1000, seed=1).run()
    assert other.events == [] and refusing.events == []
    assert (other.closes, refusing.closes) == (1, 1)


def test_live_run_checks_no_timestamps() -> None:
    """A live run stamps by the wall clock: it is not asked to check timestamps."""
    sink = _StampCheckingSink()
    Simulation(_busy(sink), 1, ticks=3, tick_ms=1, seed=1, live=True, speed=1000.0).run()
    assert sink.checked == []
    assert len(sink.events) == 3


def test_reused_sink_with_no_events_reports_this_runs_ledger() -> None:
    """A closed ledgered sink is reopened at run start: a run handing it nothing reports 0."""
    sink = CountingSink("reused")
    Simulation(_busy(sink), 2, ticks=4, tick_ms=1, seed=1).run()
    assert sink.ledger.collected == 8
    quiet = Model(["a", "b"], "a")
    quiet.add_transition("go", "a", "b", 0, event_sinks=[sink])
    result = Simulation(quiet, 2, ticks=4, tick_ms=1, seed=1).run()
    assert [(b.sink, b.collected, b.acknowledged) for b in result.ledgers] == [("reused", 0, 0)]
    assert sink.closed and sink.count == 8


def test_a_run_that_starts_empty_lists_its_newcomers() -> None:
    """With no initial subjects and arrivals, `Simulation.subjects` holds every newcomer (it
    stayed an empty list while the states counted them)."""
    from dogesim import Model, Simulation

    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 50)
    sim = Simulation(model, 0, ticks=20, tick_ms=1000, seed=1, arrivals=2.0)
    result = sim.run()
    assert result.arrivals > 0
    assert len(sim.subjects) == result.arrivals == int(result.occupancy[-1].sum())
