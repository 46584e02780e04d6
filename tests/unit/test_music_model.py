"""The fine-tick music model: its shape, a short run at 1 s ticks, and the benchmark's peer.

The peer (benchmarks/heapq_peer.py) must simulate the same law as the engine, or the
fine-tick benchmark compares different work: totals are compared with a z-bound computed
from per-listener variances (listeners are i.i.d.; Z = 5, fixed seeds).
"""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

from dogesim import CountingSink, Model, Profile, Simulation, Transition
from dogesim.examples import music

Z = 5.0
HOUR_MS = 3_600_000
#: Monday 10:00 UTC: the session profile is near 1, far below its peak, so thinning matters.
MORNING = music.TIMESTAMP_START + 10 * HOUR_MS


def _peer() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "heapq_peer.py"
    spec = importlib.util.spec_from_file_location("benchmarks_heapq_peer", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


class PerListener:
    """Counts the events each listener sends."""

    def __init__(self, n: int) -> None:
        self.counts = np.zeros(n, dtype=np.int64)

    def collect(self, timestamp: int, subject: music.Listener, transition: Transition) -> None:
        self.counts[subject.user_id] += 1


def _listeners(n: int, seed: int) -> list[music.Listener]:
    random.seed(seed)
    factory = music.ListenerFactory()
    return [factory.create() for _ in range(n)]


def test_model_has_the_benchmark_shape() -> None:
    """46 states and 255 transitions, all reachable from offline; every page times out."""
    model = music.build_model([CountingSink()])
    assert (len(model.states), len(model.transitions)) == (46, 255)
    reached, frontier = {music.OFFLINE}, [music.OFFLINE]
    while frontier:
        for t in model.outgoing(frontier.pop()):
            if t.to_state not in reached:
                reached.add(t.to_state)
                frontier.append(t.to_state)
    assert reached == set(model.states)
    for state in model.states[1:]:
        timeouts = [t for t in model.outgoing(state) if t.trigger == "session_timeout"]
        assert [t.to_state for t in timeouts] == [music.OFFLINE], state
        assert timeouts[0].event_sinks == ()
    seen = [t for t in model.transitions if t.trigger != "session_timeout"]
    assert all(len(t.event_sinks) == 1 for t in seen)


def test_session_gap_is_a_per_second_chance() -> None:
    """At 1 s ticks a page times out with about 1/1800 per tick (the 30-minute gap)."""
    model = music.build_model().at_tick(music.TICK_MS)
    timeout = next(t for t in model.outgoing("free:home") if t.trigger == "session_timeout")
    # Rescaling a page's rates per transition or per state (its total, split in proportion)
    # differ by less than half the page's total rate per tick (< 3% here).
    assert timeout.probability == pytest.approx(100 / 1800, rel=0.03)
    assert max(model.leave_probability(s) for s in model.states) < 10.0


def test_one_hour_run_feeds_many_transitions_and_callbacks_keep_count() -> None:
    """100 listeners for an hour: events on dozens of transitions, vetoes, and the listeners'
    counters equal the events of the moves their callbacks allowed."""
    sink = CountingSink()
    listeners = _listeners(100, 3)
    sim = Simulation(
        music.build_model([sink]),
        listeners,
        ticks=3600,
        tick_ms=music.TICK_MS,
        timestamp_start=MORNING + 8 * HOUR_MS,
        seed=11,
    )
    result = sim.run()
    by_trigger = result.events_by_trigger()
    assert int((result.events_per_transition > 0).sum()) >= 60
    assert int(result.vetoes.sum()) > 0
    seen = zip(result.transitions, result.events_per_transition.tolist(), strict=True)
    assert sink.count == sum(n for t, n in seen if t.event_sinks)
    assert by_trigger["session_timeout"] > 0
    songs = sum(by_trigger.get(k, 0) for k in ("play", "next_song", "skip"))
    assert sum(x.songs_played for x in listeners) == songs > 0
    starts = sum(by_trigger.get(k, 0) for k in ("open_app", "resume_free", "resume_paid"))
    assert sum(x.sessions for x in listeners) == starts > 0
    assert sum(x.likes for x in listeners) == by_trigger.get("like", 0)
    assert sum(x.ads_heard for x in listeners) == by_trigger.get("ad_end", 0)


def _z(a: np.ndarray, b: np.ndarray) -> float:
    """The z-score of the difference of two totals of i.i.d. per-listener counts."""
    spread = math.sqrt(len(a) * a.var(ddof=1) + len(b) * b.var(ddof=1))
    return float(a.sum() - b.sum()) / spread


def test_heapq_peer_simulates_the_same_law_as_the_engine() -> None:
    """The benchmark's peer and the engine send as many events and start as many sessions
    (totals within Z standard deviations, from per-listener variances)."""
    peer = _peer()
    n, ticks = 4000, 3 * 3600
    counts: list[np.ndarray] = []
    sessions: list[np.ndarray] = []
    for engine in ("dogesim", "peer"):
        sink = PerListener(n)
        listeners = _listeners(n, 5)
        model = music.build_model([sink])
        common: dict[str, Any] = {
            "ticks": ticks,
            "tick_ms": music.TICK_MS,
            "timestamp_start": MORNING,
        }
        if engine == "dogesim":
            Simulation(model, listeners, seed=21, seed_globals=False, **common).run()
        else:
            peer.run_peer(model, listeners, seed=22, **common)
        counts.append(sink.counts)
        sessions.append(np.asarray([x.sessions for x in listeners], dtype=np.int64))
    assert counts[0].sum() > 30_000
    assert abs(_z(*counts)) < Z
    assert abs(_z(*sessions)) < Z


class Recorder:
    """Keeps every event as (timestamp, subject id, trigger)."""

    def __init__(self) -> None:
        self.events: list[tuple[int, int, str]] = []

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        self.events.append((timestamp, subject.id, transition.trigger))


def _veto_first_of_one(subject: Any, transition: Transition) -> bool:
    """Subject 1's first try is vetoed, every other goes ahead."""
    subject.tries += 1
    return not (subject.id == 1 and subject.tries == 1)


def test_peer_and_engine_give_the_contracts_stream_on_a_certain_model() -> None:
    """With chances of 100% the stream is fixed: subjects in creation order within a tick,
    a profile at 0 thins every attempt of its hour away, a veto keeps the subject in place."""
    peer = _peer()
    night = Profile(hourly=(0.0, *([1.0] * 23)))
    streams = []
    for engine in ("dogesim", "peer"):
        sink = Recorder()
        model = Model(("a", "b"), "a", name="certain")
        model.add_transition("go", "a", "b", 100, _veto_first_of_one, [sink], profile=night)
        model.add_transition("back", "b", "a", 100, None, [sink])
        subjects = [SimpleNamespace(id=i, tries=0) for i in range(3)]
        common: dict[str, Any] = {"ticks": 5, "tick_ms": HOUR_MS, "timestamp_start": 0}
        if engine == "dogesim":
            Simulation(model, subjects, seed=1, **common).run()
        else:
            peer.run_peer(model, subjects, seed=2, **common)
        streams.append(sink.events)
    h = HOUR_MS
    expected = [
        (h, 0, "go"), (h, 2, "go"),
        (2 * h, 0, "back"), (2 * h, 1, "go"), (2 * h, 2, "back"),
        (3 * h, 0, "go"), (3 * h, 1, "back"), (3 * h, 2, "go"),
        (4 * h, 0, "back"), (4 * h, 1, "go"), (4 * h, 2, "back"),
    ]  # fmt: skip
    assert streams == [expected, expected]
