"""Throughput caps for sinks: at most `max_rate` events per second, in bursts of `burst`.

- `RateCap`: a cap, checked: events per second and the burst (events that may leave at once).
- `PacingStats`: what a cap did: events let through, events delayed, the total and the
  longest wait, and how far behind its uncapped time the last event left.
- `PacedSink`: wraps any sink and holds each event back until the cap lets it through.
- `paced(sink, max_rate, burst)`: the sink itself without a cap, else a `PacedSink`.

The cap is a token bucket in its virtual-scheduling form (GCRA): event ``k`` after a quiet
spell leaves no earlier than ``(k - burst + 1) / max_rate`` seconds after the first, so over
any window of ``w`` seconds at most ``burst + w * max_rate`` events leave. A wait shorter than
`min_sleep` is not slept (the next event's wait includes it), so a high cap is kept on average
without a system call per event.

A held-back event blocks the run (the cap models a downstream that takes no more): in a live
run the walker's lag accounting (`RunResult.max_lag_ms`, ``on_lag``) sees the delay like any
slow sink, and the wrapper's `stats` say how much of it the cap caused. The wrapper keeps no
ledger of its own: `ledger`, ``position()`` and every other attribute are the inner sink's,
so the delivery accounting of a capped sink is its own.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dogesim.errors import SinkConfigError, shown
from dogesim.sinks.base import batch_collector

if TYPE_CHECKING:
    from dogesim.model import Transition

__all__ = ["MIN_SLEEP", "PacedSink", "PacingStats", "RateCap", "paced"]

LOGGER = logging.getLogger("dogesim.sinks.pacing")

#: Waits shorter than this (seconds) are carried into the next one instead of slept.
MIN_SLEEP = 0.001


@dataclass(frozen=True)
class RateCap:
    """At most `max_rate` events per second, `burst` of them at once.

    Attributes:
        max_rate: events per second (> 0).
        burst: events that may leave together after a quiet spell (an integer >= 1); 1 spaces
            every event by ``1 / max_rate``.
    """

    max_rate: float
    burst: int = 1

    def __post_init__(self) -> None:
        rate = self.max_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise SinkConfigError(
                f"max_rate must be a number of events per second, got {shown(rate)}"
            )
        if not math.isfinite(rate) or rate <= 0:
            raise SinkConfigError(f"max_rate must be a finite number > 0 (events/s), got {rate!r}")
        burst = self.burst
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise SinkConfigError(f"burst must be an integer >= 1 (events), got {shown(burst)}")

    def describe(self) -> str:
        """``, at most 500 events/s (bursts of 50)``: the cap for a sink's description."""
        rate = float(self.max_rate)
        shown = f"{rate:,.0f}" if rate.is_integer() else f"{rate:g}"
        return f", at most {shown} events/s (bursts of {self.burst})"

    @property
    def interval(self) -> float:
        """Seconds between two events at the cap."""
        return 1.0 / self.max_rate


@dataclass
class PacingStats:
    """What a cap did in the current run.

    Attributes:
        events: events that went through the cap.
        delayed: events that had to wait.
        waited_s: seconds the cap slept in total.
        max_wait_s: the longest wait of one event.
        behind_s: how far behind the time it was handed over the last event left.
    """

    events: int = 0
    delayed: int = 0
    waited_s: float = 0.0
    max_wait_s: float = 0.0
    behind_s: float = 0.0

    def summary(self) -> str:
        """One line: events, delayed, waits."""
        return (
            f"{self.events} events, {self.delayed} delayed, waited {self.waited_s:.3f} s "
            f"(longest {self.max_wait_s * 1000:.1f} ms)"
        )


