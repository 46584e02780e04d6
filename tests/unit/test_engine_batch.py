"""The per-tick batch path: sinks with ``collect_many`` get exactly the per-event sequence."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

import dogesim.engine.scheduler
from dogesim import Model, Profile, Simulation, SinkError, Transition

#: Every test here runs on both engine paths: the compiled kernel and its Python twin.
pytestmark = pytest.mark.usefixtures("kernel_path")

Event = tuple[int, int, str]


class PerEvent:
    """A plain sink: records each ``collect`` call."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = 0

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        self.events.append((timestamp, subject.id, transition.trigger))

    def close(self) -> None:
        self.closed += 1


class Batched(PerEvent):
    """A batch-capable sink: records every event and, per ``collect_many`` call, its
    timestamp and size (`fail_at`: the call number that raises)."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.calls: list[tuple[int, int]] = []
        self.single = 0
        self.fail_at = fail_at

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        self.single += 1
        super().collect(timestamp, subject, transition)

    def collect_many(
        self, timestamp: int, subjects: Sequence[Any], transitions: Sequence[Transition]
    ) -> None:
        if len(self.calls) == self.fail_at:
            raise SinkError("batch backend down")
        self.calls.append((timestamp, len(subjects)))
        for subject, transition in zip(subjects, transitions, strict=True):
            self.events.append((timestamp, subject.id, transition.trigger))


def _counter() -> Callable[[], SimpleNamespace]:
    ids = itertools.count()
    return lambda: SimpleNamespace(id=next(ids))


def _every_feature(sinks: list[Any], resources: bool = True) -> Model:
    """Vetoes, a calendar profile, a resource with holds, a final state; every transition
    feeds `sinks` (one of them twice on ``aa``)."""

    def odd_only(subject: Any, transition: Transition) -> bool:
        return bool(subject.id % 2)

    model = Model(["a", "b", "c", "end"], "a", resources={"desk": 2} if resources else {})
    evening = Profile(hourly=[0.2] * 12 + [1.0] * 12)
    desk = {"resource": "desk", "hold": 3} if resources else {}
    model.add_transition("ab", "a", "b", 30, odd_only, sinks, profile=evening)
    model.add_transition("aa", "a", "a", 20, None, [*sinks, *sinks])
    model.add_transition("bc", "b", "c", 40, None, sinks, **desk)
    model.add_transition("ca", "c", "a", 50, None, sinks)
    model.add_transition("quit", "c", "end", 2, None, sinks)
    return model


def _run(model: Model, subjects: int = 300, ticks: int = 200, **options: Any) -> None:
    Simulation(
        model, subjects, subject_factory=_counter(), ticks=ticks, tick_ms=600_000, **options
    ).run()


@pytest.mark.parametrize("small", [None, 0, 10**9])
@pytest.mark.parametrize(("resources", "newcomers"), [(True, True), (False, True), (False, False)])
def test_batch_sink_gets_the_per_event_sequence(
    small: int | None, resources: bool, newcomers: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across vetoes, profiles, resources, arrivals and churn, on every tick path (numpy,
    plain Python, and its loop through quiet ticks when nothing else runs), a collect_many
    sink gets the per-event sink's exact sequence, one call per tick."""
    if small is not None:
        monkeypatch.setattr(dogesim.engine.scheduler, "SMALL_TICK", small)
    plain, batched = PerEvent(), Batched()
    model = _every_feature([plain, batched], resources)
    extra: dict[str, Any] = {}
    if newcomers:
        extra = {"arrivals": 2.5, "churn": 1.0, "churn_sinks": [batched, plain]}
    _run(model, seed=4, **extra)
    assert len(plain.events) > 1000
    triggers = {"ab", "aa", "bc", "ca", "quit"} | ({"churn"} if newcomers else set())
    assert {e[2] for e in plain.events} == triggers
    assert batched.events == plain.events
    stamps = [ts for ts, _ in batched.calls]
    assert stamps == sorted(set(stamps))  # one call per tick, in tick order
    # Grants after their tick go one by one; nothing else does.
    assert batched.single > 0 if resources else batched.single == 0
    assert sum(n for _, n in batched.calls) + batched.single == len(plain.events)


def test_batching_does_not_change_the_stream() -> None:
    """A run with a batch sink hands its per-event sinks what a run without one does."""
    alone = PerEvent()
    _run(_every_feature([alone]), seed=8, arrivals=1.0)
    beside, batched = PerEvent(), Batched()
    _run(_every_feature([beside, batched]), seed=8, arrivals=1.0)
    assert beside.events == alone.events == batched.events


@pytest.mark.parametrize(
    "options", [{"batch": False}, {"jitter": True}], ids=["batch=False", "jitter"]
)
def test_no_batches_without_batching_or_with_jitter(options: dict[str, Any]) -> None:
    """batch=False, or jitter (a timestamp per event), keeps collect for every sink."""
    plain, batched = PerEvent(), Batched()
    _run(_every_feature([plain, batched]), seed=2, **options)
    assert batched.calls == []
    assert batched.single == len(plain.events) > 0
    assert batched.events == plain.events


def test_live_runs_keep_collect() -> None:
    """A live run paces its events one by one: no collect_many."""
    plain, batched = PerEvent(), Batched()
    model = Model(["a"], "a")
    model.add_transition("beat", "a", "a", 100, event_sinks=[plain, batched])
    Simulation(model, 3, ticks=4, tick_ms=1, seed=0, live=True, speed=1000.0).run()
    assert batched.calls == [] and batched.single == len(plain.events) == 12


