"""What the subjects due at one tick do: choose, run callbacks, move, feed sinks, file again.

- `tick(walker, t, due)`: the entry point; a list of few subjects (and no jitter) takes the
  plain-Python path `tick_scalar`, a busier tick the vectorised `tick_vector`.

Both paths draw the same uniforms in the same order — the choices for every due subject, then
their waits — and make the same choices (a transition is the count of thresholds <= u, by
bisection in Python), so the stream does not depend on which path a tick takes.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from typing import TYPE_CHECKING, Any

import numpy as np

from dogesim.engine import clock

if TYPE_CHECKING:
    from dogesim.engine.walker import Walker

__all__ = ["tick", "tick_scalar", "tick_vector"]


def tick(walker: Walker, t: int, due: np.ndarray | list[int]) -> None:
    """Handle the subjects `due` at tick `t` (sorted: creation order)."""
    clock.NOW[0] = walker.timestamp_start + t * walker.tick_ms
    if walker.tables.semi is not None:
        walker.tables.semi.tick(walker, t, [int(i) for i in due])
        return
    if isinstance(due, list) and not walker.jitter:
        tick_scalar(walker, t, due)
    else:
        tick_vector(walker, t, np.asarray(due, dtype=np.int64))


def tick_vector(walker: Walker, t: int, due: np.ndarray) -> None:
    """`tick` in numpy: choices, moves and counts for all due subjects at once."""
    tables = walker.tables
    n_due = len(due)
    thresholds, _ = tables.choice(walker.timestamp_start + t * walker.tick_ms)
    states = walker.population.view[due]
    local = np.zeros(n_due, dtype=np.int64)
    if tables.draw_choice:
        u = walker.rng.random(n_due)
        local = (thresholds[states] <= u[:, None]).sum(axis=1)
    attempting = local < tables.n_out[states]  # False: thinned away, no attempt
    chosen = tables.first[states] + np.where(attempting, local, 0)
    run, stamps = _attempt_order(walker, t, attempting, n_due)
    # Only moves with a callback, a sink or a resource need Python, one subject at a time.
    python = tables.python_array[chosen]
    if run is None:
        if not python.all():
            run = np.flatnonzero(python)
    else:
        run = run[python[run]]
    if run is None:
        vetoed, deferred, held = _dispatch(walker, t, due.tolist(), chosen.tolist(), None)
    else:
        vetoed, deferred, held = _dispatch(
            walker,
            t,
            due[run].tolist(),
            chosen[run].tolist(),
            None if stamps is None else stamps[run].tolist(),
        )
        vetoed = run[vetoed].tolist() if vetoed else []
        deferred = run[deferred].tolist() if deferred else []
        held = {int(run[k]): extra for k, extra in held.items()}
    moved = attempting.copy()
    if vetoed:
        moved[vetoed] = False
        vetoes = walker.recorder.vetoes  # counted in place
        for j in chosen[vetoed].tolist():
            vetoes[j] += 1
    if deferred:
        moved[deferred] = False
    targets = np.where(moved, tables.to[chosen], states)
    walker.population.view[due] = targets
    walker.recorder.add(t, np.bincount(chosen[moved], minlength=len(tables.order)))
    for k in deferred:
        walker.services.serve(int(due[k]), int(chosen[k]), t)
    walker.file(due, targets, t, deferred, held)


def _attempt_order(
    walker: Walker, t: int, attempting: np.ndarray, n_due: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Who attempts, in which order (None: everyone, in creation order), and with jitter
    the timestamps: everyone not thinned away, with jitter in timestamp order in the tick."""
    if walker.jitter:
        offsets = (walker.rng.random(n_due) * walker.tick_ms).astype(np.int64)
        stamps = offsets + (walker.timestamp_start + t * walker.tick_ms)
        walker.last_stamp = max(walker.last_stamp, int(stamps.max()))
        run = np.argsort(offsets, kind="stable")
        return run[attempting[run]], stamps
    if not attempting.all():
        return np.flatnonzero(attempting), None
    return None, None


