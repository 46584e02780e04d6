"""A sink's throughput cap in a model file: ``max_rate:`` (events per second) and ``burst:``.

- `PACING_KEYS`: the keys every sink may carry besides its type's settings.
- `split_pacing(sink, value)`: the sink's mapping without those keys, and its
  `dogesim.sinks.pacing.RateCap` (None without ``max_rate``).
- `capped(sink, cap)`: a built sink behind its cap (the sink itself without one).

::

    sinks:
      orders:
        type: kafka
        topic: orders
        max_rate: 500     # events per second, at most
        burst: 50         # events that may leave at once after a quiet spell (default 1)
"""

from __future__ import annotations

from typing import Any

from dogesim.errors import SinkConfigError
from dogesim.modelfile.source import _Map, _Reader

__all__ = ["PACING_KEYS", "capped", "split_pacing"]

#: The keys of a sink's cap.
PACING_KEYS = ("max_rate", "burst")


def split_pacing(sink: _Reader, value: _Map) -> tuple[_Map, Any]:
    """`value` without ``max_rate``/``burst``, and the `RateCap` they give (or None).

    Raises:
        ModelError: a rate that is not a number > 0, a burst that is not an integer >= 1, or
            a burst without a rate (at the key's line).
    """
    if not any(key in value for key in PACING_KEYS):
        return value, None
    from dogesim.sinks.pacing import RateCap

    rest = _Map({k: v for k, v in value.items() if k not in PACING_KEYS})
    rest.line = value.line
    rest.key_lines = {k: v for k, v in value.key_lines.items() if k not in PACING_KEYS}
    if not sink.has("max_rate"):
        raise sink.error("burst", "burst needs max_rate (the cap's events per second)")
    rate = sink.number("max_rate")
    burst = sink.integer("burst", minimum=1) if sink.has("burst") else 1
    try:
        return rest, RateCap(rate, burst)
    except SinkConfigError as exc:
        raise sink.error("max_rate", str(exc)) from None


def capped(sink: Any, cap: Any) -> Any:
    """`sink` behind `cap` (a `dogesim.sinks.pacing.PacedSink`), or `sink` when None."""
    if cap is None:
        return sink
    from dogesim.sinks.pacing import PacedSink

    return PacedSink(sink, cap)
