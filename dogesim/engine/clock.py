"""The time of the event being handled, for callbacks that need the clock.

- `current_time()`: the timestamp (integer ms) of the attempt in progress.

doge-datagen's callbacks take ``(subject, transition)``; rather than change that signature,
the engine sets this clock before each tick's attempts (and before each jittered attempt), so
``dogesim.engine.current_time()`` inside a callback is the timestamp its event would carry.
"""

from __future__ import annotations

__all__ = ["current_time"]

#: The timestamp of the attempt in progress (a one-item list: cheap to set in the hot loop).
NOW: list[int | None] = [None]


def current_time() -> int | None:
    """The timestamp in ms of the attempt being handled; None before any run has started.

    Inside an action callback, a hold function or a sink it is the event's time; between
    runs it is the last time handled."""
    return NOW[0]
