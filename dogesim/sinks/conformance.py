"""Conformance tests every sink runs: the same contract for built-in and third-party sinks.

- `SinkHarness`: how the suite drives one sink type: make a sink writing into a backend the
  harness owns, and read back what that backend holds (file lines, ``count(*)``, a list).
- `SinkConformance`: a pytest test class. Subclass it and give it a ``sink_under_test``
  fixture returning a `SinkHarness`; every test then runs for your sink.
- `record`, `feed`, `reused_dict_mapper`, `failing_mapper`: the events and mappers the suite
  uses, for writing more tests of the same shape.

A plug-in author writes (pytest must be installed; this module imports it)::

    import pytest
    from dogesim.sinks.conformance import SinkConformance, SinkHarness

    class TestMySink(SinkConformance):
        @pytest.fixture
        def sink_under_test(self, tmp_path):
            return SinkHarness("mine", make=..., stored=..., stored_values=...)

What is pinned: the ledger equals what the backend holds; ``close()`` is idempotent and a
second call keeps the first failure visible; a sink used again after ``close()`` reopens and
delivers everything, its new ledger counting that run (or, for a harness with
``reopens=False``, refuses the event with a `SinkError` and stores nothing); a mapper's error
is a `SinkError` with counts; a mapper that reuses one dict still stores every event's own
values; text UTF-8 cannot encode is never acknowledged; a full disk (when the harness offers
one) is counted exactly, never acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from dogesim.errors import SinkError
from dogesim.model import Transition
from dogesim.sinks.base import DeliveryLedger, ledger_of

__all__ = [
    "STEP",
    "T0",
    "RecordMapper",
    "SinkConformance",
    "SinkHarness",
    "failing_mapper",
    "feed",
    "record",
    "reused_dict_mapper",
]

#: The transition every conformance event takes.
STEP = Transition("step", "a", "b", 50)
#: The timestamp of event 0; event ``n`` is at ``T0 + 1000 * n``.
T0 = 1_700_000_000_000

#: Maps an event to the record the backend stores: keys ``timestamp``, ``trigger``, ``n``.
RecordMapper = Callable[[int, Any, Transition], Mapping[str, Any]]


def record(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
    """The suite's record: the timestamp, the trigger and ``n`` (the subject is the index)."""
    return {"timestamp": timestamp, "trigger": transition.trigger, "n": subject}


