"""The per-tick batch path: a tick's events handed to each batch-capable sink in one call.

- `Batch`: one sink's ``collect_many`` and the (subject, transition) pairs of the tick so far.
- `Routes`: per transition, which sinks take its events one by one (``collect``) and which
  in the tick's batch (`Batch`), and whether an attempt needs Python at all.

A sink that defines ``collect_many(timestamp, subjects, transitions)``
(`dogesim.sinks.base.batch_collector`) gets it called once per tick in which it has events,
with those events in the order the per-event path would have given them; it means exactly
``collect`` per pair. Batching is on for ticks whose events share one timestamp: not with
jitter, not in live runs (they pace events in real time), and not with ``batch=False``.
A sink then sees a subject after all of the tick's callbacks have run (a model whose
callbacks change *other* subjects opts out with ``batch=False``). The semi-Markov path and
resource grants made after their tick keep ``collect``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dogesim.sinks.base import batch_collector

if TYPE_CHECKING:
    from dogesim.engine.tables import Tables

__all__ = ["Batch", "Routes"]


class Batch:
    """One batch-capable sink's events of the tick in progress."""

    __slots__ = ("many", "subjects", "transitions")

    def __init__(self, many: Callable[[int, Sequence[Any], Sequence[Any]], None]) -> None:
        self.many = many
        self.subjects: list[Any] = []
        self.transitions: list[Any] = []

    def flush(self, timestamp: int) -> None:
        """Hand the tick's events to the sink (fresh lists: the sink may keep the ones it got)."""
        subjects, transitions = self.subjects, self.transitions
        if subjects:
            self.subjects, self.transitions = [], []
            self.many(timestamp, subjects, transitions)


class Routes:
    """Where each transition's events go (see the module docstring).

    Attributes:
        collectors: per transition, the ``collect`` methods called event by event.
        batches: per transition, the `Batch` es its events join, in the sinks' order.
        single: per transition, its only sink's ``collect`` when it has one sink, taken
            event by event (the common case, called without a loop); else None.
        all: every `Batch` of the run, flushed at the end of each tick.
        python: per transition, whether an attempt needs the per-event Python loop
            (a callback, a resource or a per-event sink), as a list and as an array.
        plan: per transition, what an attempt along it reads, in one tuple (one lookup in
            the hot loops): the transition, its callback, its `single` collect, its target.
        masks: per `Batch` in `all`, an array over transitions: how often each feeds it.
    """

    def __init__(self, tables: Tables, enabled: bool) -> None:
        by_sink: dict[int, Batch] = {}
        self.collectors: list[tuple[Any, ...]] = []
        self.batches: list[tuple[Batch, ...]] = []
        for transition in tables.order:
            one_by_one: list[Any] = []
            batched: list[Batch] = []
            for sink in transition.event_sinks:
                many = batch_collector(sink) if enabled else None
                if many is None:
                    one_by_one.append(sink.collect)
                    continue
                batch = by_sink.get(id(sink))
                if batch is None:
                    batch = by_sink[id(sink)] = Batch(many)
                batched.append(batch)  # a sink listed twice gets the event twice, as per event
            self.collectors.append(tuple(one_by_one))
            self.batches.append(tuple(batched))
        self.all: list[Batch] = list(by_sink.values())
        #: Set when the per-event loop of a numpy tick fails: (position, vetoed, deferred).
        self.partial: tuple[int, list[int], list[int]] | None = None
        self.single: list[Any] = [
            c[0] if len(c) == 1 and not b else None
            for c, b in zip(self.collectors, self.batches, strict=True)
        ]
        n = len(tables.order)
        self.python: list[bool] = [
            bool(tables.callbacks[j] is not None or self.collectors[j] or tables.resource_of[j])
            for j in range(n)
        ]
        self.plan: list[tuple[Any, Any, Any, int]] = list(
            zip(tables.order, tables.callbacks, self.single, tables.to_list, strict=True)
        )
        self.python_array = np.asarray(self.python, dtype=bool).reshape(n)
        self.masks = [
            np.asarray([self.batches[j].count(b) for j in range(n)], dtype=np.int64).reshape(n)
            for b in self.all
        ]

    def flush(self, timestamp: int) -> None:
        """Hand every batch sink its events of the tick that ends now."""
        for batch in self.all:
            if batch.subjects:
                batch.flush(timestamp)
