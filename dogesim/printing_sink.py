"""doge-datagen's ``doge_datagen.printing_sink`` module path, served by dogesim.

- `PrintingSink`: `dogesim.sinks.printing.PrintingSink` (same constructor, and a delivery
  ledger).
- `Subject`, `Transition`, `EventSink`: the names doge-datagen's module also provides.
"""

from __future__ import annotations

from dogesim.compat import EventSink, Subject, Transition
from dogesim.sinks.printing import PrintingSink

__all__ = ["EventSink", "PrintingSink", "Subject", "Transition"]
