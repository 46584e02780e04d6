"""`Services`: subjects whose transition needs a SimPy resource queue for it, move when
granted, hold it, and are filed back for their next attempt.

Each such subject gets a SimPy process and an entry ``[seq, subject, transition, tick asked,
tick granted, ticks held]`` (what a checkpoint saves). Any failure in a grant — ``hold()``
raising or returning nonsense, a sink raising, KeyboardInterrupt — is handed to
`Walker.fail`, which ends the run at once.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from dogesim.errors import ModelError
from dogesim.model import Transition

if TYPE_CHECKING:
    from dogesim.engine.walker import Walker

__all__ = ["Services"]


class Services:
    """The resource processes of one run."""

    def __init__(self, walker: Walker) -> None:
        self.walker = walker
        self.entries: dict[int, list[Any]] = {}  # subject -> its entry
        self.active = 0
        self.seq = 0

    def serve(self, subject: int, j: int, t: int) -> None:
        """Start the process of `subject`, which must acquire transition `j`'s resource."""
        self.seq += 1
        self._start([self.seq, subject, j, t, None, None])

    def grant_now(self, subject: int, j: int, t: int) -> int | None:
        """Grant transition `j`'s resource to `subject` at its attempt in tick `t` when a
        unit is free and nobody queues: returns the ticks it holds it (the caller makes the
        move there and then, in creation order), or None when it must queue (`serve`)."""
        resource = self.walker.tables.resource_of[j]
        assert resource is not None
        if resource.count >= resource.capacity or resource.queue:
            return None
        hold = self._hold(subject, self.walker.tables.order[j])
        request = resource.request()  # a unit is free: SimPy grants it at once
        self.seq += 1
        self._start([self.seq, subject, j, t, t, hold], request)
        return hold

    def _start(
        self, entry: list[Any], request: simpy.resources.resource.Request | None = None
    ) -> None:
        self.entries[entry[1]] = entry
        self.active += 1
        self.walker.env.process(self._service(entry, request))

    def saved(self) -> list[list[Any]]:
        """The entries in the order they were made (for a checkpoint)."""
        return sorted(self.entries.values(), key=lambda s: s[0])

    def restart(self, saved: list[list[Any]]) -> None:
        """Start again the processes a checkpoint saved: holders first (they had their
        units), then the queue, each in its original order."""
        holders = sorted((s for s in saved if s[4] is not None), key=lambda s: s[0])
        queue = sorted((s for s in saved if s[4] is None), key=lambda s: s[0])
        for entry in (*holders, *queue):
            self._start(list(entry))
        self.seq = max((s[0] for s in saved), default=0)

    def _service(
        self, entry: list[Any], granted_request: simpy.resources.resource.Request | None = None
    ) -> Generator[simpy.events.Event, Any, None]:
        """Queue for the resource, move when granted, hold it, file back.

        When the entry's grant tick is already set (a resumed holder, or one granted at its
        attempt with `granted_request`), the move has happened and only the rest of the hold
        remains."""
        walker = self.walker
        _, i, j, _, granted, _ = entry
        resource = walker.tables.resource_of[j]
        assert resource is not None
        try:
            with granted_request or resource.request() as request:
                yield request
                if walker.failure is not None:
                    return
                if granted is None:
                    granted = math.ceil(walker.env.now - walker.origin - 1e-9)
                    if granted >= walker.horizon:
                        return
                    entry[4] = granted
                    entry[5] = self._grant(i, j, granted)
                remaining = walker.origin + granted + entry[5] - walker.env.now
                if remaining > 0:
                    yield walker.env.timeout(remaining)
        except BaseException as exc:
            walker.fail(exc)
        finally:
            self.entries.pop(i, None)
            self.active -= 1
            walker.wake()

    def _hold(self, i: int, transition: Transition) -> int:
        hold = transition.hold
        if not callable(hold):
            return int(hold)
        drawn = hold(self.walker.population.subjects[i], transition)
        if isinstance(drawn, bool) or not isinstance(drawn, Integral) or drawn < 1:
            raise ModelError(
                f"{self.walker.tables.model.name}: transition {transition.trigger!r}: hold() "
                f"returned {drawn!r}; it must return a whole number of ticks >= 1"
            )
        return int(drawn)

    def _grant(self, i: int, j: int, granted: int) -> int:
        """The move of subject `i` granted its resource at tick `granted`; returns the ticks
        it holds the resource."""
        walker = self.walker
        transition = walker.tables.order[j]
        hold = self._hold(i, transition)
        target = walker.tables.to_list[j]
        walker.population.states[i] = target
        ts = walker.timestamp_start + granted * walker.tick_ms
        if walker.jitter:
            # Keep every sink's stream in timestamp order: a grant never goes before the
            # jittered events of its tick already sent.
            ts = max(ts, walker.last_stamp)
            walker.last_stamp = ts
        subject = walker.population.subjects[i]
        for collect in walker.tables.collectors[j]:
            collect(ts, subject, transition)
        walker.recorder.row(granted)[j] += 1
        # The next attempt comes after the hold, as after any move.
        walker.file(
            np.asarray([i], dtype=np.int64),
            np.asarray([target], dtype=np.int64),
            granted + hold - 1,
        )
        walker.wake()
        return hold
