"""The peer of the fine-tick benchmark: a plain `heapq` event loop with dogesim's semantics.

- `run_peer(model, subjects, ...)`: walks `subjects` through `model` tick by tick as the
  contract defines it, paying per attempt; returns a `PeerResult`.
- `PeerResult`: attempts, vetoes, moves and sink deliveries of the run.

What a good engineer writes in an afternoon for this problem. One heap entry per subject,
``(tick of its next attempt, subject index)``, so within a tick subjects come in creation
order. A subject in state s attempts with probability ``P_s`` per tick, so its wait is
geometric, drawn once: ``floor(ln U / ln(1 - P_s))``. Calendar profiles are sampled by
thinning: ``P_s`` is taken at the profiles' peaks, and at the attempt a uniform picks
transition i with probability ``p_i * m_i(t) / P_s`` or nothing (the rest). The thresholds
are rebuilt when the hour changes (profiles change by the hour). A callback's falsy result
vetoes the move; a move calls each of its sinks' ``collect(timestamp, subject, transition)``.
It reads the model through its public attributes only and shares no code with the engine.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dogesim.model import Model, Transition

__all__ = ["PeerResult", "run_peer"]

_HOUR_MS = 3_600_000


@dataclass
class PeerResult:
    """What a peer run did: draws thinned away by a profile (no attempt), attempts made,
    vetoed, moves done and `collect` calls made."""

    thinned: int = 0
    attempts: int = 0
    vetoes: int = 0
    moves: int = 0
    delivered: int = 0


@dataclass
class _State:
    """One state, compiled: its transitions and the chance per tick that it attempts one."""

    transitions: list[Transition]
    targets: list[int]
    peak: float  # chance per tick of an attempt, profiles at their peaks
    log_stay: float  # ln(1 - peak); 0.0 when it never moves, -inf when it always does


def _compile(model: Model) -> list[_State]:
    index = {name: k for k, name in enumerate(model.states)}
    compiled = []
    for name in model.states:
        outgoing = list(model.outgoing(name))
        peak = sum(t.probability / 100 * (t.profile.peak if t.profile else 1.0) for t in outgoing)
        if peak > 1 + 1e-9:
            raise ValueError(f"state {name!r}: {peak:.3%} per tick at the profiles' peaks")
        log_stay = 0.0 if peak <= 0 else -math.inf if peak >= 1 else math.log1p(-peak)
        targets = [index[t.to_state] for t in outgoing]
        compiled.append(_State(outgoing, targets, peak, log_stay))
    return compiled


def _thresholds(states: list[_State], timestamp: int) -> list[list[float]]:
    """Per state, the cumulative chance of its transitions at `timestamp`, over its peak."""
    tables = []
    for state in states:
        cumulative, row = 0.0, []
        for t in state.transitions:
            factor = t.profile.multiplier(timestamp) if t.profile else 1.0
            cumulative += t.probability / 100 * factor
            row.append(cumulative / state.peak if state.peak > 0 else 2.0)
        if row and not any(t.profile for t in state.transitions):
            row[-1] = 1.0  # no thinning: the last transition takes what rounding leaves
        tables.append(row)
    return tables


def _wait(log_stay: float, rng: random.Random) -> int:
    """Quiet ticks before the next attempt: geometric, from one uniform."""
    if log_stay == -math.inf:
        return 0
    return int(math.log(1.0 - rng.random()) / log_stay)


def run_peer(
    model: Model,
    subjects: Sequence[Any],
    *,
    ticks: int,
    tick_ms: int,
    timestamp_start: int = 0,
    seed: int = 0,
) -> PeerResult:
    """Run `subjects` (all starting in the initial state) through `model` for `ticks` ticks.

    Profiles must change on whole UTC hours (whole-hour offsets), as the thresholds are kept
    per hour.
    """
    model = model.at_tick(tick_ms)
    for t in model.transitions:
        if t.profile is not None and not float(t.profile.utc_offset_hours).is_integer():
            raise ValueError(f"{t.trigger!r}: the peer needs whole-hour profile offsets")
    states = _compile(model)
    rng = random.Random(seed)
    result = PeerResult()
    initial = model.states.index(model.initial_state)
    where = [initial] * len(subjects)
    heap: list[tuple[int, int]] = []
    if states[initial].log_stay != 0.0:
        heap = [(_wait(states[initial].log_stay, rng), i) for i in range(len(subjects))]
        heapq.heapify(heap)
    hour, tables = None, _thresholds(states, timestamp_start)
    while heap and heap[0][0] < ticks:
        tick, i = heap[0]
        timestamp = timestamp_start + tick * tick_ms
        if timestamp // _HOUR_MS != hour:
            hour = timestamp // _HOUR_MS
            tables = _thresholds(states, timestamp)
        s = where[i]
        state = states[s]
        k = bisect_right(tables[s], rng.random())
        if k < len(state.transitions):  # else thinned away by a profile
            result.attempts += 1
            transition = state.transitions[k]
            callback = transition.action_callback
            if callback is not None and not callback(subjects[i], transition):
                result.vetoes += 1
            else:
                result.moves += 1
                for sink in transition.event_sinks:
                    sink.collect(timestamp, subjects[i], transition)
                    result.delivered += 1
                s = where[i] = state.targets[k]
                state = states[s]
        else:
            result.thinned += 1
        if state.log_stay == 0.0:
            heapq.heappop(heap)  # a state it never leaves
        else:
            heapq.heapreplace(heap, (tick + 1 + _wait(state.log_stay, rng), i))
    return result
