"""`PrintingSink`: prints each event through a format function (doge-datagen's sink)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from dogesim.sinks.base import LedgeredSink

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = ["PrintingSink"]


class PrintingSink(LedgeredSink):
    """Prints ``format_function(timestamp, subject, transition)`` for every event.

    Args:
        format_function: turns an event into the line to print.
        file: where to print; standard output (looked up at print time) when omitted.

    A line the format function cannot make, or the stream cannot take (an encoding error, a
    closed pipe), is a `SinkError` counted as failed.
    """

    def __init__(
        self,
        format_function: Callable[[int, Any, Transition], str],
        file: TextIO | None = None,
    ) -> None:
        super().__init__("printing")
        self.format_function = format_function
        self.file = file

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Format and print the event."""
        if self._closed:
            self.reopen()
        self.ledger.collected += 1
        try:
            line = self.format_function(timestamp, subject, transition)
        except Exception as exc:
            raise self.event_failed(exc, timestamp, "the format function") from exc
        try:
            print(line, file=self.file if self.file is not None else sys.stdout)
        except (OSError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            raise self.event_failed(exc, timestamp, "printing the line") from exc
        self.ledger.acknowledged += 1

    def _close(self) -> None:
        out = self.file if self.file is not None else sys.stdout
        out.flush()