def test_batch_failure_stops_the_run_at_once() -> None:
    """collect_many raising ends the run at its tick, like a failing collect: later ticks
    never run, and every sink is closed once."""
    healthy, broken = PerEvent(), Batched(fail_at=1)
    model = Model(["a"], "a")
    model.add_transition("beat", "a", "a", 100, event_sinks=[healthy, broken])
    with pytest.raises(SinkError, match="batch backend down"):
        Simulation(model, 3, ticks=5, tick_ms=1, seed=0).run()
    assert (healthy.closed, broken.closed) == (1, 1)
    assert broken.calls == [(0, 3)]
    assert [e[0] for e in healthy.events] == [0] * 3 + [1] * 3  # tick 1 ran, tick 2 did not


def test_batch_sink_sees_subjects_after_the_ticks_callbacks() -> None:
    """The documented rule: a batch sink reads a subject once every callback of its tick ran
    (a per-event sink reads it right after its own move's callback)."""
    seen: dict[str, list[int]] = {"plain": [], "batch": []}
    shared = SimpleNamespace(calls=0)

    class Reader(PerEvent):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

        def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
            seen[self.key].append(subject.box.calls)

    class BatchReader(Reader):
        def collect_many(
            self, timestamp: int, subjects: Sequence[Any], transitions: Sequence[Transition]
        ) -> None:
            seen[self.key].extend(s.box.calls for s in subjects)

    def bump(subject: Any, transition: Transition) -> bool:
        subject.box.calls += 1
        return True

    model = Model(["a"], "a")
    model.add_transition("beat", "a", "a", 100, bump, [Reader("plain"), BatchReader("batch")])
    people = [SimpleNamespace(id=i, box=shared) for i in range(3)]
    Simulation(model, people, ticks=2, tick_ms=1, seed=0).run()
    assert seen == {"plain": [1, 2, 3, 4, 5, 6], "batch": [3, 3, 3, 6, 6, 6]}


def test_counting_sink_counts_batches_as_events() -> None:
    """A CountingSink takes the batch path and counts exactly the per-event run's events,
    also when reused after close (its ledger then counts the second run only)."""
    from dogesim.sinks.base import CountingSink, batch_collector

    sink = CountingSink()
    assert batch_collector(sink) is not None
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 30, event_sinks=[sink])
    model.add_transition("back", "b", "a", 30, event_sinks=[sink])
    first = Simulation(model, 500, ticks=200, tick_ms=1000, seed=4).run()
    assert sink.count == first.events > 0 and sink.ledger.collected == first.events
    second = Simulation(model, 500, ticks=200, tick_ms=1000, seed=5).run()
    assert sink.count == first.events + second.events
    assert sink.ledger.collected == sink.ledger.acknowledged == second.events


def test_a_subclass_that_overrides_collect_keeps_getting_collect() -> None:
    """A sink class that overrides `collect` below a base with `collect_many` (a filtering
    JsonLinesSink, a counting sink with a fault) gets its own `collect` for every event: the
    inherited batch method would skip the override."""
    from dogesim.sinks.base import CountingSink, batch_collector

    class EveryOther(CountingSink):
        def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
            if subject.id % 2 == 0:
                super().collect(timestamp, subject, transition)

    class Both(EveryOther):
        def collect_many(
            self, timestamp: int, subjects: Sequence[Any], transitions: Sequence[Transition]
        ) -> None:
            for subject, transition in zip(subjects, transitions, strict=True):
                self.collect(timestamp, subject, transition)

    plain, patched = CountingSink(), CountingSink()
    patched.collect = lambda timestamp, subject, transition: None  # type: ignore[method-assign]
    assert batch_collector(plain) is not None
    assert batch_collector(EveryOther()) is None
    assert batch_collector(Both()) is not None
    assert batch_collector(patched) is None
    sink = EveryOther()
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 100, event_sinks=[sink])
    Simulation(model, 10, ticks=1, tick_ms=1000, seed=1).run()
    assert sink.count == 5


@pytest.mark.parametrize("small", [0, 10**9], ids=["numpy-ticks", "scalar-ticks"])
@pytest.mark.parametrize("fault", ["callback", "sink"])
def test_a_failure_inside_a_tick_leaves_the_batch_sinks_the_events_before_it(
    small: int, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A callback (or a per-event sink) raising mid-tick: a batch sink has received exactly
    what a per-event sink had (the events before the failing one), on both tick paths."""
    monkeypatch.setattr(dogesim.engine.scheduler, "SMALL_TICK", small)
    calls = itertools.count(1)

    def interrupt_at_57(subject: Any, transition: Transition) -> bool:
        if fault == "callback" and next(calls) == 57:
            raise KeyboardInterrupt
        return subject.id % 5 != 0  # vetoes too

    class FailingPerEvent(PerEvent):
        def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
            if fault == "sink" and len(self.events) == 56:
                raise KeyboardInterrupt
            super().collect(timestamp, subject, transition)

    per_event, batched = FailingPerEvent(), Batched()
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 40, interrupt_at_57, [batched, per_event])
    model.add_transition("back", "b", "a", 40, None, [batched, per_event])
    sim = Simulation(model, 60, subject_factory=_counter(), ticks=50, tick_ms=1000, seed=3)
    with pytest.raises(KeyboardInterrupt):
        sim.run()
    assert len(per_event.events) > 20
    assert batched.events == per_event.events
