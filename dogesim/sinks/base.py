"""The sink contract and the delivery ledger.

- `Sink`: the protocol. A sink is anything with ``collect(timestamp, subject, transition)``
  and ``close()``; the engine calls ``close()`` exactly once when a run ends, however it ends.
- `EventSink`: doge-datagen's abstract base class (``collect`` abstract, ``close`` a no-op).
- `DeliveryLedger`: per sink, how many events were collected, acknowledged by the backend,
  and failed. A run whose sinks did not acknowledge everything fails with `SinkError`.
- `LedgeredSink`: base class for sinks that keep a ledger and check it on ``close()``.
- `CountingSink`: counts events and drops them (benchmarks, dry runs).
- `ledger_of`: the ledger a sink keeps, or ``None`` for sinks that keep none.
- `sink_method`, `is_positioned`: the optional methods a sink really defines (not those any
  object answering every name seems to have).
- `batch_collector`: a sink's ``collect_many`` (one call per tick with that tick's events), or
  ``None`` for sinks that take events one by one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dogesim.errors import SinkError

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = [
    "CountingSink",
    "DeliveryLedger",
    "EventSink",
    "LedgeredSink",
    "Sink",
    "batch_collector",
    "is_positioned",
    "ledger_of",
]


@runtime_checkable
class Sink(Protocol):
    """Anything that takes events: ``collect`` per event, ``close`` once at the end."""

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Take one event: `subject` moved along `transition` at `timestamp` (ms)."""

    def close(self) -> None:
        """Flush and release resources; called exactly once when the run ends."""