class PacedSink:
    """`inner` behind a `RateCap`: each event waits until the cap lets it through.

    Args:
        inner: any sink (``collect``/``close``; ``collect_many`` is used when it has one).
        cap: the cap (or give `max_rate` and `burst`).
        clock: seconds, monotonic (`time.monotonic`; tests pass a fake).
        sleep: waits that many seconds (`time.sleep`; tests pass a fake that moves `clock`).
        min_sleep: waits shorter than this are carried into the next (see the module).
    """

    def __init__(
        self,
        inner: Any,
        cap: RateCap | None = None,
        *,
        max_rate: float | None = None,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        min_sleep: float = MIN_SLEEP,
    ) -> None:
        if cap is None:
            if max_rate is None:
                raise SinkConfigError("PacedSink needs a cap: give cap=RateCap(...) or max_rate")
            cap = RateCap(max_rate, burst)
        elif max_rate is not None:
            raise SinkConfigError("PacedSink: give either cap or max_rate/burst, not both")
        self.inner = inner
        self.cap = cap
        self.clock = clock
        self.sleep = sleep
        self.min_sleep = min_sleep
        self.stats = PacingStats()
        self._tolerance = (cap.burst - 1) * cap.interval
        self._tat: float | None = None  # when the next event is due at the cap (GCRA)
        self._closed_run = False

    def __getattr__(self, name: str) -> Any:
        # Everything the wrapper does not define is the inner sink's (ledger, position, ...).
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def __repr__(self) -> str:
        return f"PacedSink({self.inner!r}, max_rate={self.cap.max_rate:g}, burst={self.cap.burst})"

    # -- the bucket ------------------------------------------------------------------------

    def _admit(self, wanted: int) -> int:
        """Wait until at least one event may leave; how many of `wanted` leave now."""
        if self._closed_run:
            self._closed_run = False
            self.stats = PacingStats()
            self._tat = None
        interval = self.cap.interval
        now = self.clock()
        tat = now if self._tat is None else max(self._tat, now)
        # Events that may leave at `now`: those whose allowed time tat + i*interval - tolerance
        # has come.
        free = math.floor((now + self._tolerance - tat) / interval + 1e-9) + 1
        stats = self.stats
        if free > 0:
            taken = min(wanted, free)
            self._tat = tat + taken * interval
            stats.events += taken
            stats.behind_s = 0.0
            return taken
        wait = tat - self._tolerance - now
        stats.events += 1
        stats.delayed += 1
        stats.max_wait_s = max(stats.max_wait_s, wait)
        stats.behind_s = wait
        # A shorter wait is not slept: the next event's wait, measured from the same clock,
        # includes it, so the cap holds on average.
        if wait >= self.min_sleep:
            self.sleep(wait)
            stats.waited_s += wait
        self._tat = tat + interval
        return 1

    # -- the sink --------------------------------------------------------------------------

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        """Wait for the cap, then hand the event to the inner sink."""
        self._admit(1)
        self.inner.collect(timestamp, subject, transition)

    def collect_many(
        self, timestamp: int, subjects: Sequence[Any], transitions: Sequence[Transition]
    ) -> None:
        """The tick's events through the cap, in runs the cap lets leave together."""
        many = batch_collector(self.inner)
        start, count = 0, len(subjects)
        while start < count:
            taken = self._admit(count - start)
            end = start + taken
            if many is not None:
                many(timestamp, subjects[start:end], transitions[start:end])
            else:
                for k in range(start, end):
                    self.inner.collect(timestamp, subjects[k], transitions[k])
            start = end

    def close(self) -> None:
        """Close the inner sink; the next event starts a new run of the cap (fresh stats)."""
        self._closed_run = True
        if self.stats.delayed:
            LOGGER.info(
                "sink %r capped at %g events/s: %s",
                self.inner,
                self.cap.max_rate,
                self.stats.summary(),
            )
        self.inner.close()


def paced(sink: Any, max_rate: float | None, burst: int | None = None) -> Any:
    """`sink` capped at `max_rate` events/s (bursts of `burst`, default 1); `sink` itself
    when `max_rate` is None."""
    if max_rate is None:
        if burst is not None:
            raise SinkConfigError("burst needs max_rate (the events per second of the cap)")
        return sink
    return PacedSink(sink, RateCap(max_rate, 1 if burst is None else burst))
