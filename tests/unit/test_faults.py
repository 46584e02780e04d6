"""Deliberate faults: rates, late ordering, malformed records and exact ledger reconciliation."""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dogesim.engine import Simulation
from dogesim.errors import ModelError, SinkConfigError, SinkError
from dogesim.faults import Delay, FaultLedger, Faults, FaultySink, malform, observed_rates
from dogesim.model import Model, Transition
from dogesim.sinks.base import LedgeredSink
from dogesim.sinks.conformance import RecordMapper, SinkConformance, SinkHarness, feed
from dogesim.sinks.conformance import record as conformance_record
from dogesim.sinks.files import JsonLinesSink
from dogesim.sinks.memory import MemorySink

SIGMAS = 5.0  # a false alarm has probability < 1e-6 per bound
MOVE = Transition("move", "a", "b", 10)


def _within(count: int, n: int, p: float) -> bool:
    """`count` is within SIGMAS binomial standard deviations of n * p."""
    return abs(count - n * p) <= SIGMAS * math.sqrt(n * p * (1 - p)) + 1


def _record(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
    return {"at": timestamp, "id": subject.id, "name": subject.name, "trigger": transition.trigger}


def _feed(sink: Any, n: int, step: int = 100) -> list[int]:
    """Collect n events, one per `step` ms, subject ids 0..n-1; how many had arrived after each."""
    memory = sink.inner
    seen = []
    for i in range(n):
        sink.collect(i * step, SimpleNamespace(id=i, name=f"n{i}"), MOVE)
        seen.append(len(memory.events))
    return seen


def _faulty(faults: Faults, seed: int = 1, mapper: Any = _record) -> FaultySink:
    return FaultySink.around(lambda m: MemorySink(m), mapper, faults, seed=seed, name="orders")


@pytest.mark.parametrize(
    "faults",
    [
        Faults(duplicate=0.01, drop=0.005, late=0.02, malformed=0.01, delay=300),
        # High rates give the bounds power: a 10% error in any rate is outside them.
        Faults(duplicate=0.2, drop=0.3, late=0.25, malformed=0.2, delay=300),
    ],
)
def test_fault_counts_follow_the_configured_rates(faults: Faults) -> None:
    """Each injected count is binomial with its rate (drops exclude the other faults)."""
    n = 20_000
    sink = _faulty(faults, seed=12)
    _feed(sink, n)
    sink.close()
    book = sink.ledger
    kept = 1 - faults.drop
    assert _within(book.injected_drops, n, faults.drop)
    assert _within(book.injected_duplicates, n, faults.duplicate * kept)
    assert _within(book.injected_late, n, faults.late * kept)
    assert _within(book.injected_malformed, n, faults.malformed * kept)
    rates = observed_rates(book)
    assert rates["drop"] == book.injected_drops / n


def test_the_ledger_reconciles_exactly_with_the_memory_sink_behind() -> None:
    """delivered = generated - injected_drops + injected_duplicates, and the ledger is ok."""
    sink = _faulty(Faults(duplicate=0.1, drop=0.1, late=0.2, delay={"uniform": [0, 2000]}))
    _feed(sink, 3000)
    sink.close()
    book, memory = sink.ledger, sink.inner
    assert book.collected == 3000
    assert len(memory.events) == 3000 - book.injected_drops + book.injected_duplicates
    assert memory.ledger.acknowledged == len(memory.events) == book.delivered
    assert book.ok and book.acknowledged == book.collected
    ids = [e["id"] for e in memory.events]
    copies = sum(1 for count in _counts(ids).values() if count == 2)
    assert copies == book.injected_duplicates
    assert len(set(ids)) == 3000 - book.injected_drops
    assert "injected: duplicates" in book.summary()


def _counts(items: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _reference_order(late: set[int], n: int, step: int, delay: int) -> list[int]:
    """The delivery order the contract fixes, given which events are late (fixed delay)."""
    held: list[tuple[int, int]] = []
    order: list[int] = []
    for i in range(n):
        now = i * step
        due = sorted(h for h in held if h[0] <= now)
        held = [h for h in held if h[0] > now]
        order += [index for _, index in due]
        if i in late:
            held.append((now + delay, i))
        else:
            order.append(i)
    return order + [index for _, index in sorted(held)]


def test_late_events_are_released_in_order_of_their_new_time() -> None:
    """Late events arrive with the first event reaching their new time, or at close."""
    n, step, delay = 400, 100, 300  # new times fall on later events' timestamps too
    sink = _faulty(Faults(late=0.3, delay=delay), seed=5)
    seen = _feed(sink, n, step)
    assert sink.pending_late > 0
    sink.close()
    assert sink.pending_late == 0
    order = [e["id"] for e in sink.inner.events]
    # An event not stored by the end of its own collect call was held back.
    late = {i for i in range(n) if i not in set(order[: seen[i]])}
    assert len(late) == sink.ledger.injected_late
    assert order == _reference_order(late, n, step, delay)
    assert [e["at"] for e in sink.inner.events] == [i * step for i in order]
    assert order != sorted(order)  # really out of order


def test_the_same_seed_injects_the_same_faults() -> None:
    """Faults are reproducible from the seed (and the sink name); another seed differs."""
    faults = Faults(
        duplicate=0.05, drop=0.05, late=0.05, malformed=0.05, delay={"exponential": 300}
    )

    def run(seed: int, name: str = "orders") -> list[Any]:
        sink = FaultySink.around(MemorySink, _record, faults, seed=seed, name=name)
        _feed(sink, 2000)
        sink.close()
        return sink.inner.events

    first = run(3)
    assert run(3) == first
    assert run(4) != first
    assert run(3, "payments") != first


def test_malformed_records_have_one_field_of_the_wrong_type_or_truncated_json() -> None:
    """Exactly the injected number of records is malformed, each in one of the two ways."""
    sink = _faulty(Faults(malformed=0.05), seed=8, mapper=lambda *e: json.dumps(_record(*e)))
    _feed(sink, 4000)
    sink.close()
    good_types = {"at": int, "id": int, "name": str, "trigger": str}
    truncated = wrong = 0
    for text in sink.inner.events:
        try:
            record = json.loads(text)
        except ValueError:
            truncated += 1
            continue
        bad = [k for k, t in good_types.items() if type(record[k]) is not t]
        assert len(bad) <= 1
        wrong += len(bad)
    assert truncated + wrong == sink.ledger.injected_malformed > 0
    assert truncated > 0 and wrong > 0


def test_malform_of_mappings_and_text() -> None:
    """wrong_type changes the chosen field's type; truncated is a strict prefix of the JSON."""
    record = {"a": 1, "b": "x", "c": True, "d": None}
    assert malform(record, "wrong_type", 0.0) == {**record, "a": "1"}
    assert malform(record, "wrong_type", 0.3) == {**record, "b": 1}
    assert malform(record, "wrong_type", 0.6) == {**record, "c": "true"}
    assert malform(record, "wrong_type", 0.99) == {**record, "d": 0}
    text = json.dumps(record, separators=(",", ":"))
    for u in (0.0, 0.5, 0.999):
        cut = malform(record, "truncated", u)
        assert text.startswith(cut) and 0 < len(cut) < len(text)
    assert malform("abc", "wrong_type", 0.5) == 3
    assert malform("x", "truncated", 0.5) == ""


def test_malformed_faults_need_a_wrapped_mapper() -> None:
    """A malformed rate without a wrapped mapper is refused, not silently ignored."""
    sink = FaultySink(MemorySink(_record), Faults(malformed=0.5))
    with pytest.raises(SinkConfigError, match="needs the inner sink's mapper wrapped"):
        sink.collect(0, SimpleNamespace(id=1, name="x"), MOVE)


class _Forgetful(LedgeredSink):
    """A sink that acknowledges only every other event (a lossy backend)."""

    def __init__(self) -> None:
        super().__init__("forgetful")
        self.got = 0

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        self.got += 1

    def _close(self) -> None:
        self.ledger.collected = self.ledger.acknowledged = self.got // 2


class _Plain:
    """A doge-datagen style sink without a ledger."""

    def __init__(self) -> None:
        self.events: list[int] = []

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        self.events.append(timestamp)

    def close(self) -> None:
        pass


def test_loss_behind_the_wrapper_fails_close_with_both_counts() -> None:
    """An inner sink that received fewer events than expected fails close() with SinkError."""
    sink = FaultySink(_Forgetful(), Faults(duplicate=0.1), seed=2)
    _feed_plain(sink, 100)
    with pytest.raises(SinkError, match=r"received .* events, expected"):
        sink.close()
    assert not sink.ledger.ok


def _feed_plain(sink: FaultySink, n: int) -> None:
    for i in range(n):
        sink.collect(i, SimpleNamespace(id=i, name="x"), MOVE)


def test_a_sink_without_a_ledger_is_counted_by_the_wrapper() -> None:
    """Around a plain sink, deliveries are counted by the wrapper and reconcile."""
    plain = _Plain()
    sink = FaultySink(plain, Faults(duplicate=0.2, drop=0.2), seed=6)
    _feed_plain(sink, 500)
    sink.close()
    book = sink.ledger
    assert (
        len(plain.events) == book.delivered == 500 - book.injected_drops + book.injected_duplicates
    )
    assert book.ok


def test_an_inner_failure_at_close_is_reported_with_the_fault_ledger() -> None:
    """A SinkError of the inner sink's close carries the wrapper's ledger too."""

    class Broken(MemorySink):
        def _close(self) -> None:
            raise SinkError("backend gone")

    sink = FaultySink(Broken(), Faults(drop=0.5), seed=1)
    _feed_plain(sink, 10)
    with pytest.raises(SinkError, match="the inner sink failed") as caught:
        sink.close()
    assert isinstance(caught.value.ledgers[0], FaultLedger)


def test_a_reused_wrapper_starts_a_new_ledger_and_the_same_faults() -> None:
    """After close(), the next run gets a fresh FaultLedger and the seed's fault stream again."""
    sink = _faulty(Faults(drop=0.3, duplicate=0.3), seed=4)
    _feed(sink, 200)
    sink.close()
    first = sink.ledger
    kept = len(sink.inner.events)
    _feed(sink, 200)
    sink.close()
    assert sink.ledger is not first and isinstance(sink.ledger, FaultLedger)
    assert sink.ledger.injected_drops == first.injected_drops
    assert len(sink.inner.events) == 2 * kept


def test_faults_in_a_real_run_reconcile_exactly() -> None:
    """Through the engine, the wrapper's counts match what the memory sink holds."""
    sink = _faulty(Faults(duplicate=0.05, drop=0.05, late=0.1, delay={"lognormal": [7, 1]}))
    model = Model(
        ["a", "b"],
        "a",
        [
            Transition("go", "a", "b", 40, event_sinks=[sink]),
            Transition("back", "b", "a", 40, event_sinks=[sink]),
        ],
    )
    factory = iter(SimpleNamespace(id=i, name=f"s{i}") for i in range(100))
    Simulation(
        model, 100, subject_factory=lambda: next(factory), ticks=100, tick_ms=1000, seed=1
    ).run()
    book = sink.ledger
    assert book.collected > 2000
    assert len(sink.inner.events) == book.collected - book.injected_drops + book.injected_duplicates
    assert book.injected_late > 0 and sink.pending_late == 0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Faults(drop=1.5), r"faults\.drop: rate 1\.5"),
        (lambda: Faults(duplicate=float("nan")), r"faults\.duplicate: nan"),
        (lambda: Faults(late=True), r"faults\.late: True"),
        (lambda: Faults(malformed_kinds=("garbled",)), "malformed_kinds"),
        (lambda: Delay.parse({"gamma": 3}), "delay law 'gamma'"),
        (lambda: Delay.parse({"uniform": [5, 1]}), "low 5.0 exceeds high 1.0"),
        (lambda: Delay.parse({"fixed": -1}), "must not be negative"),
        (lambda: Delay.parse({"uniform": 3}), r"give \[low, high\]"),
        (lambda: Delay.parse("soon"), "give one law"),
    ],
)
def test_bad_fault_settings_are_model_errors(build: Any, message: str) -> None:
    """Rates outside [0, 1], unknown laws and bad parameters are refused at build time."""
    with pytest.raises(ModelError, match=message):
        build()


