"""`Calendar`: which subjects are due to attempt a transition at which tick.

- `Calendar`: the structure itself; `BLOCK_BITS` and `SMALL_TICK` tune it.

Ticks are grouped in blocks of ``2**BLOCK_BITS``. Subjects due in a later block wait in that
block's pair of flat lists (subject, tick); when the clock reaches the block they are sorted
into per-tick arrays in one numpy pass. Subjects due within the current block, or in an
earlier one, go straight to their tick: the current block is the one the calendar last
opened, which can lie ahead of the clock (the walker looks ahead to its next busy tick), and
a subject filed behind it must still come out at its own tick, before the later ones.
Large filings are grouped with numpy (a few calls per tick, whatever the number of
subjects), small ones with a plain loop (no fixed numpy cost), and an empty stretch of ticks
costs nothing. A subject is in the calendar at most once.

`tick_map`, `pending_map` (later blocks, filed one by one; `pending_arrays` holds the large
filings), `heap` and `block` are read and filed into directly by
`dogesim.engine.attempts.Scalar`, the quiet ticks' loop, which inlines `file` for one subject.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

__all__ = ["BLOCK_BITS", "SMALL_TICK", "Calendar"]

#: log2 of the number of ticks in a block.
BLOCK_BITS = 6
#: Filings smaller than this are grouped by a Python loop rather than numpy.
_SMALL = 48
#: Ticks with fewer subjects due than this are handled without numpy (see `take`).
SMALL_TICK = 64


class Calendar:
    """Subjects due per tick, filed in bulk, taken one tick at a time in tick order."""

    def __init__(self) -> None:
        self.block = -1  # the block whose ticks are in `tick_map`
        self.tick_map: dict[int, list[Any]] = {}  # tick -> chunks (arrays or lists of ints)
        self.pending_map: dict[int, tuple[list[int], list[int]]] = {}
        # block -> (subject arrays, tick arrays), from filings of `_SMALL` or more
        self.pending_arrays: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        self.heap: list[int] = []  # blocks pending (a block may be in it twice)

    def __len__(self) -> int:
        """Number of subjects filed and not yet taken."""
        n = sum(len(c) for chunks in self.tick_map.values() for c in chunks)
        n += sum(len(a) for arrays, _ in self.pending_arrays.values() for a in arrays)
        return n + sum(len(s) for s, _ in self.pending_map.values())

    def file(self, subjects: np.ndarray, ticks: np.ndarray) -> None:
        """File ``subjects[k]`` as due at ``ticks[k]``, every tick later than the last taken."""
        n = len(subjects)
        if n == 0:
            return
        if n < _SMALL:
            self._file_small(subjects.tolist(), ticks.tolist())
            return
        self._file_large(subjects, ticks)

    def file_lists(self, subjects: list[int], ticks: list[int]) -> None:
        """`file` for Python lists (the engine's path for quiet ticks)."""
        if len(subjects) < _SMALL:
            self._file_small(subjects, ticks)
        else:
            self._file_large(
                np.asarray(subjects, dtype=np.int64), np.asarray(ticks, dtype=np.int64)
            )

    def _file_large(self, subjects: np.ndarray, ticks: np.ndarray) -> None:
        n = len(subjects)
        blocks = ticks >> BLOCK_BITS
        order = np.argsort(blocks, kind="stable")
        blocks = blocks[order]
        subjects = subjects[order]
        ticks = ticks[order]
        cuts = (np.flatnonzero(blocks[1:] != blocks[:-1]) + 1).tolist()
        starts = [0, *cuts]
        ends = [*cuts, n]
        for block, start, end in zip(blocks[starts].tolist(), starts, ends, strict=True):
            if block <= self.block:
                self._file_current(subjects[start:end], ticks[start:end])
            else:
                # Kept as array slices: no round trip through Python ints for big filings.
                parts = self.pending_arrays.get(block)
                if parts is None:
                    parts = self.pending_arrays[block] = ([], [])
                    heapq.heappush(self.heap, block)  # maybe twice: `next_tick` skips
                parts[0].append(subjects[start:end])
                parts[1].append(ticks[start:end])

    def _file_small(self, subjects: list[int], ticks: list[int]) -> None:
        current = self.block
        tick_map = self.tick_map
        pending_map = self.pending_map
        for subject, tick in zip(subjects, ticks, strict=True):
            block = tick >> BLOCK_BITS
            if block <= current:
                chunks = tick_map.get(tick)
                if chunks is None:
                    tick_map[tick] = [[subject]]
                else:
                    last = chunks[-1]
                    if isinstance(last, list):
                        last.append(subject)
                    else:
                        chunks.append([subject])
            else:
                pending = pending_map.get(block)
                if pending is None:
                    pending_map[block] = ([subject], [tick])
                    heapq.heappush(self.heap, block)
                else:
                    pending[0].append(subject)
                    pending[1].append(tick)

    def _file_current(self, subjects: np.ndarray, ticks: np.ndarray) -> None:
        order = np.argsort(ticks, kind="stable")
        ticks = ticks[order]
        subjects = subjects[order]
        cuts = (np.flatnonzero(ticks[1:] != ticks[:-1]) + 1).tolist()
        starts = [0, *cuts]
        ends = [*cuts, len(ticks)]
        tick_map = self.tick_map
        # Quiet ticks get Python lists (merged and sorted without numpy by `take`).
        small = len(ticks) < SMALL_TICK * len(starts)
        values = subjects.tolist() if small else subjects
        for tick, start, end in zip(ticks[starts].tolist(), starts, ends, strict=True):
            tick_map.setdefault(tick, []).append(values[start:end])

    def next_tick(self) -> int | None:
        """The earliest tick with subjects due, or None when the calendar is empty."""
        while not self.tick_map:
            if not self.heap:
                return None
            block = heapq.heappop(self.heap)
            listed = self.pending_map.pop(block, None)
            parts = self.pending_arrays.pop(block, None)
            if listed is None and parts is None:
                continue  # a block pushed twice (as lists and as arrays), opened already
            self.block = block
            if parts is None:
                assert listed is not None
                subjects, ticks = listed
                if len(subjects) < _SMALL:
                    self._file_small(subjects, ticks)
                    continue
                parts = ([], [])
            if listed is not None:
                parts[0].append(np.asarray(listed[0], dtype=np.int64))
                parts[1].append(np.asarray(listed[1], dtype=np.int64))
            self._file_current(np.concatenate(parts[0]), np.concatenate(parts[1]))
        return min(self.tick_map)

    def has(self, tick: int) -> bool:
        """Whether subjects are due at `tick`, a tick of the block opened last (as the tick
        `next_tick` just returned is)."""
        return tick in self.tick_map

    def take(self, tick: int) -> np.ndarray | list[int]:
        """Remove and return the subjects due at `tick`, sorted: in creation order.

        A tick with fewer than `SMALL_TICK` subjects comes as a list, a busier one as an array.
        """
        chunks = self.tick_map.pop(tick, None)
        if not chunks:
            return []
        if sum(len(c) for c in chunks) < SMALL_TICK and all(isinstance(c, list) for c in chunks):
            due_list: list[int] = chunks[0]
            for chunk in chunks[1:]:
                due_list.extend(chunk)
            due_list.sort()
            return due_list
        due = np.concatenate([np.asarray(c, dtype=np.int64) for c in chunks])
        due.sort()
        return due.tolist() if len(due) < SMALL_TICK else due
