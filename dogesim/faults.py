"""Deliberate faults: a sink wrapper that duplicates, delays, drops and malforms events.

- `Faults`: the configured rates (fractions in [0, 1]) and the late-delivery delay law.
- `Delay`: a delay law in milliseconds (``fixed``, ``uniform``, ``exponential``,
  ``lognormal``), drawn from a `random.Random`.
- `FaultLedger`: a `DeliveryLedger` that also counts ``injected_duplicates``,
  ``injected_drops``, ``injected_late`` and ``injected_malformed``.
- `FaultySink`: wraps any sink (``collect``/``close``, with or without a ledger) and injects
  the faults, reproducibly from a seed.
- `malform`: one malformed record (a field of the wrong type, or truncated JSON).
- `MALFORMED_KINDS`: the kinds of malformed records; `DELAY_LAWS`: the delay laws.
- `observed_rates`: the fraction of collected events per fault kind, from a ledger.

Per event the wrapper draws, in a fixed order, whether it is dropped, duplicated, delayed
and malformed (independent Bernoulli draws with the configured rates; a dropped event gets
none of the others). A duplicate is delivered twice in a row (through a wrapped mapper the
second copy is the first one's record, so counters and Faker fields match); a late event is
held back by a delay drawn from the law and released, in order of its new time (its
timestamp plus the delay), before the first later event whose timestamp reaches that time,
or at ``close()``.
It keeps its own timestamp, so it arrives out of order. A late event's subject is read
when it is delivered (the wrapper does not copy subjects).

Malformed records need the payload, which the inner sink's mapper makes: pass that mapper
through `FaultySink.wrap` (or build with `FaultySink.around`). The wrapper refuses a
malformed rate above 0 without a wrapped mapper.

The ledger reconciles exactly: the events the inner sink received (acknowledged, when it
keeps a ledger) = collected - injected_drops + injected_duplicates. ``close()`` raises
`SinkError` when they differ, like any lost event.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dogesim.errors import ModelError, SinkConfigError, SinkError, shown
from dogesim.relations import seeded_random
from dogesim.sinks.base import DeliveryLedger, LedgeredSink, ledger_of

if TYPE_CHECKING:
    import random

    from dogesim.model import Transition

__all__ = [
    "DELAY_LAWS",
    "MALFORMED_KINDS",
    "Delay",
    "FaultLedger",
    "Faults",
    "FaultySink",
    "malform",
    "observed_rates",
]

#: The kinds of malformed records.
MALFORMED_KINDS = ("wrong_type", "truncated")
#: The delay laws and their parameters.
DELAY_LAWS = {
    "fixed": "milliseconds",
    "uniform": "[low, high] milliseconds",
    "exponential": "mean milliseconds",
    "lognormal": "[mu, sigma] of the log of milliseconds",
}


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelError(f"{where}: {shown(value)} is not a finite number")
    return float(value)


@dataclass(frozen=True)
class Delay:
    """A delay law, in milliseconds; `sample` draws a whole number of ms >= 0."""

    law: str = "fixed"
    params: tuple[float, ...] = (1000.0,)

    def __post_init__(self) -> None:
        where = f"delay {self.law}"
        if self.law not in DELAY_LAWS:
            raise ModelError(
                f"delay law {shown(self.law)} is unknown; give one of {', '.join(DELAY_LAWS)}"
            )
        size = 2 if self.law in ("uniform", "lognormal") else 1
        if len(self.params) != size:
            raise ModelError(f"{where}: give {DELAY_LAWS[self.law]}, got {shown(self.params)}")
        values = [_number(p, where) for p in self.params]
        if self.law in ("fixed", "exponential", "uniform") and min(values) < 0:
            raise ModelError(f"{where}: {shown(self.params)} must not be negative")
        if self.law == "uniform" and values[0] > values[1]:
            raise ModelError(f"{where}: low {values[0]} exceeds high {values[1]}")
        if self.law == "lognormal" and values[1] < 0:
            raise ModelError(f"{where}: sigma {values[1]} must be >= 0")

    @classmethod
    def parse(cls, spec: object) -> Delay:
        """A delay from ``500``, ``{fixed: 500}``, ``{uniform: [0, 2000]}``,
        ``{exponential: 800}`` or ``{lognormal: [6.0, 0.5]}``."""
        if isinstance(spec, Delay):
            return spec
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            return cls("fixed", (float(spec),))
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise ModelError(
                f"delay {shown(spec)}: give one law as a mapping, e.g. {{exponential: 800}}"
            )
        ((law, arg),) = spec.items()
        params = tuple(arg) if isinstance(arg, (list, tuple)) else (arg,)
        return cls(str(law), params)

    def sample(self, rng: random.Random) -> int:
        """One delay in whole milliseconds."""
        law, p = self.law, self.params
        if law == "fixed":
            value = p[0]
        elif law == "uniform":
            value = rng.uniform(p[0], p[1])
        elif law == "exponential":
            value = rng.expovariate(1.0 / p[0]) if p[0] > 0 else 0.0
        else:
            value = rng.lognormvariate(p[0], p[1])
        return round(value)


@dataclass(frozen=True)
class Faults:
    """The faults to inject into one sink; each rate is a fraction of events in [0, 1].

    Attributes:
        duplicate: events delivered twice.
        drop: events never delivered.
        late: events held back by `delay`.
        delay: the law of a late event's delay (a `Delay`, or what `Delay.parse` reads).
        malformed: events whose record is malformed (needs a wrapped mapper).
        malformed_kinds: which malformations to pick from, uniformly.
    """

    duplicate: float = 0.0
    drop: float = 0.0
    late: float = 0.0
    delay: Delay = field(default_factory=Delay)
    malformed: float = 0.0
    malformed_kinds: tuple[str, ...] = MALFORMED_KINDS

    def __post_init__(self) -> None:
        for name in ("duplicate", "drop", "late", "malformed"):
            rate = _number(getattr(self, name), f"faults.{name}")
            if not 0.0 <= rate <= 1.0:
                raise ModelError(
                    f"faults.{name}: rate {shown(getattr(self, name))} must be in [0, 1] "
                    "(a fraction: 0.01 is 1%)"
                )
        object.__setattr__(self, "delay", Delay.parse(self.delay))
        kinds = tuple(self.malformed_kinds)
        if not kinds or any(k not in MALFORMED_KINDS for k in kinds):
            raise ModelError(
                f"faults.malformed_kinds: {shown(self.malformed_kinds)}; give some of "
                f"{', '.join(MALFORMED_KINDS)}"
            )
        object.__setattr__(self, "malformed_kinds", kinds)


@dataclass
class FaultLedger(DeliveryLedger):
    """A ledger with the injected faults counted separately.

    `acknowledged` counts generated events accounted for: delivered to the inner sink (and
    acknowledged there) or dropped on purpose, net of duplicates.
    """

    injected_duplicates: int = 0
    injected_drops: int = 0
    injected_late: int = 0
    injected_malformed: int = 0
    delivered: int = 0

    @property
    def expected_deliveries(self) -> int:
        """What the inner sink must receive: collected - drops + duplicates."""
        return self.collected - self.injected_drops + self.injected_duplicates

    def summary(self) -> str:
        """The base summary plus the injected counts."""
        return (
            f"{super().summary()}; delivered {self.delivered}, injected: duplicates "
            f"{self.injected_duplicates}, drops {self.injected_drops}, late "
            f"{self.injected_late}, malformed {self.injected_malformed}"
        )


def _wrong_type(value: Any) -> Any:
    """A value of another type: numbers and booleans as text, text as its length."""
    if isinstance(value, str):
        return len(value)
    if value is None:
        return 0
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, default=str, separators=(",", ":"))


def malform(record: Any, kind: str, u: float) -> Any:
    """`record` malformed by `kind`, using `u` in [0, 1) for the position.

    ``wrong_type``: in a mapping (or a JSON object in text) the field at position ``u`` of
    its keys gets a value of another type; any other record becomes its text.
    ``truncated``: the record as JSON text (or its text) cut to ``1 + u * (len - 1)``
    characters, always shorter than the whole.
    """
    if kind == "wrong_type":
        as_text = isinstance(record, str)
        value = record
        if as_text:
            try:
                value = json.loads(record)
            except ValueError:
                return len(record)
        if isinstance(value, Mapping) and value:
            keys = list(value)
            key = keys[min(int(u * len(keys)), len(keys) - 1)]
            changed = dict(value)
            changed[key] = _wrong_type(changed[key])
            return json.dumps(changed, separators=(",", ":")) if as_text else changed
        return _wrong_type(record)
    if isinstance(record, (str, bytes)):
        text: str | bytes = record
    else:
        text = json.dumps(record, default=str, separators=(",", ":"))
    if len(text) <= 1:
        return text[:0]
    return text[: 1 + int(u * (len(text) - 1))]


class FaultySink(LedgeredSink):
    """Wraps `inner` and injects `faults`, reproducibly from `seed`.

    Args:
        inner: the sink that receives what is left (``collect``/``close``); None to attach
            it later with `attach` (see `around`).
        faults: the rates and delay law.
        seed: the run's seed; with `name` it seeds the fault stream
            (``SeedSequence([seed, *name])``), so each sink's faults are independent.
        name: the ledger's name; ``faults:<inner ledger name>`` by default.
    """

    def __init__(
        self,
        inner: Any,
        faults: Faults,
        *,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        if not isinstance(faults, Faults):
            raise SinkConfigError(f"faults must be a Faults, got {shown(faults)}")
        self.inner = inner
        self.faults = faults
        self.seed = seed
        label = name or f"faults:{getattr(ledger_of(inner), 'sink', type(inner).__name__)}"
        super().__init__(label)
        self.ledger: FaultLedger = FaultLedger(label)
        self._wrapped = False
        self._pending: tuple[str, float] | None = None
        self._repeat = False
        self._last: Any = None
        self._start_run()

    @classmethod
    def around(
        cls,
        make_inner: Callable[[Callable[..., Any]], Any],
        mapper: Callable[..., Any],
        faults: Faults,
        *,
        seed: int = 0,
        name: str | None = None,
    ) -> FaultySink:
        """A wrapper around ``make_inner(wrapped mapper)``: malformations reach the payload."""
        sink = cls(None, faults, seed=seed, name=name)
        sink.attach(make_inner(sink.wrap(mapper)))
        return sink

    def attach(self, inner: Any) -> None:
        """Set the inner sink (once)."""
        if self.inner is not None:
            raise SinkConfigError(f"sink {self.ledger.sink}: an inner sink is attached already")
        self.inner = inner

    def wrap(self, mapper: Callable[..., Any]) -> Callable[..., Any]:
        """`mapper` with the malformation of the event being delivered applied to its result."""
        self._wrapped = True

        def faulty_mapper(*event: Any) -> Any:
            if self._repeat:
                return self._last  # a duplicate: the same record, not a second mapping
            record = mapper(*event)
            pending = self._pending
            if pending is not None:
                record = malform(record, pending[0], pending[1])
            self._last = record
            return record

        return faulty_mapper

    def reseed(self, seed: int) -> None:
        """Start the fault stream again for a run with `seed` (before its first event)."""
        if self._late or self.ledger.collected:
            raise SinkConfigError(
                f"sink {self.ledger.sink}: reseed() after events were collected; reseed "
                "before the run starts"
            )
        self.seed = seed
        self._start_run()

    def _start_run(self) -> None:
        self._rng = seeded_random(self.seed, f"faults:{self.ledger.sink}")
        self._late: list[tuple[int, int, int, Any, Any, tuple[str, float] | None, int]] = []
        self._order = 0

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Inject this event's faults, then deliver what is due to the inner sink."""
        if self._closed:
            self.reopen()
        if self.inner is None:
            raise SinkConfigError(f"sink {self.ledger.sink}: no inner sink; call attach()")
        if self.faults.malformed > 0 and not self._wrapped:
            raise SinkConfigError(
                f"sink {self.ledger.sink}: malformed = {self.faults.malformed} needs the inner "
                "sink's mapper wrapped by FaultySink.wrap (or build with FaultySink.around)"
            )
        book = self.ledger
        book.collected += 1
        late = self._late
        while late and late[0][0] <= timestamp:
            self._deliver(heapq.heappop(late))
        faults, rand = self.faults, self._rng.random
        # Always four draws, in this order, so one fault's outcome never shifts another's.
        dropped = rand() < faults.drop
        duplicated = rand() < faults.duplicate
        delayed = rand() < faults.late
        malformed = rand() < faults.malformed
        if dropped:
            book.injected_drops += 1
            return
        how: tuple[str, float] | None = None
        if malformed:
            kinds = faults.malformed_kinds
            how = (kinds[min(int(rand() * len(kinds)), len(kinds) - 1)], rand())
            book.injected_malformed += 1
        copies = 2 if duplicated else 1
        book.injected_duplicates += copies - 1
        self._order += 1
        entry = (timestamp, self._order, timestamp, subject, transition, how, copies)
        if delayed:
            book.injected_late += 1
            delay = faults.delay.sample(self._rng)
            heapq.heappush(late, (timestamp + delay, *entry[1:]))
        else:
            self._deliver(entry)

    def _deliver(
        self, entry: tuple[int, int, int, Any, Any, tuple[str, float] | None, int]
    ) -> None:
        _, _, timestamp, subject, transition, how, copies = entry
        book = self.ledger
        for copy in range(copies):
            self._pending = how
            self._repeat = copy > 0
            try:
                self.inner.collect(timestamp, subject, transition)
            except SinkError as exc:
                # The event is lost; copies not yet made were never injected.
                book.failed += 1
                book.injected_duplicates -= copies - 1 - copy
                raise SinkError(
                    f"sink {book.sink}: the inner sink failed on the event at {timestamp}: "
                    f"{exc}; {book.summary()}",
                    [book, *exc.ledgers],
                ) from exc
            finally:
                self._pending = None
                self._repeat = False
            book.delivered += 1

    def _close(self) -> None:
        late = self._late
        try:
            while late:
                self._deliver(heapq.heappop(late))
        finally:
            self._close_inner()

    def _close_inner(self) -> None:
        book = self.ledger
        inner_error: SinkError | None = None
        try:
            self.inner.close()
        except SinkError as exc:
            inner_error = exc
        inner_book = ledger_of(self.inner)
        received = inner_book.acknowledged if inner_book is not None else book.delivered
        book.acknowledged = received + book.injected_drops - book.injected_duplicates
        if inner_error is not None:
            # Nothing is in flight after close: what the inner sink did not store failed.
            book.failed = max(book.failed, book.collected - book.acknowledged)
            raise SinkError(
                f"sink {book.sink}: the inner sink failed: {inner_error}; {book.summary()}",
                [book, *inner_error.ledgers],
            ) from inner_error
        if received != book.expected_deliveries:
            raise SinkError(
                f"sink {book.sink}: the inner sink received {received} events, expected "
                f"{book.expected_deliveries} (collected {book.collected} - drops "
                f"{book.injected_drops} + duplicates {book.injected_duplicates}); "
                f"{book.summary()}",
                [book],
            )

    def _reopen(self) -> None:
        self.ledger = FaultLedger(self.ledger.sink)
        self._start_run()
        # The inner sink starts its new run (and ledger) with ours, even with no events.
        if getattr(self.inner, "closed", False) and callable(getattr(self.inner, "reopen", None)):
            self.inner.reopen()

    @property
    def pending_late(self) -> int:
        """Late events held back, not yet delivered."""
        return len(self._late)


def observed_rates(ledger: FaultLedger) -> dict[str, float]:
    """The observed fraction of collected events per fault kind."""
    n = max(ledger.collected, 1)
    return {
        "duplicate": ledger.injected_duplicates / n,
        "drop": ledger.injected_drops / n,
        "late": ledger.injected_late / n,
        "malformed": ledger.injected_malformed / n,
    }
