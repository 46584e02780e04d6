"""Resuming runs with cohort features: a stopped kernel run and a stopped by-age run with
arrivals, resumed from their checkpoints, give exactly the uninterrupted run's events (each
kernel stay keeps its drawn length, each newcomer its age)."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dogesim import MemorySink, Model, Simulation, StayKernel


def _kernel_model(sink: MemorySink) -> Model:
    """State A stays 2..6 ticks (first stays longer), then goes to B or C by its length."""
    later = StayKernel([2, 3, 4], [1, 2, 1], {"toB": [1, 0.5, 0], "toC": [0, 0.5, 1]})
    first = StayKernel([5, 6], [1, 1], {"toB": [1, 0], "toC": [0, 1]})
    law = StayKernel(later.lengths, later.weights, dict(later.to), first=first)
    model = Model(["A", "B", "C"], "A", dwell={"A": law})
    model.add_transition("toB", "A", "B", 0, event_sinks=[sink])
    model.add_transition("toC", "A", "C", 0, event_sinks=[sink])
    model.add_transition("back", "B", "A", 40, event_sinks=[sink])
    model.add_transition("backC", "C", "A", 20, event_sinks=[sink])
    return model


def _age_model(sink: MemorySink) -> Model:
    """0% before age 4, then 60%: a newcomer moves only from 4 ticks after its arrival."""
    model = Model(["A", "B"], "A")
    chances = {"edges": [0, 4], "chances": [0, 60]}
    model.add_transition("go", "A", "B", by_age=chances, event_sinks=[sink])
    model.add_transition("back", "B", "A", 30, event_sinks=[sink])
    return model


def _record(timestamp: int, subject: Any, transition: Any) -> tuple[int, int, str]:
    return (timestamp, subject.id, transition.trigger)


def _run(build: Any, tmp_path: Path, stop_at: int | None, **settings: Any) -> list[Any]:
    """The run's events; stopped at `stop_at`, checkpointed and resumed when given."""
    ids = itertools.count()

    def factory() -> SimpleNamespace:
        return SimpleNamespace(id=next(ids))

    sink = MemorySink(_record)
    sim: Simulation

    def stop(t: int) -> None:
        if stop_at is not None and t >= stop_at:
            sim.stop()

    sim = Simulation(build(sink), subject_factory=factory, progress=stop, **settings)
    result = sim.run()
    if stop_at is None:
        return list(sink.events)
    assert result.stopped
    path = tmp_path / "cohort.ckpt"
    sim.checkpoint(path)
    second = MemorySink(_record)
    resumed = Simulation.resume(
        path, build(second), subject_factory=factory, arrivals=settings.get("arrivals")
    )
    resumed.run()
    return list(sink.events) + list(second.events)


@pytest.mark.parametrize(
    ("build", "settings"),
    [
        (_kernel_model, {"subjects": 300, "ticks": 60, "tick_ms": 1000, "seed": 3}),
        (
            _age_model,
            {"subjects": 20, "ticks": 60, "tick_ms": 1000, "seed": 5, "arrivals": 3.0},
        ),
    ],
    ids=["kernel", "by_age_with_arrivals"],
)
@pytest.mark.parametrize("stop_at", [1, 7, 33])
def test_a_resumed_cohort_run_equals_the_whole_run(
    tmp_path: Path, build: Any, settings: dict[str, Any], stop_at: int
) -> None:
    """Stop at `stop_at`, checkpoint, resume: the events equal the uninterrupted run's."""
    whole = _run(build, tmp_path, None, **settings)
    assert len(whole) > 50
    assert _run(build, tmp_path, stop_at, **settings) == whole
