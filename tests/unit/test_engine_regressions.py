"""Engine bugs found from outside (issue 9), each pinned by a test that failed before its fix:
the frozen calendar, failing grants that did not stop the run, closing with a BaseException,
memory that grew with ticks x transitions, wall time and moves vs events, seeds derived from
the global `random`, factories that are also callable, and bad run settings."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
import simpy

from dogesim import MemorySink, Model, ModelError, Simulation
from dogesim.compat import SubjectFactory
from dogesim.errors import SinkError
from dogesim.modelfile import load_model_file
from dogesim.result import RunResult

SUPPORT_CENTER = Path(__file__).resolve().parents[2] / "models" / "support_center.yaml"


class ClosingSink:
    """Counts events and closes; `close()` raises `fail` when given."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.events: list[int] = []
        self.closed = 0

    def collect(self, timestamp: int, subject: Any, transition: Any) -> None:
        self.events.append(timestamp)

    def close(self) -> None:
        self.closed += 1
        if self.fail is not None:
            raise self.fail


# -- the calendar ----------------------------------------------------------------------------


def test_sparse_arrivals_are_not_frozen_behind_a_long_lived_subject() -> None:
    """Newcomers filed in a block before the calendar's current one still attempt on time."""
    model = Model(["new", "active", "gone"], "new")
    model.add_transition("start", "new", "active", 50)
    model.add_transition("leave", "active", "gone", 0.01)
    sim = Simulation(model, 1, ticks=100_000, tick_ms=1, arrivals=0.001, seed=3)
    result = sim.run()
    states = sim.subject_states()
    still_new = states.count("new")
    assert result.arrivals >= 50
    # P(still new after k ticks) = 0.5**k: only those who arrived in the last ~10 ticks may be.
    assert still_new <= 2, (still_new, result.arrivals)


def _support_center(seed: int, sink: MemorySink) -> tuple[RunResult, MemorySink]:
    spec = load_model_file(SUPPORT_CENTER)
    spec.subjects.count = 1
    return spec.simulation(sinks=[sink], seed=seed).run(), sink


def test_support_center_with_one_subject_follows_its_arrivals() -> None:
    """One initial subject and a week of arrivals: events grow with the newcomers."""
    result, sink = _support_center(7, MemorySink())
    assert result.arrivals >= 500
    # Each newcomer reads ~4 help pages a day for the days it is there: far more than 1 each.
    assert len(sink.events) >= result.arrivals


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_grants_never_come_out_of_timestamp_order(seed: int) -> None:
    """A release while the walker waits for a later block files the next holder before it:
    every sink still sees non-decreasing timestamps."""
    sink = MemorySink(lambda ts, s, t: ts)
    model = Model(["idle", "queue", "busy"], "idle", resources={"desk": 1})
    model.add_transition("ask", "idle", "queue", 0.05, event_sinks=[sink])
    model.add_transition("sit", "queue", "busy", 100, event_sinks=[sink], resource="desk", hold=300)
    model.add_transition("leave", "busy", "idle", 100, event_sinks=[sink])
    Simulation(model, 5, ticks=50_000, tick_ms=1, seed=seed).run()
    stamps = np.asarray(sink.events)
    assert len(stamps) > 100
    assert (np.diff(stamps) >= 0).all()


def test_support_center_events_are_in_timestamp_order() -> None:
    """The support centre (jitter, a queue for agents, arrivals) keeps its stream in order."""
    _, sink = _support_center(3, MemorySink())
    stamps = np.asarray([e.timestamp for e in sink.events])
    assert len(stamps) > 1000
    assert (np.diff(stamps) >= 0).all()


# -- failing grants --------------------------------------------------------------------------


def _queue_model(sink: Any, hold: Any) -> Model:
    model = Model(["waiting", "talking", "done"], "waiting", resources={"agents": 1})
    model.add_transition(
        "answer", "waiting", "talking", 100, event_sinks=[sink], resource="agents", hold=hold
    )
    model.add_transition("hang_up", "talking", "done", 100, event_sinks=[sink])
    return model


def test_hold_raising_at_the_first_grant_stops_the_run() -> None:
    """hold() failing at the first grant only: the error comes out, no event after it."""
    sink = ClosingSink()
    calls = [0]

    def hold(subject: Any, transition: Any) -> int:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("no agent today")
        return 1

    sim = Simulation(_queue_model(sink, hold), 2_000, ticks=20_000, tick_ms=1, seed=1)
    with pytest.raises(RuntimeError, match="no agent today"):
        sim.run()
    assert sink.events == []
    assert sink.closed == 1


