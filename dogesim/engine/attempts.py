"""What the subjects due at one tick do: choose, run callbacks, move, feed sinks, file again.

- `tick(walker, t, due)`: the entry point; a list of few subjects (and no jitter) takes the
  plain-Python path `Scalar.run` (which may go on through the quiet ticks after it), a
  busier tick the vectorised `tick_vector`.
- `Scalar`: the plain-Python path, its tables bound once per run.

Sinks with ``collect_many`` get a tick's events in one call at its end
(`dogesim.engine.batching`); the others get ``collect`` per event, in the loop.

Both paths draw the same uniforms in the same order — the choices for every due subject, then
their waits — and make the same choices (a transition is the count of thresholds <= u, by
bisection in Python), so the stream does not depend on which path a tick takes.
"""

from __future__ import annotations

import heapq
import math
import time
from bisect import bisect_right
from typing import TYPE_CHECKING, Any

import numpy as np

from dogesim.engine import clock, kernel, scheduler
from dogesim.engine.options import MAX_TICKS
from dogesim.engine.scheduler import BLOCK_BITS

if TYPE_CHECKING:
    from dogesim.engine.batching import Routes
    from dogesim.engine.walker import Walker

__all__ = ["Scalar", "tick", "tick_vector"]


def tick(walker: Walker, t: int, due: np.ndarray | list[int]) -> tuple[int, bool]:
    """Handle the subjects `due` at tick `t` (sorted: creation order); returns the last
    tick handled (`Scalar.run` may go on through quiet ticks) and whether the run stopped."""
    clock.NOW[0] = walker.timestamp_start + t * walker.tick_ms
    if walker.tables.semi is not None:
        walker.tables.semi.tick(walker, t, [int(i) for i in due])
    elif isinstance(due, list) and not walker.jitter:
        return walker.scalar.run(t, due)
    else:
        tick_vector(walker, t, np.asarray(due, dtype=np.int64))
    return t, False


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
    # Only moves with a callback, a per-event sink or a resource need Python, one subject
    # at a time; batch sinks get theirs after the tick's callbacks (`_feed_batches`).
    routes = walker.routes
    python = routes.python_array[chosen]
    if run is None:
        if not python.all():
            run = np.flatnonzero(python)
    else:
        run = run[python[run]]
    try:
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
    except BaseException:
        if routes.all:
            _feed_prefix(walker, t, due, chosen, attempting, run)
        raise
    if run is not None:
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
    if routes.all:
        _feed_batches(walker, t, due, chosen, moved)
    for k in deferred:
        walker.services.serve(int(due[k]), int(chosen[k]), t)
    walker.file(due, targets, t, deferred, held)


def _feed_prefix(
    walker: Walker,
    t: int,
    due: np.ndarray,
    chosen: np.ndarray,
    attempting: np.ndarray,
    run: np.ndarray | None,
) -> None:
    """`_dispatch` failed at one of its subjects (`Routes.partial`): hand the batch sinks
    the tick's moves before that subject, as the per-event path would have delivered them."""
    partial = walker.routes.partial
    walker.routes.partial = None
    if partial is None:
        return
    failed, vetoed, deferred = partial
    positions = np.arange(len(due)) if run is None else run
    moved = attempting.copy()
    if failed < len(positions):
        moved[int(positions[failed]) :] = False
    for k in (*vetoed, *deferred):
        moved[int(positions[k])] = False
    _feed_batches(walker, t, due, chosen, moved)


def _feed_batches(
    walker: Walker, t: int, due: np.ndarray, chosen: np.ndarray, moved: np.ndarray
) -> None:
    """Hand each batch sink the tick's moves along its transitions, in creation order."""
    subjects, order = walker.population.subjects, walker.tables.order
    ts = walker.timestamp_start + t * walker.tick_ms
    compiled = kernel.native()
    if compiled is not None:  # the lists in one pass in C, the loop below's twin
        due, chosen = due.astype(np.int64, copy=False), chosen.astype(np.int64, copy=False)
        moved = moved.astype(bool, copy=False)
        for batch, mask in zip(walker.routes.all, walker.routes.masks, strict=True):
            picked, transitions = compiled.gather(subjects, order, due, chosen, moved, mask)
            if picked:
                batch.many(ts, picked, transitions)
        return
    for batch, mask in zip(walker.routes.all, walker.routes.masks, strict=True):
        times = np.where(moved, mask[chosen], 0)
        picked = np.flatnonzero(times)
        if len(picked) == 0:
            continue
        if times.max() > 1:  # a sink listed twice on a transition gets its events twice
            picked = np.repeat(picked, times[picked])
        batch.many(
            ts,
            list(map(subjects.__getitem__, due[picked].tolist())),
            list(map(order.__getitem__, chosen[picked].tolist())),
        )


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


