"""A per-tick reference implementation of the semantics contract, kept as a test oracle.

It is the definition, written as plainly as possible: every tick, every subject in creation
order draws once; with probability ``p_i / 100`` it attempts transition ``i`` (in the order
the transitions were added), runs the callback, and on success moves and feeds the sinks.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from dogesim import Model


def run_per_tick(
    model: Model,
    subjects: list[Any],
    ticks: int,
    tick_ms: int,
    rng: random.Random,
    timestamp_start: int = 0,
    on_tick: Callable[[int, list[str]], None] | None = None,
) -> dict[str, int]:
    """Run the per-tick definition; return events per trigger."""
    state = [model.initial_state] * len(subjects)
    events: dict[str, int] = {}
    for t in range(ticks):
        ts = timestamp_start + t * tick_ms
        for i, subject in enumerate(subjects):
            r = rng.random() * 100.0
            cumulative = 0.0
            for transition in model.outgoing(state[i]):
                cumulative += transition.probability
                if r < cumulative:
                    callback = transition.action_callback
                    if callback is None or callback(subject, transition):
                        state[i] = transition.to_state
                        events[transition.trigger] = events.get(transition.trigger, 0) + 1
                        for sink in transition.event_sinks:
                            sink.collect(ts, subject, transition)
                    break
        if on_tick is not None:
            on_tick(t, state)
    return events