def test_delay_laws_have_their_means() -> None:
    """Sampled delays have the law's mean (within 5 standard errors)."""
    rng = random.Random(3)
    n = 20_000
    cases = [
        (Delay.parse({"exponential": 800}), 800.0, 800.0),
        (Delay.parse({"uniform": [0, 1000]}), 500.0, 1000 / math.sqrt(12)),
        (Delay.parse({"lognormal": [6.0, 0.5]}), math.exp(6.125), None),
        (Delay.parse(250), 250.0, 0.0),
    ]
    for delay, mean, sd in cases:
        draws = [delay.sample(rng) for _ in range(n)]
        assert all(isinstance(d, int) and d >= 0 for d in draws)
        if sd is None:
            sd = math.sqrt((math.exp(0.25) - 1) * math.exp(12.25))
        assert abs(sum(draws) / n - mean) <= SIGMAS * sd / math.sqrt(n) + 0.5


def _faulty_harness(kind: str, tmp_path: Path) -> SinkHarness:
    """A FaultySink with no faults configured, around a memory or a JSON lines sink."""
    made: list[FaultySink] = []
    path = tmp_path / "out.jsonl"

    def make(mapper: RecordMapper) -> FaultySink:
        if kind == "memory":
            inner: Any = MemorySink(mapper)
        else:
            inner = JsonLinesSink(path, mapper, append=path.exists())
        made.append(FaultySink(inner, Faults(), seed=1))
        return made[-1]

    def values() -> list[int]:
        if kind == "memory":
            return [e["n"] for sink in made for e in sink.inner.events]
        if not path.exists():
            return []
        return [json.loads(line)["n"] for line in path.read_text().splitlines()]

    def full_disk(mapper: RecordMapper) -> FaultySink:
        return FaultySink(JsonLinesSink("/dev/full", mapper), Faults(), seed=1)

    return SinkHarness(
        f"faults+{kind}",
        make,
        lambda: len(values()),
        values,
        full_disk=full_disk if kind == "jsonl" and Path("/dev/full").exists() else None,
    )


