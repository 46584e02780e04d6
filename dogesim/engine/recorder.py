"""`Recorder`: what a run counts per tick, kept at a resolution, and the `RunResult` it builds.

Moves are counted per transition in bins of `record_every` ticks, stored sparsely (only bins
that saw a move, one row of counts each), so memory grows with the busy bins — at most
``ticks / record_every`` — never with ticks x transitions. Vetoes and arrivals are kept as
run totals and per-bin counts. Whole-run totals are exact whatever the resolution. A run
without a tick count starts at one tick per bin and doubles the bins' length (merging pairs)
whenever a tick falls past `MAX_ROWS` bins.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from dogesim.engine.options import MAX_ROWS
from dogesim.model import Model
from dogesim.result import RunResult

__all__ = ["Recorder"]

#: Bins turned into one array at a time when the table is built.
_SLICE = 512


class Recorder:
    """Per-bin counts of moves per transition (in the engine's transition order)."""

    def __init__(self, n_transitions: int, record_every: int | None) -> None:
        self.every = record_every or 1
        self._limit = MAX_ROWS if record_every is None else None  # None: the bins are fixed
        self.n_tr = n_transitions
        self._lists: dict[int, list[int]] = {}  # bin -> moves per transition (Python path)
        self._arrays: dict[int, np.ndarray] = {}  # bin -> moves per transition (numpy path)
        self.vetoes = [0] * n_transitions  # vetoes per transition, counted in place
        self.arrivals: dict[int, int] = {}  # bin -> subjects arrived
        self.entered: dict[int, np.ndarray] = {}  # tick -> newcomers per state (initial mix)
        self._handed_before = np.zeros(n_transitions, dtype=np.int64)

    def _bin(self, tick: int) -> int:
        b = tick // self.every
        if self._limit is not None and b >= self._limit:
            while tick // self.every >= self._limit:
                self._coarsen()
            b = tick // self.every
        return b

    def _coarsen(self) -> None:
        """Double the bins' length: bin ``b`` becomes ``b // 2``."""
        self.every *= 2
        lists: dict[int, list[int]] = {}
        for b, counts in self._lists.items():
            merged = lists.get(b // 2)
            if merged is None:
                lists[b // 2] = counts
            else:
                lists[b // 2] = [x + y for x, y in zip(merged, counts, strict=True)]
        arrays: dict[int, np.ndarray] = {}
        for b, array in self._arrays.items():
            arrays[b // 2] = arrays[b // 2] + array if b // 2 in arrays else array
        arrivals: dict[int, int] = {}
        for b, count in self.arrivals.items():
            arrivals[b // 2] = arrivals.get(b // 2, 0) + count
        self._lists, self._arrays, self.arrivals = lists, arrays, arrivals

    def row(self, tick: int) -> list[int]:
        """The bin of `tick` as a list of counts to add moves to in place."""
        b = self._bin(tick)
        counts = self._lists.get(b)
        if counts is None:
            counts = self._lists[b] = [0] * self.n_tr
        return counts

    def add(self, tick: int, moves: np.ndarray) -> None:
        """Add an array of moves per transition at `tick`."""
        b = self._bin(tick)
        counts = self._arrays.get(b)
        if counts is None:
            self._arrays[b] = moves.astype(np.int64, copy=True)
        else:
            counts += moves

    def enter_states(self, tick: int, counts: np.ndarray) -> None:
        """Count newcomers drawn from an initial mix, per state, at `tick` (-1: the first
        population); then they are not all in the initial state."""
        entered = self.entered
        entered[tick] = entered[tick] + counts if tick in entered else counts

    def arrive(self, tick: int, count: int) -> None:
        """Count `count` subjects arriving at `tick`."""
        b = self._bin(tick)
        self.arrivals[b] = self.arrivals.get(b, 0) + count

    def _mixed(self, occupancy: np.ndarray, initial: int, ticks: int) -> None:
        """Move the newcomers an initial mix drew from the initial state to theirs."""
        for tick, counts in self.entered.items():
            if tick >= ticks:
                continue
            shift = np.asarray(counts, dtype=np.int64).copy()
            shift[initial] -= int(shift.sum())
            occupancy[max(self._bin(tick), 0) :] += shift

    def table(self, ticks: int) -> np.ndarray:
        """Moves per bin and transition over ticks ``0 .. ticks-1``, shape (bins, n_tr)."""
        n_bins = -(-ticks // self.every)
        table = np.zeros((n_bins, self.n_tr), dtype=np.int64)
        for bins, rows in self._rows():
            inside = bins < n_bins
            table[bins[inside]] += rows[inside]  # a bin is once in `bins`: no lost adds
        return table

    def totals(self) -> np.ndarray:
        """Moves per transition recorded so far."""
        total = np.zeros(self.n_tr, dtype=np.int64)
        for _, rows in self._rows():
            total += rows.sum(axis=0)
        return total

    def _rows(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The bins and their rows of counts as arrays, a slice of bins at a time (one numpy
        call per slice rather than per bin; slices keep the copies small)."""
        for counts in (self._lists, self._arrays):
            bins = list(counts)
            for start in range(0, len(bins), _SLICE):
                part = bins[start : start + _SLICE]
                rows = np.array([counts[b] for b in part], dtype=np.int64)
                yield np.asarray(part, dtype=np.int64), rows.reshape(len(part), self.n_tr)

    def mark(self) -> None:
        """Remember the totals so far (a resumed run hands its sinks only what follows)."""
        self._handed_before = self.totals()

    def handed(self) -> np.ndarray:
        """Moves per transition since `mark` (what the sinks of this process were handed)."""
        return self.totals() - self._handed_before

    def result(
        self, model: Model, order_to_model: np.ndarray, initial_subjects: int, **fields: Any
    ) -> RunResult:
        """The `RunResult` of ticks ``0 .. fields['ticks']-1``, columns in model order."""
        ticks = int(fields["ticks"])
        n_tr = self.n_tr
        to_model = np.empty(n_tr, dtype=np.int64)
        to_model[order_to_model] = np.arange(n_tr)
        per_bin = self.table(ticks)[:, to_model]
        vetoes = np.asarray(self.vetoes, dtype=np.int64)[to_model]
        # Each move takes one subject from its state to another: column by column (an
        # integer matrix product has no BLAS and costs bins x transitions x states).
        change = np.zeros((len(per_bin), len(model.states)), dtype=np.int64)
        for j, transition in enumerate(model.transitions):
            moves = per_bin[:, j]
            change[:, model.index(transition.from_state)] -= moves
            change[:, model.index(transition.to_state)] += moves
        initial = model.index(model.initial_state)
        arrived = 0
        for b, count in self.arrivals.items():
            if b < len(change):
                change[b, initial] += count
                arrived += count
        occupancy = np.cumsum(change, axis=0)
        occupancy[:, initial] += initial_subjects
        self._mixed(occupancy, initial, ticks)
        started, came = self._started(len(model.states), initial, initial_subjects, arrived, ticks)
        return RunResult(
            states=model.states,
            transitions=tuple(model.transitions),
            initial_state=model.initial_state,
            occupancy=occupancy,
            events_per_tick=per_bin,
            attempts=per_bin.sum(axis=0) + vetoes,
            vetoes=vetoes,
            arrivals=arrived,
            record_every=self.every,
            initial_counts=started,
            arrival_counts=came,
            **fields,
        )

    def _started(
        self, n_states: int, initial: int, initial_subjects: int, arrived: int, ticks: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Subjects per state at the start, and arrivals per state they arrived in (drawn
        from the initial mix when there is one, else all in the initial state)."""
        started = np.zeros(n_states, dtype=np.int64)
        came = np.zeros(n_states, dtype=np.int64)
        later = [counts for t, counts in self.entered.items() if 0 <= t < ticks]
        if -1 in self.entered or later:  # the mix drew them
            started += self.entered.get(-1, 0)
            for counts in later:
                came += counts
        else:
            started[initial] = initial_subjects
            came[initial] = arrived
        return started, came
