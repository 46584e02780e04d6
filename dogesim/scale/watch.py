"""What the driver does while the shards run: one progress view, and stop requests.

- `Progress`: the whole run's progress: ticks and events summed over the shards, how many
  shards have finished, and how many of those failed or stopped (the rest are done).
- `Watch`: polled by the executors while they wait (and told every finished shard's
  result): it calls the run's ``progress`` callback with a `Progress` when the figures
  change, and relays a stop request (a `threading.Event` set by a signal handler, or
  `request_stop`) to every shard through the plan's `Control`.

The figures come from the shards' own reports (`Control.report`, a few a second) and, once a
shard has finished, from its result: when every shard has finished the last `Progress` holds
the run's exact ticks and events.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dogesim.scale.control import Control
from dogesim.scale.worker import ShardResult

__all__ = ["Progress", "Watch"]

#: `ShardResult.status` values counted as failed, and as stopped before the end.
_FAILED = frozenset({"failed", "lost"})
_STOPPED = frozenset({"stopped", "cancelled"})


@dataclass(frozen=True)
class Progress:
    """A sharded run's progress, summed over its shards.

    Attributes:
        ticks: ticks done, summed over the shards (each shard walks every tick).
        events: events so far, summed over the shards.
        finished: shards that have finished (done, stopped, failed or lost).
        shards: the run's shards.
        total_ticks: ticks of the whole run summed over the shards (None: no tick count).
        failed: finished shards that failed or were lost (their worker died).
        stopped: finished shards that stopped before their end (asked to, or cancelled
            because another shard failed).
    """

    ticks: int
    events: int
    finished: int
    shards: int
    total_ticks: int | None
    failed: int = 0
    stopped: int = 0

    @property
    def done(self) -> int:
        """Shards that ran to their end."""
        return self.finished - self.failed - self.stopped

    @property
    def fraction(self) -> float | None:
        """How much of the run is done (ticks), or None without a tick count."""
        if not self.total_ticks:
            return None
        return min(1.0, self.ticks / self.total_ticks)


class Watch:
    """Progress and stop requests of one sharded run (see the module docstring).

    Args:
        control: the run's `Control`.
        shards: the run's shards.
        ticks: ticks per shard (None: no tick count).
        on_progress: called with a `Progress` whenever it changed (None: nobody asks).
        stop: an event whose setting (by a signal handler, another thread) asks for a stop,
            as `request_stop` does.
    """

    def __init__(
        self,
        control: Control,
        shards: int,
        ticks: int | None,
        on_progress: Callable[[Progress], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.control = control
        self.shards = shards
        self.ticks = ticks
        self.on_progress = on_progress
        self.stop_requested = False
        self.stop = stop
        self._relayed = False
        self._last: Progress | None = None

    def request_stop(self) -> None:
        """Ask every shard to stop after its tick, keeping its output (a signal handler may
        call this: it sets a flag the shards poll)."""
        self.stop_requested = True
        # A failure to reach a Dask scheduler must not escape a signal handler; the poll
        # tries again.
        with contextlib.suppress(Exception):
            self.control.stop()
            self._relayed = True

    def poll(self, finished: Mapping[int, ShardResult]) -> None:
        """Report progress if it changed, then relay a pending stop (one the progress
        callback asked for included)."""
        if self.on_progress is not None:
            self._report(finished)
        if self.stop is not None and self.stop.is_set():
            self.stop_requested = True
        if self.stop_requested and not self._relayed:
            self.control.stop()
            self._relayed = True

    def _report(self, finished: Mapping[int, ShardResult]) -> None:
        assert self.on_progress is not None
        figures = dict(self.control.progress())
        for k, result in finished.items():
            if result.result is not None:
                figures[k] = (result.result.ticks, result.result.events)
        total = None if self.ticks is None else self.ticks * self.shards
        progress = Progress(
            ticks=sum(t for t, _ in figures.values()),
            events=sum(e for _, e in figures.values()),
            finished=len(finished),
            shards=self.shards,
            total_ticks=total,
            failed=_count(finished, _FAILED),
            stopped=_count(finished, _STOPPED),
        )
        if progress != self._last:
            self._last = progress
            self.on_progress(progress)


def _count(finished: Mapping[int, ShardResult], statuses: frozenset[str]) -> int:
    """How many finished shards have one of `statuses`."""
    return sum(result.status in statuses for result in finished.values())