class TestFaultySinkConformance(SinkConformance):
    """With no faults configured, the wrapper keeps the whole sink contract."""

    @pytest.fixture(params=["memory", "jsonl"])
    def sink_under_test(self, request: pytest.FixtureRequest, tmp_path: Path) -> SinkHarness:
        return _faulty_harness(request.param, tmp_path)

    def test_close_twice_is_idempotent(self, sink_under_test: SinkHarness) -> None:
        """A second close() changes nothing (the suite's copy of a ledger drops subclasses)."""
        sink = sink_under_test.make(conformance_record)
        feed(sink, 0, 5)
        sink.close()
        before = copy.copy(sink.ledger)
        sink.close()
        assert sink.ledger == before
        assert sink_under_test.stored() == 5


def test_a_failed_delivery_is_counted_once_and_uninjected_copies_are_not_counted() -> None:
    """When the first copy of a duplicate fails, the event is failed and no duplicate counted."""
    calls: list[int] = []

    def mapper(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
        calls.append(subject.id)
        if subject.id == 1:
            raise KeyError("balance")
        return _record(timestamp, subject, transition)

    sink = FaultySink.around(MemorySink, mapper, Faults(duplicate=1.0), seed=1, name="o")
    _feed_plain_named(sink, 0)
    with pytest.raises(SinkError, match="balance") as caught:
        _feed_plain_named(sink, 1)
    book = sink.ledger
    assert caught.value.ledgers[0] is book
    assert (book.collected, book.failed, book.injected_duplicates, book.delivered) == (2, 1, 1, 2)
    assert calls == [0, 1]  # the duplicate repeats the record: one mapper call per event
    with pytest.raises(SinkError):
        sink.close()
    assert (book.acknowledged, book.failed, book.lost) == (1, 1, 1)


def _feed_plain_named(sink: FaultySink, i: int) -> None:
    sink.collect(i, SimpleNamespace(id=i, name="x"), MOVE)


def test_reseed_restarts_the_fault_stream_of_a_seed_and_refuses_mid_run() -> None:
    """reseed(s) before a run gives the faults a sink built with seed s injects."""
    faults = Faults(duplicate=0.3, drop=0.2)
    built_late = _faulty(faults, seed=1)
    built_late.reseed(9)
    _feed(built_late, 200)
    reference = _faulty(faults, seed=9)
    _feed(reference, 200)
    assert built_late.inner.events == reference.inner.events
    with pytest.raises(SinkConfigError, match="reseed"):
        built_late.reseed(3)


def test_a_duplicate_is_the_same_record_even_when_the_mapper_counts() -> None:
    """A duplicate repeats the record the mapper made, not a second call of it (counters
    and Faker fields would differ between the copies)."""
    calls = iter(range(10**6))

    def counting(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
        return {"id": subject.id, "n": next(calls)}

    sink = _faulty(Faults(duplicate=0.5), seed=4, mapper=counting)
    _feed(sink, 100)
    sink.close()
    events = sink.inner.events
    assert len(events) == 100 + sink.ledger.injected_duplicates
    assert sink.ledger.injected_duplicates > 20
    numbers = [e["n"] for e in events]
    assert sorted(set(numbers)) == list(range(100))  # one mapper call per event
    repeats = sum(1 for a, b in itertools.pairwise(events) if a == b)
    assert repeats == sink.ledger.injected_duplicates
