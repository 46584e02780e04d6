"""Throughput caps (`dogesim.sinks.pacing`): leave times by count on an injected clock, the
token-bucket bound over every window, batches, stats, delegation and a capped run."""

from __future__ import annotations

import random
from typing import Any

import pytest

from dogesim import MemorySink, Model, Simulation
from dogesim.errors import SinkConfigError
from dogesim.sinks.base import CountingSink, ledger_of
from dogesim.sinks.conformance import STEP, T0
from dogesim.sinks.pacing import PacedSink, RateCap, paced


class FakeClock:
    """A monotonic clock that moves only when the code under test sleeps (or a test says)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Recorder(MemorySink):
    """A MemorySink noting the clock at each event it receives."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.times: list[float] = []

    def collect(self, timestamp: int, subject: Any, transition: Any) -> None:
        self.times.append(self.clock())
        super().collect(timestamp, subject, transition)


def capped(rate: float, burst: int, **kw: Any) -> tuple[PacedSink, Recorder, FakeClock]:
    clock = FakeClock()
    inner = Recorder(clock)
    sink = PacedSink(inner, RateCap(rate, burst), clock=clock, sleep=clock.sleep, **kw)
    return sink, inner, clock


def test_a_burst_leaves_at_once_then_events_are_spaced_by_the_rate() -> None:
    """Cap 10/s, burst 5, 25 events handed at t=0: 5 leave at 0, event k at (k-4)/10 s."""
    sink, inner, _clock = capped(10, 5)
    for n in range(25):
        sink.collect(T0, n, STEP)
    expected = [max(0.0, (k - 4) / 10) for k in range(25)]
    assert inner.times == pytest.approx(expected, abs=1e-9)
    assert (sink.stats.events, sink.stats.delayed) == (25, 20)
    assert sink.stats.waited_s == pytest.approx(2.0)
    assert sink.stats.max_wait_s == pytest.approx(0.1)
    assert [e.subject for e in inner.events] == list(range(25))


def test_a_quiet_spell_refills_the_bucket() -> None:
    """After ten idle seconds a full burst leaves at once again, then the spacing resumes."""
    sink, inner, clock = capped(4, 3)
    for n in range(6):
        sink.collect(T0, n, STEP)
    clock.now += 10.0
    start = clock.now
    for n in range(6):
        sink.collect(T0, n, STEP)
    later = [t - start for t in inner.times[6:]]
    assert later == pytest.approx([0, 0, 0, 0.25, 0.5, 0.75], abs=1e-9)


@pytest.mark.parametrize(("rate", "burst"), [(5.0, 1), (20.0, 4), (250.0, 30)])
def test_no_window_holds_more_than_burst_plus_rate_times_its_length(
    rate: float, burst: int
) -> None:
    """For random hand-over times, every window [t, t+w] holds at most burst + w*rate events."""
    sink, inner, clock = capped(rate, burst, min_sleep=0.0)
    rng = random.Random(7)
    for n in range(400):
        if rng.random() < 0.2:
            clock.now += rng.expovariate(rate / 3)  # idle spells of varying length
        sink.collect(T0, n, STEP)
    times = inner.times
    assert len(times) == 400
    for w in (0.0, 0.5 / rate, 3.0 / rate, 1.0, 7.5):
        for i, start in enumerate(times):
            inside = sum(1 for t in times[i:] if t <= start + w + 1e-12)
            assert inside <= burst + w * rate + 1e-9, (w, start, inside)


def test_short_waits_are_carried_not_slept_and_the_rate_still_holds() -> None:
    """10000/s for 1000 events: about a hundred 1 ms sleeps, ending near 0.1 s, never faster."""
    sink, _inner, clock = capped(10_000, 1)
    for n in range(1000):
        sink.collect(T0, n, STEP)
    assert len(clock.sleeps) <= 100
    assert 0.0989 <= clock.now <= 0.0999 + 1e-9
    assert min(clock.sleeps) >= 0.001 - 1e-12


def test_collect_many_keeps_order_and_the_cap() -> None:
    """A tick's batch goes out in runs the cap allows: the same events, times and order."""
    one, one_inner, _ = capped(10, 3)
    many, many_inner, _ = capped(10, 3)
    for tick in range(4):
        subjects = list(range(tick * 5, tick * 5 + 5))
        for n in subjects:
            one.collect(T0 + tick, n, STEP)
        many.collect_many(T0 + tick, subjects, [STEP] * 5)
    assert many_inner.events == one_inner.events
    assert many_inner.times == pytest.approx(one_inner.times, abs=1e-9)


def test_batches_reach_an_inner_collect_many_in_runs() -> None:
    """An inner sink with collect_many gets the burst in one call, then one event per call."""
    calls: list[int] = []

    class Batching(CountingSink):
        def collect_many(self, ts: int, subjects: Any, transitions: Any) -> None:
            calls.append(len(subjects))
            for s, t in zip(subjects, transitions, strict=True):
                self.collect(ts, s, t)

    clock = FakeClock()
    inner = Batching()
    sink = PacedSink(inner, max_rate=100, burst=4, clock=clock, sleep=clock.sleep)
    sink.collect_many(T0, list(range(7)), [STEP] * 7)
    assert calls == [4, 1, 1, 1]
    sink.close()
    assert inner.ledger.acknowledged == 7