def tick_scalar(walker: Walker, t: int, due: list[int]) -> None:
    """`tick` for a few subjects, in one plain-Python pass (numpy's fixed cost per call
    outweighs its speed on short arrays)."""
    tables = walker.tables
    n_due = len(due)
    if tables.draw_choice:
        uniforms = walker.uniforms.take(2 * n_due)  # the choices, then the waits
        draws: list[float] | None = uniforms[:n_due]
        waits = uniforms[n_due:]
        thresholds = tables.choice(walker.timestamp_start + t * walker.tick_ms)[1]
    else:
        draws, waits, thresholds = None, walker.uniforms.take(n_due), []
    state, subjects = walker.population.states, walker.population.subjects
    first, n_out, to, invlog = (
        tables.first_list,
        tables.n_out_list,
        tables.to_list,
        tables.invlog_list,
    )
    callbacks, collectors, order = tables.callbacks, tables.collectors, tables.order
    resource_of = tables.resource_of if tables.has_resources else None
    events = walker.recorder.row(t)
    vetoes = walker.recorder.vetoes
    ts = walker.timestamp_start + t * walker.tick_ms
    after, horizon, log1p = t + 1, walker.horizon, math.log1p
    filed: list[int] = []
    ticks: list[int] = []
    for k, i in enumerate(due):
        s = state[i]
        local = bisect_right(thresholds[s], draws[k]) if draws is not None else 0
        held = 0  # ticks a resource is held after the move: the next attempt comes after
        if local < n_out[s]:  # else thinned away by a calendar profile: no attempt
            j = first[s] + local
            transition = order[j]
            callback = callbacks[j]
            if callback is not None and not callback(subjects[i], transition):
                vetoes[j] += 1
            else:
                if resource_of is not None and resource_of[j] is not None:
                    hold = walker.services.grant_now(i, j, t)
                    if hold is None:
                        walker.services.serve(i, j, t)
                        continue  # filed again once the resource is granted
                    held = hold - 1
                for collect in collectors[j]:
                    collect(ts, subjects[i], transition)
                events[j] += 1
                s = state[i] = to[j]
        inv = invlog[s]
        if inv is not None:
            due_at = after + held + (int(log1p(-waits[k]) * inv) if inv else 0)
            if due_at < horizon:
                filed.append(i)
                ticks.append(due_at)
    walker.calendar.file_lists(filed, ticks)


def _dispatch(
    walker: Walker, t: int, due: list[int], chosen: list[int], stamps: list[int] | None
) -> tuple[list[int], list[int], dict[int, int]]:
    """Run callbacks and feed sinks, subject by subject.

    Returns the positions vetoed by their callback, the positions deferred because their
    transition must first queue for a resource, and the positions granted one at once, with
    the ticks their next attempt waits for the hold to end."""
    vetoed: list[int] = []
    deferred: list[int] = []
    held: dict[int, int] = {}
    tables = walker.tables
    if not any(tables.python[j] for j in set(chosen)):
        return vetoed, deferred, held
    subjects = walker.population.subjects
    callbacks, collectors, order = tables.callbacks, tables.collectors, tables.order
    resource_of = tables.resource_of if tables.has_resources else None
    ts = walker.timestamp_start + t * walker.tick_ms
    if stamps is None and resource_of is None:
        vetoed = _run_plain(due, chosen, subjects, callbacks, collectors, order, ts)
        return vetoed, deferred, held
    pace = stamps is not None and walker.live.enabled
    for k, (i, j) in enumerate(zip(due, chosen, strict=True)):
        if stamps is not None:
            ts = clock.NOW[0] = stamps[k]
            if pace:
                _pace(walker, ts)
        callback = callbacks[j]
        subject = subjects[i]
        transition = order[j]
        if callback is not None and not callback(subject, transition):
            vetoed.append(k)
            continue
        if resource_of is not None and resource_of[j] is not None:
            hold = walker.services.grant_now(i, j, t)
            if hold is None:
                deferred.append(k)
                continue
            held[k] = hold - 1
        for collect in collectors[j]:
            collect(ts, subject, transition)
    return vetoed, deferred, held


def _run_plain(
    due: list[int],
    chosen: list[int],
    subjects: list[Any],
    callbacks: list[Any],
    collectors: list[tuple[Any, ...]],
    order: list[Any],
    ts: int,
) -> list[int]:
    """`_dispatch` for the common tick (one timestamp, no resources), in its tightest loop;
    returns the positions vetoed."""
    vetoed: list[int] = []
    for k, i in enumerate(due):
        j = chosen[k]
        callback = callbacks[j]
        if callback is None or callback(subjects[i], order[j]):
            for collect in collectors[j]:
                collect(ts, subjects[i], order[j])
        else:
            vetoed.append(k)
    return vetoed


def _pace(walker: Walker, ts: int) -> None:
    """Live and jittered: each event leaves at its own moment in the tick."""
    offset_ms = ts - walker.timestamp_start
    delay = walker.wall0 + offset_ms / 1000 / walker.live.speed - time.monotonic()
    if delay > 0.0005:
        time.sleep(delay)
    walker.last_intended_ms = offset_ms