@pytest.mark.parametrize("error", [SinkError("broker gone"), KeyboardInterrupt()])
def test_sink_raising_inside_a_grant_stops_the_run(error: BaseException) -> None:
    """A sink failing (or Ctrl-C) while a grant feeds it ends the run at that tick."""

    class FailOnThirdGrant(ClosingSink):
        answers = 0

        def collect(self, timestamp: int, subject: Any, transition: Any) -> None:
            if transition.trigger == "answer":
                self.answers += 1
                if self.answers == 3:
                    raise error
            super().collect(timestamp, subject, transition)

    sink = FailOnThirdGrant()
    sim = Simulation(_queue_model(sink, 2), 2_000, ticks=20_000, tick_ms=1, seed=1)
    with pytest.raises(type(error)):
        sim.run()
    assert sink.closed == 1
    assert len(sink.events) <= 5
    assert max(sink.events) <= 10


# -- closing ---------------------------------------------------------------------------------


def _two_sink_model(first: Any, second: Any) -> Model:
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 50, event_sinks=[first, second])
    return model


def test_keyboard_interrupt_in_close_still_closes_the_other_sinks() -> None:
    """A close() raising KeyboardInterrupt: every other sink closed, then it is re-raised."""
    first = ClosingSink(KeyboardInterrupt())
    second = ClosingSink()
    with pytest.raises(KeyboardInterrupt):
        Simulation(_two_sink_model(first, second), 10, ticks=10, tick_ms=1, seed=1).run()
    assert (first.closed, second.closed) == (1, 1)


def test_a_close_failure_never_hides_the_run_error() -> None:
    """The run's own error propagates; a KeyboardInterrupt from close() becomes a note."""
    first = ClosingSink(KeyboardInterrupt())
    second = ClosingSink()
    model = _two_sink_model(first, second)

    def boom(subject: Any, transition: Any) -> bool:
        raise ValueError("callback broke")

    model.add_transition("back", "b", "a", 50, action_callback=boom)
    with pytest.raises(ValueError, match="callback broke") as caught:
        Simulation(model, 10, ticks=1000, tick_ms=1, seed=1).run()
    assert (first.closed, second.closed) == (1, 1)
    notes = getattr(caught.value, "__notes__", [])
    assert any("KeyboardInterrupt" in note for note in notes), notes


def test_two_close_failures_are_both_reported() -> None:
    """Two sinks failing to close: the first error is raised, the second is a note on it."""
    first = ClosingSink(OSError("disk full"))
    second = ClosingSink(OSError("socket closed"))
    with pytest.raises(SinkError) as caught:
        Simulation(_two_sink_model(first, second), 10, ticks=10, tick_ms=1, seed=1).run()
    text = str(caught.value) + " ".join(getattr(caught.value, "__notes__", []))
    assert "disk full" in text and "socket closed" in text
    assert (first.closed, second.closed) == (1, 1)


# -- memory ----------------------------------------------------------------------------------


def test_long_runs_keep_small_tables_and_exact_totals() -> None:
    """10 subjects x 10M ticks: per-tick tables at a resolution, totals exact."""
    sink = ClosingSink()
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 0.001, event_sinks=[sink])
    model.add_transition("back", "b", "a", 0.001)
    result = Simulation(model, 10, ticks=10_000_000, tick_ms=1, seed=5).run()
    assert result.events_per_tick.shape[0] <= 10_001
    assert result.occupancy.shape[0] <= 10_001
    assert result.record_every * result.occupancy.shape[0] >= 10_000_000
    assert int(result.events_per_transition[0]) == len(sink.events)
    assert int(result.events_per_tick[:, 0].sum()) == len(sink.events)
    assert result.occupancy[-1].sum() == 10


def test_a_trillion_quiet_ticks_finish_without_allocating_per_tick() -> None:
    """ticks=10**12 with every chance 0: nothing is due, the run ends at once, small result."""
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 0)
    result = Simulation(model, 10, ticks=10**12, tick_ms=1, seed=5).run()
    assert result.ticks == 10**12
    assert result.occupancy.shape[0] <= 10_001
    assert result.occupancy[-1].tolist() == [10, 0]