def reused_dict_mapper() -> RecordMapper:
    """A mapper that fills and returns the same dict every time (a common optimisation)."""
    shared: dict[str, Any] = {}

    def mapper(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
        shared.update(record(timestamp, subject, transition))
        return shared

    return mapper


def failing_mapper(at: int, exc: Exception) -> RecordMapper:
    """A mapper that raises `exc` for event ``n == at`` and maps the others with `record`."""

    def mapper(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
        if subject == at:
            raise exc
        return record(timestamp, subject, transition)

    return mapper


def feed(sink: Any, start: int, count: int) -> None:
    """Collect events ``n = start .. start+count-1`` (subject ``n``, at ``T0 + 1000 n``)."""
    for n in range(start, start + count):
        sink.collect(T0 + 1000 * n, n, STEP)


@dataclass
class SinkHarness:
    """How the conformance suite drives one sink type.

    Attributes:
        name: the sink type, for test ids and messages.
        make: a new sink writing into the harness's backend, its records mapped by the given
            `RecordMapper` (adapt it to the sink's own mapper signature).
        stored: how many records the backend holds now, read back through the backend.
        stored_values: the ``n`` of every stored record, in stored order, or None when the
            backend keeps no values (a counting sink).
        full_disk: a new sink whose backend is a full disk (e.g. ``/dev/full``), or None
            when the sink writes no files.
        maps: False for a sink that takes no mapper (the mapper tests are skipped).
        reopens: False for a sink that refuses events after ``close()`` (with a `SinkError`)
            instead of reopening.
    """

    name: str
    make: Callable[[RecordMapper], Any]
    stored: Callable[[], int]
    stored_values: Callable[[], list[int]] | None = None
    full_disk: Callable[[RecordMapper], Any] | None = None
    maps: bool = True
    reopens: bool = True


def needs_mapper(harness: SinkHarness) -> None:
    """Skip the calling test when the sink takes no mapper."""
    if not harness.maps:
        pytest.skip(f"{harness.name} takes no mapper")


def close_quietly(sink: Any) -> SinkError | None:
    """Close `sink`; return the `SinkError` it raised, or None."""
    try:
        sink.close()
    except SinkError as exc:
        return exc
    return None


def ledger(sink: Any) -> DeliveryLedger:
    """The sink's ledger; every conforming sink keeps one."""
    found = ledger_of(sink)
    assert found is not None, f"{sink!r} keeps no DeliveryLedger in .ledger"
    return found


class SinkConformance:
    """The contract every sink keeps; subclass it with a ``sink_under_test`` fixture."""

    def test_ledger_equals_backend(self, sink_under_test: SinkHarness) -> None:
        """After close, collected = acknowledged = records the backend holds."""
        sink = sink_under_test.make(record)
        feed(sink, 0, 25)
        sink.close()
        book = ledger(sink)
        assert (book.collected, book.acknowledged, book.failed) == (25, 25, 0)
        assert sink_under_test.stored() == 25
        if sink_under_test.stored_values is not None:
            assert sink_under_test.stored_values() == list(range(25))

    def test_close_twice_is_idempotent(self, sink_under_test: SinkHarness) -> None:
        """A second close() neither raises, writes again, nor changes the ledger."""
        sink = sink_under_test.make(record)
        feed(sink, 0, 5)
        sink.close()
        before = DeliveryLedger(**vars(ledger(sink)))
        sink.close()
        assert ledger(sink) == before
        assert sink_under_test.stored() == 5

    def test_mapper_error_is_a_sink_error_with_counts(self, sink_under_test: SinkHarness) -> None:
        """A mapper raising on event 3 gives a SinkError with the counts; 0..2 are kept."""
        needs_mapper(sink_under_test)
        sink = sink_under_test.make(failing_mapper(3, KeyError("balance")))
        feed(sink, 0, 3)
        with pytest.raises(SinkError, match="balance") as info:
            feed(sink, 3, 1)
        assert info.value.ledgers and info.value.ledgers[0] is ledger(sink)
        book = ledger(sink)
        assert (book.collected, book.failed) == (4, 1)
        error = close_quietly(sink)
        assert error is not None, "close() must report the event the mapper lost"
        assert (book.collected, book.acknowledged, book.failed) == (4, 3, 1)
        assert sink_under_test.stored() == 3

    def test_second_close_keeps_the_first_failure(self, sink_under_test: SinkHarness) -> None:
        """close() after a failed close() raises again; the ledger still shows the loss."""
        needs_mapper(sink_under_test)
        sink = sink_under_test.make(failing_mapper(1, ValueError("bad row")))
        feed(sink, 0, 1)
        with pytest.raises(SinkError):
            feed(sink, 1, 1)
        first = close_quietly(sink)
        second = close_quietly(sink)
        assert first is not None and second is not None
        assert str(second) == str(first)
        assert not ledger(sink).ok and ledger(sink).lost == 1

    def test_reused_after_close_delivers_everything(self, sink_under_test: SinkHarness) -> None:
        """Events after close() reopen the sink: all are stored, a new ledger counts the run."""
        sink = sink_under_test.make(record)
        feed(sink, 0, 6)
        sink.close()
        first = ledger(sink)
        if not sink_under_test.reopens:
            with pytest.raises(SinkError, match="after close"):
                feed(sink, 6, 1)
            assert sink_under_test.stored() == 6
            return
        feed(sink, 6, 6)
        sink.close()
        second = ledger(sink)
        assert (first.collected, first.acknowledged) == (6, 6)
        assert (second.collected, second.acknowledged, second.failed) == (6, 6, 0)
        assert sink_under_test.stored() == 12
        if sink_under_test.stored_values is not None:
            assert sink_under_test.stored_values() == list(range(12))

    def test_reopen_without_events_gives_an_empty_ledger(
        self, sink_under_test: SinkHarness
    ) -> None:
        """reopen() on a closed sink starts a run of its own, even one that gets no events."""
        if not sink_under_test.reopens:
            pytest.skip(f"{sink_under_test.name} does not reopen")
        sink = sink_under_test.make(record)
        feed(sink, 0, 3)
        sink.close()
        assert sink.closed
        sink.reopen()
        assert not sink.closed
        sink.close()
        book = ledger(sink)
        assert (book.collected, book.acknowledged, book.failed) == (0, 0, 0)
        assert sink_under_test.stored() == 3

    def test_mapper_reusing_one_dict(self, sink_under_test: SinkHarness) -> None:
        """A mapper returning the same dict each time still stores each event's values."""
        needs_mapper(sink_under_test)
        sink = sink_under_test.make(reused_dict_mapper())
        feed(sink, 0, 510)
        sink.close()
        assert sink_under_test.stored() == ledger(sink).acknowledged == 510
        if sink_under_test.stored_values is not None:
            assert sink_under_test.stored_values() == list(range(510))

    def test_unencodable_text_is_never_acknowledged(self, sink_under_test: SinkHarness) -> None:
        """A lone surrogate is stored or fails loudly; the ledger never claims more than held."""
        needs_mapper(sink_under_test)

        def mapper(timestamp: int, subject: Any, transition: Transition) -> dict[str, Any]:
            out = record(timestamp, subject, transition)
            if subject == 2:
                out["trigger"] = "bad \ud800 text"
            return out

        sink = sink_under_test.make(mapper)
        errors = 0
        for n in range(5):
            try:
                feed(sink, n, 1)
            except SinkError:
                errors += 1
        if close_quietly(sink) is not None:
            errors += 1
        book = ledger(sink)
        assert book.collected == 5
        assert book.acknowledged == sink_under_test.stored()
        assert book.acknowledged + book.failed == 5
        assert (book.failed > 0) == (errors > 0)

    def test_full_disk_is_counted_not_acknowledged(self, sink_under_test: SinkHarness) -> None:
        """On a full disk the sink fails loudly and acknowledges nothing it did not store."""
        if sink_under_test.full_disk is None:
            pytest.skip(f"{sink_under_test.name} writes no files")
        sink = sink_under_test.full_disk(record)
        errors: list[SinkError] = []
        try:
            feed(sink, 0, 50)
        except SinkError as exc:
            errors.append(exc)
        closing = close_quietly(sink)
        assert closing is not None, "close() on a full disk must raise SinkError"
        assert "No space left on device" in str(errors[0] if errors else closing)
        book = ledger(sink)
        assert book.collected > 0
        assert (book.acknowledged, book.failed) == (0, book.collected)
