"""The compiled kernel (`dogesim.engine._kernel`) against its Python twin, run for run.

Hypothesis draws random models (1-6 states, chances of 0, tiny, ordinary and 100%, calendar
profiles, callbacks that veto at random and change their subjects, per-event and batch
sinks, a sink listed twice, final states), populations small enough for the quiet-tick loop
or pushed onto the vector path, runs over many 64-tick calendar blocks with waits far past
and right at the horizon, and a callback or sink that raises at a random attempt. Each run
goes through both paths (`dogesim.engine.kernel.NATIVE` set to the C module, then to None)
and everything observable must be equal: every sink's events and calls, the counts, the
vetoes, the final states and subjects, the exception, and a checkpoint taken mid-run and
the run resumed from it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dogesim import Model, Profile, Simulation, Transition
from dogesim.engine import kernel, scheduler

COMPILED = kernel.compiled()
needs_kernel = pytest.mark.skipif(COMPILED is None, reason="the compiled kernel is not built")
#: 2026-01-05 00:00 UTC, a Monday.
EPOCH = 1_767_571_200_000
#: Chances (percent) to draw from: nil, tiny (waits far past any horizon), ordinary, certain.
CHANCES = (0.0, 1e-9, 0.001, 0.5, 5.0, 30.0, 100.0)


class Boom(Exception):
    """What a failing callback or sink raises."""


@dataclass
class Card:
    """A data subject (checkpoints save it) that its callbacks change."""

    id: int
    seen: int = 0


@dataclass(frozen=True)
class Spec:
    """A random model and run, rebuilt identically from its numbers."""

    states: int
    edges: tuple[tuple[int, int, float, bool, bool, int], ...]  # from, to, %, veto, profile, sinks
    subjects: int
    ticks: int
    tick_ms: int
    seed: int
    veto_mod: int
    small: int | None  # scheduler.SMALL_TICK for the run (None: as it is)
    fail: tuple[str, int] | None = None  # ("callback" | "sink" | "batch", at which call)
    arrivals: float | None = None


class Recorder:
    """A per-event sink: records (timestamp, subject id, its `seen`, trigger) per collect."""

    def __init__(self, name: str, log: list[Any], fail: int | None = None) -> None:
        self.name, self.log, self.fail, self.calls = name, log, fail, 0

    def collect(self, timestamp: int, subject: Card, transition: Transition) -> None:
        self.calls += 1
        if self.calls == self.fail:
            raise Boom(f"{self.name} failed at call {self.calls}")
        self.log.append((self.name, timestamp, subject.id, subject.seen, transition.trigger))


class BatchRecorder(Recorder):
    """A batch sink: records every event and, per ``collect_many``, its size."""

    def collect_many(
        self, timestamp: int, subjects: Sequence[Card], transitions: Sequence[Transition]
    ) -> None:
        self.calls += 1
        if self.calls == self.fail:
            raise Boom(f"{self.name} failed at batch {self.calls}")
        self.log.append((self.name, "many", timestamp, len(subjects)))
        for subject, transition in zip(subjects, transitions, strict=True):
            self.log.append((self.name, timestamp, subject.id, subject.seen, transition.trigger))


def _model(spec: Spec, log: list[Any]) -> Model:
    """The model of `spec`, its sinks writing into `log`."""
    fail_kind, fail_at = spec.fail or ("", None)
    sinks: list[Any] = [
        Recorder("plain", log, fail_at if fail_kind == "sink" else None),
        BatchRecorder("batch", log, fail_at if fail_kind == "batch" else None),
        BatchRecorder("other", log),
    ]
    calls = itertools.count(1)

    def veto(subject: Card, transition: Transition) -> bool:
        n = next(calls)
        if fail_kind == "callback" and n == fail_at:
            raise Boom(f"callback failed at call {n}")
        subject.seen += 1
        return (subject.id * 7 + subject.seen * 3 + n) % spec.veto_mod != 0

    evening = Profile(hourly=[0.1] * 8 + [1.0] * 10 + [0.4] * 6)
    names = [f"s{k}" for k in range(spec.states)]
    model = Model(names, names[0])
    for e, (src, dst, chance, vetoes, profiled, which) in enumerate(spec.edges):
        chosen = [sinks[k] for k in range(3) if which >> k & 1]
        if which & 8:
            chosen.append(sinks[1])  # the batch sink listed twice
        if which & 16:
            chosen.append(sinks[0])  # the per-event sink listed twice
        model.add_transition(
            f"t{e}",
            names[src],
            names[dst],
            chance,
            veto if vetoes else None,
            chosen,
            profile=evening if profiled else None,
        )
    return model


@st.composite
def specs(draw: st.DrawFn, fail: bool = False) -> Spec:
    """A random `Spec` (with `fail`, one callback or sink raising at a random call)."""
    n = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["callback", "sink", "batch"])) if fail else ""
    edges = []
    for src in range(n):
        budget = 100.0
        for _ in range(draw(st.integers(0, 3))):
            chance = min(draw(st.sampled_from(CHANCES)), budget)
            budget -= chance
            vetoes, sinks = draw(st.booleans()), draw(st.integers(0, 31))
            # A failing run mostly calls what fails, so that it does fail.
            if kind == "callback":
                vetoes = vetoes or draw(st.booleans())
            elif kind:
                sinks |= (1 if kind == "sink" else 2) * draw(st.integers(0, 1))
            edges.append(
                (src, draw(st.integers(0, n - 1)), chance, vetoes, draw(st.booleans()), sinks)
            )
    failing = None
    if fail:
        failing = (kind, draw(st.one_of(st.integers(1, 12), st.integers(1, 400))))
    return Spec(
        states=n,
        edges=tuple(edges),
        subjects=draw(st.integers(1, 150)),
        ticks=draw(st.sampled_from([1, 2, 63, 64, 65, 200, 700])),
        tick_ms=draw(st.sampled_from([1_000, 60_000, 3_600_000])),
        seed=draw(st.integers(0, 2**32 - 1)),
        veto_mod=draw(st.integers(2, 5)),
        small=draw(st.sampled_from([None, 0, 0, 10**9])),
        fail=failing,
        arrivals=draw(st.sampled_from([None, None, 0.7])),
    )


@contextmanager
def _path(compiled: bool, small: int | None) -> Iterator[None]:
    """Run on the compiled kernel or the Python loops, with `small` as SMALL_TICK."""
    before, small_before = kernel.NATIVE, scheduler.SMALL_TICK
    kernel.NATIVE = COMPILED if compiled else None
    if small is not None:
        scheduler.SMALL_TICK = small
    try:
        yield
    finally:
        kernel.NATIVE, scheduler.SMALL_TICK = before, small_before


def _factory() -> Callable[[], Card]:
    ids = itertools.count()
    return lambda: Card(next(ids))


def _simulation(spec: Spec, log: list[Any], **extra: Any) -> Simulation:
    return Simulation(
        _model(spec, log),
        spec.subjects,
        subject_factory=_factory(),
        ticks=spec.ticks,
        tick_ms=spec.tick_ms,
        timestamp_start=EPOCH,
        seed=spec.seed,
        arrivals=spec.arrivals,
        **extra,
    )


def _outcome(spec: Spec, compiled: bool) -> dict[str, Any]:
    """Everything a run of `spec` shows, on one path."""
    log: list[Any] = []
    with _path(compiled, spec.small):
        sim = _simulation(spec, log)
        try:
            result = sim.run()
        except Boom as exc:
            walker = sim._walker
            assert walker is not None
            return {
                "log": log,
                "error": str(exc),
                "states": sim.subject_states(),
                "vetoes": list(walker.recorder.vetoes),
                "counts": walker.recorder.table(spec.ticks).tolist(),
                "calendar": sorted(
                    (t, sorted(i for c in chunks for i in c))
                    for t, chunks in walker.calendar.tick_map.items()
                ),
                "pending": sorted(
                    (b, sorted(zip(s, t, strict=True)))
                    for b, (s, t) in walker.calendar.pending_map.items()
                ),
                "subjects": [dataclasses.astuple(s) for s in walker.population.subjects],
            }
    return {
        "log": log,
        "counts": result.events_per_tick.tolist(),
        "occupancy": result.occupancy.tolist(),
        "vetoes": result.vetoes.tolist(),
        "attempts": result.attempts.tolist(),
        "states": sim.subject_states(),
        "subjects": [dataclasses.astuple(s) for s in sim._walker.population.subjects],  # type: ignore[union-attr]
    }


@needs_kernel
@settings(max_examples=150, deadline=None)
@given(specs())
def test_both_paths_give_the_same_run(spec: Spec) -> None:
    """Random models run identically on the C kernel and the Python loops: every sink's
    events and batch calls, counts, occupancy, vetoes, attempts, final states, subjects."""
    assert _outcome(spec, True) == _outcome(spec, False)


@needs_kernel
@settings(max_examples=150, deadline=None)
@given(specs(fail=True))
def test_a_failure_leaves_both_paths_alike(spec: Spec) -> None:
    """A callback, per-event sink or batch sink raising at a random call: both paths
    deliver the same events (the batch sinks get the tick's events before the failure),
    count the same vetoes, leave the same states and subjects, and raise the same error."""
    assert _outcome(spec, True) == _outcome(spec, False)


def _resumed(spec: Spec, stop_at: int, where: Path, compiled: bool) -> tuple[bytes, list[Any]]:
    """Stop `spec` at tick `stop_at`, checkpoint it, resume it to the end: the checkpoint's
    bytes and everything the sinks got, on one path."""
    log: list[Any] = []
    with _path(compiled, spec.small):
        sim: Simulation

        def stop(t: int) -> None:
            if t >= stop_at:
                sim.stop()

        sim = _simulation(spec, log, progress=stop)
        sim.run()
        path = where / f"{'c' if compiled else 'py'}.ckpt"
        sim.checkpoint(path)
        # Subjects come back as dicts of their fields; the callbacks then keep counting.
        Simulation.resume(path, _model(spec, log)).run()
    return path.read_bytes(), log


@needs_kernel
@settings(max_examples=40, deadline=None)
@given(specs().filter(lambda s: s.ticks > 2 and s.arrivals is None), st.integers(0, 10**6))
def test_checkpoints_and_resumes_agree(tmp_path_factory: Any, spec: Spec, stop: int) -> None:
    """A run stopped at a random tick writes the same checkpoint, byte for byte, on both
    paths, and resuming it delivers the same events."""
    where = tmp_path_factory.mktemp("ckpt")
    stop_at = stop % (spec.ticks - 1)
    c_bytes, c_log = _resumed(spec, stop_at, where, True)
    py_bytes, py_log = _resumed(spec, stop_at, where, False)
    assert c_log == py_log
    assert c_bytes == py_bytes


def _tick_args(waits: list[float], factor: float, horizon: int) -> list[Any]:
    """Arguments of `_kernel.tick` at tick 0 (block 0 open) for subjects 0.. with `waits`,
    all in one state with no way out and the wait factor `factor`."""
    n = len(waits)
    return [
        list(range(n)),
        waits,
        waits,
        [([], 0, 0, factor)],
        [],
        [],
        [],
        [],
        [],
        array("i", [0] * n),
        [Card(k) for k in range(n)],
        EPOCH,
        1,
        horizon,
        64,
        6,
        {},
        {},
        [],
        False,
    ]


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(0, 1, exclude_max=True),
            st.sampled_from([0.0, 0.5, 0.75, 1 - 2**-53, 1 - math.exp(-4.3)]),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([-1e300, -1e18, -1e15, -1e9, -1.4426950408889634, -0.1, 0.0]),
    st.sampled_from([1, 2, 3, 4, 64, 65, 1000, 2**40, 2**62]),
)
def test_waits_near_the_horizon_are_filed_as_python_files_them(
    waits: list[float], factor: float, horizon: int
) -> None:
    """Each subject is filed at ``1 + int(log1p(-w) * factor)`` (next tick for a factor of 0),
    in the open block's tick map or its block's pending list, or dropped from the horizon
    on: also for waits of 10**19 ticks and more, past a C integer (compared exactly)."""
    assert COMPILED is not None
    args = _tick_args(waits, factor, horizon)
    COMPILED.tick(*args)
    tick_map: dict[int, list[list[int]]] = {}
    pending_map: dict[int, tuple[list[int], list[int]]] = {}
    for i, w in enumerate(waits):
        due_at = 1 + (int(math.log1p(-w) * factor) if factor else 0)
        if due_at >= horizon:
            continue
        if due_at < 64:
            tick_map.setdefault(due_at, [[]])[0].append(i)
        else:
            subjects, ticks = pending_map.setdefault(due_at >> 6, ([], []))
            subjects.append(i)
            ticks.append(due_at)
    assert args[16] == tick_map
    assert args[17] == pending_map
    assert sorted(args[18]) == sorted(pending_map)


def test_ci_has_the_compiled_kernel() -> None:
    """On CI (the ``CI`` variable set) the compiled kernel must be built and in use, so a
    broken build can never fall back to the Python loops unnoticed."""
    if not os.environ.get("CI"):
        pytest.skip("only on CI")
    assert COMPILED is not None, "dogesim.engine._kernel is not built"
    assert kernel.native() is COMPILED or os.environ.get("DOGESIM_KERNEL") == "python"


def test_the_environment_can_force_the_python_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    """``DOGESIM_KERNEL=python`` makes a fresh import of the switch pick the Python loops."""
    import importlib

    before = kernel.NATIVE
    try:
        monkeypatch.setenv("DOGESIM_KERNEL", "python")
        assert importlib.reload(kernel).native() is None
        monkeypatch.setenv("DOGESIM_KERNEL", "")
        assert importlib.reload(kernel).native() is COMPILED
    finally:
        kernel.NATIVE = before
