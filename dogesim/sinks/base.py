"""The sink contract and the delivery ledger.

- `Sink`: the protocol. A sink is anything with ``collect(timestamp, subject, transition)``
  and ``close()``; the engine calls ``close()`` exactly once when a run ends, however it ends.
- `EventSink`: doge-datagen's abstract base class (``collect`` abstract, ``close`` a no-op).
- `DeliveryLedger`: per sink, how many events were collected, acknowledged by the backend,
  and failed. A run whose sinks did not acknowledge everything fails with `SinkError`.
- `LedgeredSink`: base class for sinks that keep a ledger and check it on ``close()``.
- `CountingSink`: counts events and drops them (benchmarks, dry runs).
- `ledger_of`: the ledger a sink keeps, or ``None`` for sinks that keep none.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
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

    Subclasses implement `collect` (incrementing ``self.ledger.collected`` and, when the backend
    confirms, ``acknowledged`` or ``failed``) and `_close`, which flushes and releases the
    backend. `close` calls `_close` once and then checks the ledger.
    """

    def __init__(self, name: str) -> None:
        self.ledger = DeliveryLedger(name)
        self._closed = False

    def close(self) -> None:
        """Flush via `_close`, then raise `SinkError` if any event was not acknowledged."""
        if self._closed:
            return
        self._closed = True
        try:
            self._close()
        except SinkError:
            raise
        except Exception as exc:
            raise SinkError(
                f"sink {self.ledger.sink} failed to close: {exc!r}; {self.ledger.summary()}",
                [self.ledger],
            ) from exc
        self.ledger.raise_if_lost()

    def _close(self) -> None:
        """Flush outstanding events and release the backend (override)."""


class CountingSink(LedgeredSink):
    """Counts events and keeps nothing: for benchmarks and dry runs."""

    def __init__(self, name: str = "counting") -> None:
        super().__init__(name)
        self.count = 0

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Count the event."""
        self.count += 1

    def _close(self) -> None:
        self.ledger.collected = self.ledger.acknowledged = self.count


def ledger_of(sink: object) -> DeliveryLedger | None:
    """The ledger `sink` keeps, or None when it keeps none (plain doge-datagen sinks)."""
    ledger = getattr(sink, "ledger", None)
    return ledger if isinstance(ledger, DeliveryLedger) else None