def test_sizes_beyond_the_engine_range_are_refused_up_front() -> None:
    """Tick counts past 2**62, runs ending past 2**62 ms and 2**31+ subjects: ModelErrors."""
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 1)
    with pytest.raises(ModelError, match="ticks must be at most 2\\*\\*62"):
        Simulation(model, 10, ticks=2**63, tick_ms=1)
    with pytest.raises(ModelError, match="ticks x tick_ms"):
        Simulation(model, 10, ticks=2**61, tick_ms=60_000)
    with pytest.raises(ModelError, match="at most 2\\*\\*31"):
        Simulation(model, 2**31 + 1, ticks=10, tick_ms=1)


def test_record_every_can_be_asked_for() -> None:
    """record_every=10 bins the tables by 10 ticks; the bins sum to the per-tick run."""
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 10)
    fine = Simulation(model, 100, ticks=95, tick_ms=1, seed=2).run()
    coarse = Simulation(model, 100, ticks=95, tick_ms=1, seed=2, record_every=10).run()
    assert coarse.events_per_tick.shape == (10, 1)
    sums = [int(fine.events_per_tick[k : k + 10, 0].sum()) for k in range(0, 95, 10)]
    assert coarse.events_per_tick[:, 0].tolist() == sums
    ends = [min(k + 9, 94) for k in range(0, 95, 10)]
    assert coarse.occupancy.tolist() == fine.occupancy[ends].tolist()


# -- wall time, moves and events -------------------------------------------------------------


def test_wall_time_includes_building_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Time spent building the RunResult is part of wall_time (a fake clock shows it)."""
    clock = [1000.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    original = RunResult.__init__

    def slow_init(self: RunResult, *args: Any, **kwargs: Any) -> None:
        clock[0] += 50.0
        original(self, *args, **kwargs)

    monkeypatch.setattr(RunResult, "__init__", slow_init)
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 10)
    result = Simulation(model, 10, ticks=10, tick_ms=1, seed=1).run()
    assert result.wall_time >= 50.0


def test_moves_without_sinks_are_not_events() -> None:
    """`moves` counts every move; `events` only moves on transitions that feed a sink."""
    sink = ClosingSink()
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 100, event_sinks=[sink])
    model.add_transition("back", "b", "a", 100)
    result = Simulation(model, 3, ticks=4, tick_ms=1, seed=1).run()
    assert result.moves == 12
    assert result.events == 6 == len(sink.events)
    assert "6 events" in result.summary()


# -- seeds, factories, settings --------------------------------------------------------------


def _draws(seed_globals: bool = True) -> tuple[int, list[Any]]:
    model = Model(["a", "b"], "a")
    sink = MemorySink(mapper=lambda ts, s, t: (ts, s.id))
    model.add_transition("go", "a", "b", 20, event_sinks=[sink])
    result = Simulation(model, 50, ticks=20, tick_ms=1, seed_globals=seed_globals).run()
    return result.seed, sink.events


def test_random_seed_makes_an_unseeded_run_reproducible(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without seed= or DOGESIM_SEED, the run's seed comes from the global random state."""
    monkeypatch.delenv("DOGESIM_SEED", raising=False)
    random.seed(42)
    first = _draws()
    random.seed(42)
    second = _draws()
    assert first == second
    random.seed(43)
    assert _draws()[0] != first[0]


def test_seed_globals_reseeds_random_from_the_run_seed() -> None:
    """With seed_globals, a factory drawing from `random` sees random.seed(run seed)."""
    drawn: list[float] = []
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 1)
    sim = Simulation(
        model, 1, subject_factory=lambda: drawn.append(random.random()), ticks=1, tick_ms=1, seed=99
    )
    sim.run()
    assert drawn == [random.Random(99).random()]


def test_a_factory_with_create_is_used_through_create() -> None:
    """A Mock(SubjectFactory) is callable, yet its create() makes the subjects."""
    factory = mock.Mock(SubjectFactory)
    factory.create.side_effect = [f"s{i}" for i in range(3)]
    model = Model(["a", "b"], "a")
    sink = MemorySink(mapper=lambda ts, s, t: s)
    model.add_transition("go", "a", "b", 100, event_sinks=[sink])
    Simulation(model, 3, subject_factory=factory, ticks=1, tick_ms=1, seed=1).run()
    assert sink.events == ["s0", "s1", "s2"]
    assert factory.create.call_count == 3
    assert factory.call_count == 0


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_lag_ms", "x"),
        ("max_lag_ms", -1),
        ("max_lag_ms", math.nan),
        ("progress", 5),
        ("record_every", 0),
        ("record_every", "soon"),
        ("speed", "fast"),
        ("on_lag", "ignore"),
    ],
)
def test_bad_run_settings_are_named(setting: str, value: Any) -> None:
    """Each bad run setting is a ModelError naming it."""
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 1)
    with pytest.raises(ModelError, match=setting):
        Simulation(model, 1, ticks=1, tick_ms=1, **{setting: value})


