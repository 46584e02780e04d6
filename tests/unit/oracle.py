"""The per-tick oracle of the older tests: a thin front of `tests.unit.reference.Reference`.

- `run_per_tick`: run the per-tick definition over given subjects with a given
  `random.Random`; return events per trigger.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from dogesim import Model
from tests.unit.reference import Reference


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
    reference = Reference(
        model,
        subjects,
        ticks=ticks,
        tick_ms=tick_ms,
        rng=rng,
        timestamp_start=timestamp_start,
        on_tick=on_tick,
    )
    reference.run()
    return reference.events