class EventSink(ABC):
    """Base class for sinks, as in doge-datagen: override `collect`, optionally `close`."""

    @abstractmethod
    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Take one event: `subject` moved along `transition` at `timestamp` (ms)."""

    def close(self) -> None:  # noqa: B027 - a no-op default, as in doge-datagen
        """Flush and release resources; called exactly once when the run ends."""


@dataclass
class DeliveryLedger:
    """Delivery accounting for one sink.

    Attributes:
        sink: a human-readable name for the sink (e.g. ``kafka:topic`` or ``jsonl:out.jsonl``).
        collected: events handed to the sink by the engine.
        acknowledged: events the backend confirmed as stored.
        failed: events the backend rejected or that could not be sent.
    """

    sink: str
    collected: int = 0
    acknowledged: int = 0
    failed: int = 0

    @property
    def pending(self) -> int:
        """Events neither acknowledged nor failed (still in flight, or unknown)."""
        return self.collected - self.acknowledged - self.failed

    @property
    def lost(self) -> int:
        """Events collected but not acknowledged: failed plus pending."""
        return self.collected - self.acknowledged

    @property
    def ok(self) -> bool:
        """True when every collected event was acknowledged."""
        return self.lost == 0

    def summary(self) -> str:
        """One line: ``name: collected N, acknowledged A, failed F, pending P``."""
        return (
            f"{self.sink}: collected {self.collected}, acknowledged {self.acknowledged}, "
            f"failed {self.failed}, pending {self.pending}"
        )

    def raise_if_lost(self, cause: str = "") -> None:
        """Raise `SinkError` naming the counts when anything was not acknowledged."""
        if not self.ok:
            detail = f": {cause}" if cause else ""
            raise SinkError(
                f"sink {self.sink} lost {self.lost} of {self.collected} events "
                f"({self.acknowledged} acknowledged, {self.failed} failed, "
                f"{self.pending} pending){detail}",
                [self],
            )


class LedgeredSink(EventSink):
    """A sink that keeps a `DeliveryLedger` and fails its ``close()`` on any loss.

    The rules every ledgered sink keeps (pinned by `dogesim.sinks.conformance`):

    - **Close once.** ``close()`` flushes and releases the backend via `_close`, then raises
      `SinkError` if any event was not acknowledged. Calling it again does nothing more, but
      re-raises the first failure, so a second call never hides it.
    - **Reuse reopens.** An event collected after ``close()`` starts a new run: the sink
      reopens its backend (`_reopen`: files in append mode, databases reconnect) and gets a
      *new* ledger, so the ledger of the run that ended stays as it was and the new one
      counts this run alone. A sink that cannot reopen raises `SinkError` from `_reopen`,
      before the event is taken (it is counted as failed), never losing it silently. A
      runner may call `reopen` itself when a run starts on a `closed` sink, so that a run
      which hands it no events still gets a ledger of its own.
    - **Mapper errors** are `SinkError` s naming the sink and the event, counted as failed.
    - **Interrupts.** A `BaseException` (a second Ctrl-C) inside ``close()`` propagates; the
      ledger then counts exactly what the backend committed as acknowledged and the rest as
      failed, and a later ``close()`` raises a `SinkError` saying so.

    Subclasses implement `collect` (starting with ``if self._closed: self.reopen()``, then
    incrementing ``self.ledger.collected`` and, when the backend confirms, ``acknowledged``
    or ``failed``), `_close`, which flushes and releases the backend, and `_reopen`.
    """

    def __init__(self, name: str) -> None:
        self.ledger = DeliveryLedger(name)
        self._closed = False
        self._close_error: SinkError | None = None

    def close(self) -> None:
        """Flush via `_close`, then raise `SinkError` if any event was not acknowledged."""
        if self._closed:
            if self._close_error is not None:
                raise self._close_error
            return
        self._closed = True
        try:
            self._close()
            self.ledger.raise_if_lost()
        except SinkError as exc:
            self._close_error = exc
            raise
        except Exception as exc:
            self._close_error = SinkError(
                f"sink {self.ledger.sink} failed to close: {exc!r}; {self.ledger.summary()}",
                [self.ledger],
            )
            raise self._close_error from exc
        except BaseException as exc:
            # Interrupted: what the backend holds stays acknowledged, the rest is lost.
            book = self.ledger
            book.failed = book.collected - book.acknowledged
            self._close_error = SinkError(
                f"sink {book.sink}: close() was interrupted ({type(exc).__name__}); "
                f"{book.summary()}",
                [book],
            )
            raise

    @property
    def closed(self) -> bool:
        """True between ``close()`` and the next event (or `reopen`)."""
        return self._closed

    def reopen(self) -> None:
        """Start a new run on a closed sink: a new ledger, the backend opened again.

        Raises:
            SinkError: the backend cannot be opened again (the sink stays closed, and the
                event that asked for the reopening is counted as failed).
        """
        self.ledger = DeliveryLedger(self.ledger.sink)
        self._close_error = None
        self._closed = False
        try:
            self._reopen()
        except Exception as exc:
            self._closed = True
            self.ledger.collected = self.ledger.failed = 1
            error = exc if isinstance(exc, SinkError) else None
            self._close_error = SinkError(
                f"sink {self.ledger.sink}: got an event after close() and cannot reopen: "
                f"{error or repr(exc)}; build a new sink for each run",
                [self.ledger],
            )
            raise self._close_error from exc

    def event_failed(self, exc: BaseException, timestamp: int, what: str) -> SinkError:
        """Count the current event as failed; the `SinkError` to raise for it.

        Args:
            exc: what went wrong (a mapper's exception, an encoding error ...).
            timestamp: the event's timestamp.
            what: what failed, e.g. ``"the mapper"`` or ``"encoding the line"``.
        """
        book = self.ledger
        book.failed += 1
        return SinkError(
            f"sink {book.sink}: {what} failed on event #{book.collected} of this run "
            f"(at {timestamp}): {exc!r}; {book.summary()}",
            [book],
        )

    def _close(self) -> None:
        """Flush outstanding events and release the backend (override)."""

    def _reopen(self) -> None:
        """Open the backend again after `_close` for a new run (override when needed)."""


class CountingSink(LedgeredSink):
    """Counts events and keeps nothing: for benchmarks and dry runs.

    `count` counts every event the sink ever got; the ledger counts the current run.
    """

    def __init__(self, name: str = "counting") -> None:
        super().__init__(name)
        self.count = 0
        self._run_start = 0

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Count the event."""
        if self._closed:
            self.reopen()
        self.count += 1

    def collect_many(
        self, timestamp: int, subjects: Sequence[Any], transitions: Sequence[Transition]
    ) -> None:
        """Count a tick's events (the engine's batch path: one call per tick)."""
        if self._closed:
            self.reopen()
        self.count += len(subjects)

    def _reopen(self) -> None:
        self._run_start = self.count

    def _close(self) -> None:
        self.ledger.collected = self.ledger.acknowledged = self.count - self._run_start


def ledger_of(sink: object) -> DeliveryLedger | None:
    """The ledger `sink` keeps, or None when it keeps none (plain doge-datagen sinks)."""
    ledger = getattr(sink, "ledger", None)
    return ledger if isinstance(ledger, DeliveryLedger) else None


def sink_method(sink: object, name: str) -> Callable[..., Any] | None:
    """`sink.<name>` when the sink defines it — on its class or set on the instance — and it
    is callable, else None. The engine's optional sink methods (``collect_many``,
    ``check_timestamps``, the checkpoint positions) are looked up here: plain attribute
    lookup finds them on any object that answers every name (a ``unittest.mock.Mock``, as
    doge-datagen programs and tests pass for a sink, or a proxy), and the engine would then
    send that sink's events to a ``collect_many`` nobody wrote."""
    if name not in getattr(sink, "__dict__", {}) and not any(
        name in vars(klass) for klass in type(sink).__mro__
    ):
        return None
    method = getattr(sink, name, None)
    return method if callable(method) else None


def is_positioned(sink: object) -> bool:
    """Whether `sink` records and restores its position (`dogesim.sinks.offsets`): it defines
    ``output_identity``, ``position`` and ``restore_position`` (see `sink_method`)."""
    return all(
        sink_method(sink, name) is not None
        for name in ("output_identity", "position", "restore_position")
    )


BatchCollect = Callable[[int, Sequence[Any], Sequence["Transition"]], None]


def batch_collector(sink: object) -> BatchCollect | None:
    """`sink.collect_many`, or None when the sink takes its events one by one.

    ``collect_many(timestamp, subjects, transitions)`` means exactly
    ``for s, t in zip(subjects, transitions): collect(timestamp, s, t)``: the same bytes, the
    same ledger, the same errors. The engine uses it only for sinks that define it; every
    other sink (doge-datagen's included) keeps the per-event ``collect`` path, and so does a
    sink whose ``collect`` is overridden below the class that gives it ``collect_many`` (a
    subclass filtering events in ``collect`` must see every event there)."""
    collect_many = sink_method(sink, "collect_many")
    if collect_many is None:
        return None
    own = getattr(sink, "__dict__", {})
    if "collect_many" in own:
        return collect_many  # set on the instance: the owner said what it means
    if "collect" in own:
        return None  # collect patched on the instance, collect_many inherited
    mro = type(sink).__mro__
    one = next((k for k in mro if "collect" in vars(k)), None)
    many = next((k for k in mro if "collect_many" in vars(k)), None)
    if one is not None and many is not None and one is not many and issubclass(one, many):
        return None
    return collect_many