def test_reports_follow_the_rows_of_a_binned_result() -> None:
    """Frames, the transition table and the analytic side use the result's rows of ticks."""
    from dogesim.report import analytic, tables

    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 10)
    coarse = Simulation(model, 100, ticks=95, tick_ms=1000, seed=2, record_every=10).run()
    frame = tables.occupancy_frame(coarse)
    assert len(frame) == 10
    assert frame.index.as_unit("ms").asi8.tolist() == coarse.timestamps().tolist()
    assert coarse.timestamps()[-1] == 94_000
    assert len(tables.events_frame(coarse)) == 10
    per_tick = analytic.expected_occupancy(coarse_model := model.at_tick(1000), 95, 100)
    rows = analytic.expected_occupancy(coarse_model, 95, 100, every=10)
    assert np.allclose(rows, per_tick[coarse.row_ticks()])
    quiet = Model(["a", "b"], "a")
    quiet.add_transition("go", "a", "b", 0)
    still = Simulation(quiet, 100, ticks=95, tick_ms=1, seed=2, record_every=10).run()
    assert tables.transition_table(still)["subject_ticks"].tolist() == [100 * 95]


def test_a_run_without_a_tick_count_coarsens_its_rows() -> None:
    """ticks=None (live until stopped): rows double in length, stay under 10k, totals exact."""
    sink = ClosingSink()
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 1, event_sinks=[sink])
    model.add_transition("back", "b", "a", 1, event_sinks=[sink])

    def progress(done: int) -> None:
        if done == 25_000:
            sim.stop()

    sim = Simulation(
        model, 3, ticks=None, tick_ms=1, live=True, env=simpy.Environment(), progress=progress
    )
    result = sim.run()
    assert result.ticks == 25_000
    assert result.record_every == 4
    assert result.occupancy.shape == (6250, 2)
    assert result.events == len(sink.events) == int(result.events_per_tick.sum())
    assert result.occupancy[-1].sum() == 3


def test_options_objects_run_the_same_as_keywords() -> None:
    """RunOptions/LiveOptions give the same stream as the keywords; mixing both is refused."""
    from dataclasses import FrozenInstanceError

    from dogesim.engine import LiveOptions, RunOptions

    def stream(**kwargs: Any) -> list[Any]:
        sink = MemorySink(lambda ts, s, t: (ts, s.id, t.trigger))
        model = Model(["a", "b"], "a")
        model.add_transition("go", "a", "b", 30, event_sinks=[sink])
        model.add_transition("back", "b", "a", 20, event_sinks=[sink])
        Simulation(model, 20, **kwargs).run()
        return sink.events

    options = RunOptions(ticks=50, tick_ms=10, seed=4, jitter=True)
    assert stream(options=options, live=LiveOptions()) == stream(
        ticks=50, tick_ms=10, seed=4, jitter=True
    )
    with pytest.raises(ModelError, match="not both: seed"):
        stream(options=options, seed=5)
    with pytest.raises(FrozenInstanceError):
        options.ticks = 3  # type: ignore[misc]
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 1)
    sim = Simulation(model, 1, options=options)
    assert sim.options.seed == 4 and sim.options.record_every == 1
    assert sim.live_options == LiveOptions(False, 1.0, 10.0, "warn")


@pytest.mark.parametrize("offset", [0.0, 5.5, -3.0, 1 / 7])
def test_profile_thresholds_kept_per_hour_equal_the_moment_by_moment_ones(offset: float) -> None:
    """Thresholds reused within a local hour are those computed afresh at every moment."""
    from dogesim.engine.tables import Tables
    from dogesim.rates import Profile

    hourly = [0.1 * (h % 5) for h in range(24)]
    day = Profile(hourly=hourly, dates={"2024-01-02": 0.5}, utc_offset_hours=offset)
    week = Profile(weekly=[1, 0.5, 1, 0.2, 1, 0, 1], utc_offset_hours=2)
    model = Model(["a", "b", "c"], "a")
    model.add_transition("ab", "a", "b", 20, profile=day)
    model.add_transition("ac", "a", "c", 10, profile=week)
    model.add_transition("ba", "b", "a", 5)
    tables = Tables(model, simpy.Environment())
    rng = np.random.default_rng(1)
    moments = np.sort(rng.integers(1_704_067_200_000, 1_704_067_200_000 + 5 * 86_400_000, 400))
    for ts in [*moments.tolist(), 1_704_153_600_000 - 1, 1_704_153_600_000]:
        kept, _ = tables.choice(ts)
        fresh, _ = tables._profiled_thresholds(ts)
        assert np.array_equal(kept, fresh), ts


