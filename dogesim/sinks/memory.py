"""`MemorySink`: keeps every event in a Python list, for tests and notebooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from dogesim.sinks.base import LedgeredSink

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = ["Event", "MemorySink"]


class Event(NamedTuple):
    """One event as `MemorySink` keeps it when no mapper is given."""

    timestamp: int
    subject: Any
    trigger: str
    from_state: str
    to_state: str


class MemorySink(LedgeredSink):
    """Keeps events in `events`, in the order they were collected.

    Args:
        mapper: turns ``(timestamp, subject, transition)`` into what is stored. Without one an
            `Event` is stored whose ``subject`` is the live subject object: callbacks that mutate
            it later change what you see, so pass a mapper that copies the fields you need.
        name: the name in the delivery ledger.

    A mapped dict or list is stored as a shallow copy, so a mapper that fills and returns one
    object every time still gives one item per event. Used again after ``close()``, the sink
    keeps appending to `events`; its new ledger counts the new run.
    """

    def __init__(
        self,
        mapper: Callable[[int, Any, Transition], Any] | None = None,
        name: str = "memory",
    ) -> None:
        super().__init__(name)
        self.mapper = mapper
        self.events: list[Any] = []
        self.closed_count = 0
        self._run_start = 0

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Store the event (mapped when a mapper was given)."""
        if self._closed:
            self.reopen()
        if self.mapper is None:
            item: Any = Event(
                timestamp, subject, transition.trigger, transition.from_state, transition.to_state
            )
        else:
            try:
                item = self.mapper(timestamp, subject, transition)
            except Exception as exc:
                self.ledger.collected = len(self.events) - self._run_start + self.ledger.failed + 1
                raise self.event_failed(exc, timestamp, "the mapper") from exc
            if isinstance(item, (dict, list)):
                item = item.copy()
        self.events.append(item)

    def _reopen(self) -> None:
        self._run_start = len(self.events)

    def _close(self) -> None:
        self.closed_count += 1
        stored = len(self.events) - self._run_start
        self.ledger.acknowledged = stored
        self.ledger.collected = stored + self.ledger.failed

    def __len__(self) -> int:
        return len(self.events)
