"""The walker's clock: it may walk busy ticks without a SimPy timeout each, but the clock
reads the tick being handled, never passes another process's event, and ends where the walk
ended."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from dogesim import MemorySink, Model, Simulation


def _every_tick(sink: MemorySink) -> Model:
    model = Model(["a", "b"], "a")
    for trigger, source, target in (("go", "a", "b"), ("back", "b", "a")):
        model.add_transition(trigger, source, target, 100, event_sinks=[sink])
    return model


def test_other_processes_see_the_events_of_the_ticks_before_them() -> None:
    """A process in the run's environment, waking at 2.5 and 6.5, sees ticks 0-2 and 0-6 done."""
    sink = MemorySink(lambda ts, subject, transition: ts)
    env = simpy.Environment()
    seen: list[tuple[float, int]] = []

    def watcher() -> Generator[simpy.events.Event, Any, None]:
        for wait in (2.5, 4.0):
            yield env.timeout(wait)
            seen.append((env.now, len(sink.events)))

    env.process(watcher())
    Simulation(_every_tick(sink), 1, ticks=10, tick_ms=1, seed=3, env=env).run()
    assert seen == [(2.5, 3), (6.5, 7)]
    assert sink.events == list(range(10))


def test_callbacks_read_the_tick_being_handled_on_the_clock() -> None:
    """A callback reading the SimPy clock sees the tick it is called in (doge's timestamp)."""
    clock: list[float] = []
    sim: Simulation

    def note(subject: Any, transition: Any) -> bool:
        clock.append(sim.env.now)
        return True

    stamps = MemorySink(lambda ts, subject, transition: ts)
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 40, action_callback=note, event_sinks=[stamps])
    model.add_transition("back", "b", "a", 40, action_callback=note, event_sinks=[stamps])
    sim = Simulation(model, 1, ticks=30, tick_ms=1, seed=2)
    sim.run()
    assert 5 < len(clock) < 30  # quiet ticks between the moves
    assert clock == [float(ts) for ts in stamps.events]


def test_clock_ends_at_the_last_busy_tick() -> None:
    """With nothing else scheduled the walker moves the clock itself and ends at its last tick."""
    sink = MemorySink(lambda ts, subject, transition: ts)
    sim = Simulation(_every_tick(sink), 2, ticks=50, tick_ms=1, seed=3)
    sim.run()
    assert sim.env.now == 49
    assert len(sink.events) == 100


def test_busy_tick_runs_python_only_for_moves_that_need_it() -> None:
    """In a busy (numpy) tick, moves with no sink or callback skip the per-subject loop while
    vetoes and sink events still land on the right subjects."""
    to_b = MemorySink(lambda ts, subject, transition: subject.id)
    to_d = MemorySink(lambda ts, subject, transition: subject.id)
    asked: list[int] = []

    def even_only(subject: Any, transition: Any) -> bool:
        asked.append(subject.id)
        return subject.id % 2 == 0

    model = Model(["a", "b", "c", "d"], "a")
    model.add_transition("ab", "a", "b", 30, event_sinks=[to_b])
    model.add_transition("ac", "a", "c", 30)
    model.add_transition("ad", "a", "d", 30, action_callback=even_only, event_sinks=[to_d])
    sim = Simulation(model, 400, ticks=1, tick_ms=1, seed=5)
    result = sim.run()
    states = sim.subject_states()
    assert to_b.events == [i for i, s in enumerate(states) if s == "b"]
    assert to_d.events == [i for i in asked if i % 2 == 0]
    assert [i for i, s in enumerate(states) if s == "d"] == to_d.events
    assert int(result.vetoes[2]) == len([i for i in asked if i % 2]) > 0
    assert 0 < states.count("c") == int(result.events_per_tick[:, 1].sum())
