"""The exceptions dogesim raises.

- `DogesimError`: the root of every error dogesim raises on purpose.
- `ModelError`: a model (states, transitions, settings or a model file) is invalid. It
  subclasses `ValueError`, so doge-datagen code that catches `ValueError` keeps working.
- `SinkError`: a sink could not deliver every event it was given; carries the delivery
  ledger(s) so callers can see exactly how many events arrived and how many did not.
- `SinkConfigError`: a sink cannot be set up (bad URL or settings, missing table, invalid
  schema); raised before any event is sent. A `SinkError` and a `ValueError` (doge-datagen
  raised `ValueError` for a missing table).
- `RunError`: a run was used the wrong way (for example started twice).
- `shown`: a short, always printable text of any value, for messages (a 400-digit number or
  an object whose ``repr`` fails must not turn a clear error into another traceback).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dogesim.sinks.base import DeliveryLedger

__all__ = [
    "DogesimError",
    "ModelError",
    "RunError",
    "SinkConfigError",
    "SinkError",
    "shown",
]


class DogesimError(Exception):
    """Root of all errors raised on purpose by dogesim."""


class ModelError(DogesimError, ValueError):
    """An invalid model: the message names the state, transition, key or value at fault."""


class RunError(DogesimError, RuntimeError):
    """A simulation run was used in a way it does not support."""


class SinkError(DogesimError):
    """A sink failed to deliver events; `ledgers` says how many arrived and how many did not."""

    def __init__(self, message: str, ledgers: Sequence[DeliveryLedger] = ()) -> None:
        super().__init__(message)
        self.ledgers: tuple[DeliveryLedger, ...] = tuple(ledgers)


class SinkConfigError(SinkError, ValueError):
    """A sink cannot be set up: the message names the setting, table or schema at fault."""


def shown(value: object, limit: int = 80) -> str:
    """`repr(value)` cut to about `limit` characters; never raises.

    Huge integers are described by their size (Python refuses to print more than 4300
    digits), and a failing ``__repr__`` gives the type name instead.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        digits = int(value.bit_length() * 0.30103) + 1
        return f"{'-' if value < 0 else ''}<a {digits}-digit integer>"
    try:
        text = repr(value)
    except Exception:  # any failure of a foreign __repr__ must not escape
        return f"<{type(value).__name__} object>"
    if len(text) > limit:
        return text[: limit - 3] + "..."
    return text