class Scalar:
    """The plain-Python path for quiet ticks, with the run's tables bound once.

    `run` handles one tick and, when the walker may move the clock itself (`Walker.stretch`:
    no resources, arrivals, pacing, jitter or other SimPy events), the quiet busy ticks
    after it in the same loop, filing subjects straight into the calendar: a quiet tick then
    costs a few dictionary operations besides its subjects' own work."""

    def __init__(self, walker: Walker) -> None:
        self.walker = walker
        tables = walker.tables
        self.small = scheduler.SMALL_TICK  # read per run: tests force either path with it
        invlog = tables.invlog_list
        # Per transition, `Routes.plan` and the wait factor of its target state.
        self.plan = [(*entry, invlog[entry[3]]) for entry in walker.routes.plan]

    def rows(self, thresholds: list[list[float]]) -> list[tuple[list[float], int, int, Any]]:
        """Per state, what an attempt from it reads first, in one tuple: its choice
        thresholds (`thresholds`, the tick's), first transition, number of transitions and
        wait factor (`Tables.invlog_list`)."""
        tables = self.walker.tables
        return list(
            zip(thresholds, tables.first_list, tables.n_out_list, tables.invlog_list, strict=True)
        )

    def run(self, t: int, due: list[int]) -> tuple[int, bool]:
        """Handle tick `t`, whose subjects `due` are sorted, and the quiet ticks after it
        that `Walker.stretch` allows; returns the last tick handled and whether the run
        stopped there (then the walker's duties after it are done)."""
        walker, tables = self.walker, self.walker.tables
        plan, collectors, batches = self.plan, walker.routes.collectors, walker.routes.batches
        calendar, uniforms, recorder = walker.calendar, walker.uniforms, walker.recorder
        tick_map, pending_map, heap = calendar.tick_map, calendar.pending_map, calendar.heap
        routes, env = walker.routes, walker.env
        draw_choice, profiled = tables.draw_choice, tables.profiled
        thresholds = tables.threshold_lists
        rows = self.rows(thresholds)
        resource_of = tables.resource_of if tables.has_resources else None
        vetoes, every = recorder.vetoes, recorder.every
        state, subjects = walker.population.states, walker.population.subjects
        start, tick_ms, horizon, log1p = (
            walker.timestamp_start,
            walker.tick_ms,
            walker.horizon,
            math.log1p,
        )
        stretch, small, peek, inf, origin = (
            walker.stretch,
            self.small,
            env.peek,
            math.inf,
            walker.origin,
        )
        bits, list_type = BLOCK_BITS, list
        # The C twin of the attempts loop below, for runs without resources.
        compiled = kernel.native() if resource_of is None and horizon <= MAX_TICKS else None
        row_end = -1
        events: list[int] = []
        ts = start + t * tick_ms
        try:
            while True:
                ts = clock.NOW[0] = start + t * tick_ms
                if t >= row_end:
                    events = recorder.row(t)
                    row_end = (t // every + 1) * every
                n_due = len(due)
                if draw_choice:
                    draws = uniforms.take(2 * n_due)  # the choices, then the waits
                    waits = draws[n_due:]
                    if profiled and tables.choice(ts)[1] is not thresholds:
                        thresholds = tables.choice(ts)[1]  # a new hour of the profiles
                        rows = self.rows(thresholds)
                else:
                    draws = waits = uniforms.take(n_due)  # no choice to draw: `u` goes unused
                beyond = (calendar.block + 1) << bits  # the first tick past the open block
                after = t + 1
                if compiled is not None and due.__class__ is list_type:
                    compiled.tick(
                        due,
                        draws,
                        waits,
                        rows,
                        plan,
                        collectors,
                        batches,
                        events,
                        vetoes,
                        state,
                        subjects,
                        ts,
                        after,
                        horizon,
                        beyond,
                        bits,
                        tick_map,
                        pending_map,
                        heap,
                        draw_choice,
                    )
                else:
                    for i, u, w in zip(due, draws, waits):  # noqa: B905 - `draws` may be longer
                        row, base, n_out, inv = rows[state[i]]
                        local = bisect_right(row, u) if draw_choice else 0
                        # Ticks a resource is held after the move: the next attempt comes after.
                        held = 0
                        if local < n_out:  # else thinned away by a calendar profile: no attempt
                            j = base + local
                            transition, callback, one, target, target_inv = plan[j]
                            if callback is not None and not callback(subjects[i], transition):
                                vetoes[j] += 1
                            else:
                                if resource_of is not None and resource_of[j] is not None:
                                    hold = walker.services.grant_now(i, j, t)
                                    if hold is None:
                                        walker.services.serve(i, j, t)
                                        continue  # filed again once the resource is granted
                                    held = hold - 1
                                if one is not None:
                                    one(ts, subjects[i], transition)
                                else:
                                    for collect in collectors[j]:
                                        collect(ts, subjects[i], transition)
                                    for batch in batches[j]:
                                        batch.subjects.append(subjects[i])
                                        batch.transitions.append(transition)
                                events[j] += 1
                                state[i] = target
                                inv = target_inv
                        if inv is None:
                            continue  # never moves again
                        due_at = after + held + (int(log1p(-w) * inv) if inv else 0)
                        if due_at >= horizon:
                            continue
                        # File the subject at `due_at` (`Calendar.file` of one subject, inlined).
                        if due_at < beyond:
                            chunks = tick_map.get(due_at)
                            if chunks is None:
                                tick_map[due_at] = [[i]]
                            elif chunks[-1].__class__ is list_type:
                                chunks[-1].append(i)
                            else:
                                chunks.append([i])
                        else:
                            block = due_at >> bits
                            waiting = pending_map.get(block)
                            if waiting is None:
                                pending_map[block] = ([i], [due_at])
                                heapq.heappush(heap, block)
                            else:
                                waiting[0].append(i)
                                waiting[1].append(due_at)
                if routes.all:
                    routes.flush(ts)
                if not stretch:
                    return t, False
                # The next busy tick, if it is quiet too and nothing else is scheduled in SimPy.
                if tick_map:
                    nxt = after if after in tick_map else min(tick_map)
                else:
                    found = calendar.next_tick()
                    if found is None:
                        return t, False
                    nxt = found
                if nxt >= horizon or peek() != inf:
                    return t, False
                chunks = tick_map[nxt]
                if len(chunks) == 1:
                    due = chunks[0]
                    if due.__class__ is not list or len(due) >= small:
                        return t, False
                elif sum(len(c) for c in chunks) >= small or not all(
                    c.__class__ is list for c in chunks
                ):
                    return t, False
                else:
                    due = [i for c in chunks for i in c]
                if walker.after_tick(t):
                    return t, True
                del tick_map[nxt]
                due.sort()
                t = nxt
                env._now = origin + t

        except BaseException:
            # A callback or a per-event sink failed inside tick t: the batch sinks get
            # the tick's events before it, as they would have one by one.
            if routes.all:
                routes.flush(ts)
            raise


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
    tables, routes = walker.tables, walker.routes
    if not due:
        return vetoed, deferred, held
    subjects = walker.population.subjects
    callbacks, collectors, order = tables.callbacks, routes.collectors, tables.order
    resource_of = tables.resource_of if tables.has_resources else None
    ts = walker.timestamp_start + t * walker.tick_ms
    if stamps is None and resource_of is None:
        compiled = kernel.native()
        run_plain = _run_plain if compiled is None else compiled.run_plain
        vetoed = run_plain(due, chosen, subjects, routes.plan, routes, ts)
        return vetoed, deferred, held
    pace = stamps is not None and walker.live.enabled
    k = 0
    try:
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
    except BaseException:
        routes.partial = (k, vetoed, deferred)  # where it failed, for the batch sinks
        raise
    return vetoed, deferred, held


def _run_plain(
    due: list[int],
    chosen: list[int],
    subjects: list[Any],
    plan: list[tuple[Any, Any, Any, int]],
    routes: Routes,
    ts: int,
) -> list[int]:
    """`_dispatch` for the common tick (one timestamp, no resources), in its tightest loop;
    returns the positions vetoed."""
    vetoed: list[int] = []
    collectors = routes.collectors
    pairs = zip(map(subjects.__getitem__, due), chosen, map(plan.__getitem__, chosen), strict=True)
    k = 0
    try:
        for k, (subject, j, (transition, callback, one, _)) in enumerate(pairs):
            if callback is None or callback(subject, transition):
                if one is not None:
                    one(ts, subject, transition)
                else:
                    for collect in collectors[j]:
                        collect(ts, subject, transition)
            else:
                vetoed.append(k)
    except BaseException:
        routes.partial = (k, vetoed, [])  # where it failed, for the batch sinks
        raise
    return vetoed


def _pace(walker: Walker, ts: int) -> None:
    """Live and jittered: each event leaves at its own moment in the tick."""
    offset_ms = ts - walker.timestamp_start
    delay = walker.wall0 + offset_ms / 1000 / walker.live.speed - time.monotonic()
    if delay > 0.0005:
        time.sleep(delay)
    walker.last_intended_ms = offset_ms