def test_the_wrapper_shows_the_inner_ledger_and_closes_it_once() -> None:
    """ledger_of sees the inner sink's ledger; close() closes the inner sink; a new run after
    close starts fresh stats."""
    clock = FakeClock()
    inner = MemorySink()
    sink = PacedSink(inner, max_rate=1, clock=clock, sleep=clock.sleep)
    sink.collect(T0, 1, STEP)
    sink.collect(T0, 2, STEP)
    sink.close()
    assert ledger_of(sink) is inner.ledger
    assert (inner.ledger.collected, inner.ledger.acknowledged) == (2, 2)
    assert inner.closed_count == 1
    assert sink.stats.delayed == 1
    sink.collect(T0, 3, STEP)
    assert (sink.stats.events, sink.stats.delayed) == (1, 0)


def test_a_capped_run_delivers_the_same_stream_in_the_capped_time() -> None:
    """A seeded run through a cap delivers the uncapped run's events, taking (n - burst)/rate
    seconds on the sink's clock."""

    def run(sink: Any) -> None:
        model = Model(["off", "on"], "off")
        model.add_transition("login", "off", "on", 40, event_sinks=[sink])
        model.add_transition("logout", "on", "off", 50, event_sinks=[sink])
        Simulation(model, 20, ticks=30, tick_ms=1000, seed=11).run()

    plain = MemorySink()
    run(plain)
    clock = FakeClock()
    inner = MemorySink()
    run(PacedSink(inner, max_rate=50, burst=10, clock=clock, sleep=clock.sleep, min_sleep=0.0))
    n = len(plain.events)
    assert n > 100
    assert inner.events == plain.events
    assert clock.now == pytest.approx((n - 10) / 50)


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [
        (0, 1, "max_rate must be a finite number > 0"),
        (float("inf"), 1, "max_rate must be a finite number > 0"),
        ("10", 1, "max_rate must be a number"),
        (10, 0, "burst must be an integer >= 1"),
        (10, 2.5, "burst must be an integer >= 1"),
    ],
)
def test_bad_caps_are_refused(rate: Any, burst: Any, message: str) -> None:
    """A cap that is not a positive finite rate with a whole burst >= 1 is a SinkConfigError."""
    with pytest.raises(SinkConfigError, match=message):
        RateCap(rate, burst)


def test_paced_without_a_rate_is_the_sink_itself() -> None:
    """paced(sink, None) returns the sink; a burst without a rate is refused."""
    sink = MemorySink()
    assert paced(sink, None) is sink
    assert isinstance(paced(sink, 5.0, 2), PacedSink)
    with pytest.raises(SinkConfigError, match="burst needs max_rate"):
        paced(sink, None, 3)


# -- model files -----------------------------------------------------------------------------

MODEL = """\
name: capped
seed: 5
states: [a, b]
initial_state: a
tick: 1s
ticks: 20
subjects: {{count: 30}}
sinks:
  mem: {{type: memory{extra}}}
default_sinks: [mem]
transitions:
  - {{trigger: go, from: a, to: b, probability: 30}}
  - {{trigger: back, from: b, to: a, probability: 50}}
"""


def test_model_file_max_rate_and_burst_cap_the_sink() -> None:
    """``max_rate``/``burst`` on a sink build it behind a PacedSink with that cap; the run
    delivers the uncapped run's events."""
    from dogesim.modelfile import load_model_text

    spec = load_model_text(MODEL.format(extra=", max_rate: 1000000, burst: 20"))
    sink = spec.sinks["mem"].build()
    assert isinstance(sink, PacedSink)
    assert (sink.cap.max_rate, sink.cap.burst) == (1_000_000, 20)
    assert spec.sinks["mem"].describe() == "memory, at most 1,000,000 events/s (bursts of 20)"
    plain = load_model_text(MODEL.format(extra=""))
    assert not isinstance(plain.sinks["mem"].build(), PacedSink)
    capped_run, plain_run = spec.simulation(), plain.simulation()
    capped_run.run()
    plain_run.run()
    assert capped_run.result.events == plain_run.result.events > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (", max_rate: 0", r"<model>:9: sinks\.mem\.max_rate: max_rate must be a finite number > 0"),
        (", max_rate: 5, burst: 0", r"sinks\.mem\.burst: 0 is too small; it must be at least 1"),
        (", burst: 3", r"sinks\.mem\.burst: burst needs max_rate"),
        (", max_rate: fast", r"sinks\.mem\.max_rate"),
    ],
)
def test_model_file_bad_caps_name_the_line(extra: str, message: str) -> None:
    """A bad cap in a model file is a ModelError at the sink's key."""
    from dogesim.errors import ModelError
    from dogesim.modelfile import load_model_text

    with pytest.raises(ModelError, match=message):
        load_model_text(MODEL.format(extra=extra))
