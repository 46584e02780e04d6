"""`Population`: the subjects of a run and the state each is in.

The states live in one `array('i')` buffer with a numpy view of it: `array` indexing is fast
for the per-subject path, the view for bulk gathers and scatters. Subjects are any objects
(hashable or not), identified by their position in creation order.
"""

from __future__ import annotations

import gc
from array import array
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

__all__ = ["Population", "default_subject"]


def default_subject() -> SimpleNamespace:
    """The subject a run makes when it has no factory (arrivals need one)."""
    return SimpleNamespace()


class Population:
    """Subjects in creation order, their states, and how newcomers are made."""

    def __init__(self, factory: Callable[[], Any] | None) -> None:
        self.factory = factory
        self.subjects: list[Any] = []
        self.states: array[int] = array("i")
        self.view: np.ndarray = np.empty(0, dtype=np.intc)
        self._taken = False  # whether `subjects` is the caller's first list (see `add`)

    def make(self, count: int) -> list[Any]:
        """`count` new subjects from the factory (``SimpleNamespace(id=i)`` without one)."""
        # Creating a population only allocates: the cyclic garbage collector would scan the
        # growing heap again and again for nothing (a third of the time for 1M subjects).
        collecting = gc.isenabled()
        gc.disable()
        try:
            if self.factory is not None:
                factory = self.factory
                return [factory() for _ in range(count)]
            start = len(self.subjects)
            return [SimpleNamespace(id=start + i) for i in range(count)]
        finally:
            if collecting:
                gc.enable()

    def add(self, subjects: list[Any], state: int) -> int:
        """Append `subjects`, all in `state` (the first list is kept, not copied: pass a
        list of your own); return the position of the first."""
        start = len(self.subjects)
        # The numpy view pins the buffer: drop it, grow the array, view it again.
        self.view = np.empty(0, dtype=np.intc)
        if start == 0 and not self._taken:
            # The first population: take it as is (no second copy at its peak). Only once:
            # the run holds this list, so newcomers after an empty start extend it.
            self._taken = True
            self.subjects = subjects
            self.states = array("i", [state]) * len(subjects)
        else:
            self.subjects.extend(subjects)
            self.states.extend(array("i", [state]) * len(subjects))
        self.view = np.frombuffer(self.states, dtype=np.intc)
        return start

    def restore(self, subjects: list[Any], states: array[int]) -> None:
        """Take the subjects and states a checkpoint saved."""
        self.subjects = subjects
        self._taken = True
        self.states = states
        self.view = np.frombuffer(self.states, dtype=np.intc)