def test_arrivals_drawn_tick_to_tick_follow_the_profiled_poisson_law() -> None:
    """Arrivals jump from one tick with newcomers to the next: per hour of day the counts
    are Poisson with mean rate x multiplier (none where the profile is 0)."""
    from dogesim.rates import Profile

    hourly = [0.0] * 6 + [2.0] * 6 + [0.5] * 12
    days = 10
    sink = MemorySink(lambda ts, s, t: ts)
    model = Model(["new", "active"], "new")
    model.add_transition("start", "new", "active", 100, event_sinks=[sink])
    result = Simulation(
        model,
        0,
        ticks=days * 1440,
        tick_ms=60_000,
        seed=8,
        arrivals="30 per hour",
        arrivals_profile=Profile(hourly=hourly),
    ).run()
    hours = (np.asarray(sink.events) // 3_600_000) % 24
    counts = np.bincount(hours, minlength=24)
    assert int(counts.sum()) == result.arrivals
    for hour, m in enumerate(hourly):
        mean = 30 * m * days
        assert abs(counts[hour] - mean) <= 5 * math.sqrt(mean) + 1, (hour, counts[hour], mean)


def test_rare_arrivals_over_a_long_run_cost_per_arrival() -> None:
    """1 newcomer per 1000 ticks over 10M ticks: about 10k arrivals, exact in law, and the
    walker visits only ticks with arrivals or subjects due (counted by progress calls)."""
    calls = [0]

    def progress(done: int) -> None:
        calls[0] += 1

    model = Model(["new", "gone"], "new")
    model.add_transition("leave", "new", "gone", 100)
    result = Simulation(
        model, 0, ticks=10_000_000, tick_ms=1, seed=9, arrivals=0.001, progress=progress
    ).run()
    assert abs(result.arrivals - 10_000) <= 5 * math.sqrt(10_000)
    # Each newcomer leaves at its arrival tick (100%): nobody is left in 'new'.
    assert result.occupancy[-1].tolist() == [0, result.arrivals]
    assert calls[0] <= result.arrivals + 1


@pytest.mark.parametrize("mean", [0.001, 0.4, 1.0, 3.0])
def test_candidate_newcomers_are_poisson_given_at_least_one(mean: float) -> None:
    """The count at a tick with candidates is Poisson(mean) conditioned on >= 1."""
    from dogesim.engine.arrivals import _positive_poisson

    rng = np.random.default_rng(4)
    n = 40_000
    draws = np.asarray([_positive_poisson(mean, rng) for _ in range(n)])
    assert draws.min() >= 1
    p_one = mean * math.exp(-mean) / -math.expm1(-mean)
    ones = int((draws == 1).sum())
    assert abs(ones - n * p_one) <= 5 * math.sqrt(n * p_one * (1 - p_one)) + 1
    expected = mean / -math.expm1(-mean)
    sd = math.sqrt(max(draws.var(), 1e-12) / n)
    assert abs(draws.mean() - expected) <= 5 * sd + 1e-9


def test_stop_and_resume_with_planned_arrivals_equals_the_whole_run(tmp_path: Path) -> None:
    """A checkpoint keeps the next planned arrival: the two halves equal the whole run."""

    def model_with(sink: MemorySink) -> Model:
        model = Model(["new", "active", "gone"], "new")
        model.add_transition("start", "new", "active", 30, event_sinks=[sink])
        model.add_transition("leave", "active", "gone", 2, event_sinks=[sink])
        return model

    def mapper(ts: int, s: Any, t: Any) -> tuple[int, str]:
        return ts, t.trigger

    whole = MemorySink(mapper)
    Simulation(model_with(whole), 5, ticks=3000, tick_ms=1, seed=12, arrivals=0.05).run()
    first = MemorySink(mapper)

    def progress(done: int) -> None:
        if done >= 1234:
            sim.stop()

    sim = Simulation(
        model_with(first), 5, ticks=3000, tick_ms=1, seed=12, arrivals=0.05, progress=progress
    )
    assert sim.run().stopped
    sim.checkpoint(tmp_path / "a.ckpt")
    rest = MemorySink(mapper)
    Simulation.resume(tmp_path / "a.ckpt", model_with(rest), arrivals=0.05).run()
    assert first.events + rest.events == whole.events
    assert len(rest.events) > 50
