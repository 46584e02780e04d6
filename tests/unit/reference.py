"""The per-tick reference engine and the exact law, kept in the tests as the definition.

- `state_chances`: per state, each outgoing transition's chance per tick of the run (a
  fraction), with rates rescaled **per state** (DESIGN.md §1): the state's total chance per
  period goes to the tick as ``1 - (1 - P) ** (tick / period)`` (or ``1 - exp(-rate * tick)``
  for counts) and is split in proportion to the transitions' values.
- `Reference`: the contract written literally and slowly. Every tick, every subject (in
  creation order, or in the order of its jittered timestamp) draws once from the
  reference's own `random.Random` and attempts at most one transition.
- `ExactLaw`: the per-subject law of the definition (no resources): occupancy after given
  ticks and the mean and variance of events per transition, from products of the per-tick
  matrices (time-varying under calendar profiles), plus the expected arrivals per state.

Conventions the reference shares with the engine (what the contract leaves open):
- tick ``t`` is stamped ``timestamp_start + t * tick_ms``; with jitter a subject's event is
  stamped ``tick start + floor(u * tick_ms)`` and the subjects of a tick attempt in the
  order of their stamps (ties: creation order);
- newcomers of tick ``t`` (Poisson with mean ``rate * profile(t)``) are created before the
  tick's attempts, in the initial state, and already attempt in tick ``t``;
- churn adds a ``churn`` transition, last, from every non-final state to ``churned``;
- a transition with a resource, once its callback agreed, is granted at once when a unit is
  free (the event then, the subject holds it ``hold`` ticks), else queues FIFO; a queued or
  holding subject makes no attempt. At the start of tick ``t`` holds ending at ``t`` are
  released and the queue heads granted (their events come first in the tick, stamped at
  its start); the subject released at ``t`` attempts again from ``t`` on. Grants never
  happen at or after the run's end.
- calendar profiles multiply a chance by ``profile.multiplier(tick start)``.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from dogesim import Model, Profile, Rate, Transition
from dogesim.rates import parse_rate

__all__ = ["CHURNED", "ExactLaw", "Reference", "churn_chance", "cohort_reference", "state_chances"]

#: The final state churn leads to (the engine's name).
CHURNED = "churned"


def _group(transition: Transition, model: Model) -> tuple[str, int | None]:
    """What a chance is measured in: (kind, period in ms); (``"tick"``, None) per run tick."""
    rate = transition.rate
    if rate is not None:
        return rate.kind, rate.period_ms
    if model.tick_ms is not None:
        return "percent", model.tick_ms
    return "tick", None


def _value(transition: Transition) -> float:
    rate = transition.rate
    return float(transition.probability) if rate is None else rate.value


def state_chances(model: Model, tick_ms: int) -> dict[str, list[tuple[Transition, float]]]:
    """Per state, ``(transition, chance per run tick as a fraction)`` in the model's order.

    Rates are rescaled per state: the state's total is rescaled to the tick and split in
    proportion. A state mixing chances of different kinds or periods has no single law
    here and is refused (the tests generate none).
    """
    out: dict[str, list[tuple[Transition, float]]] = {}
    for state in model.states:
        outgoing = model.outgoing(state)
        groups = {_group(t, model) for t in outgoing}
        if len(groups) > 1:
            raise ValueError(f"reference: state {state!r} mixes chances {sorted(map(str, groups))}")
        if not outgoing:
            out[state] = []
            continue
        kind, period = groups.pop()
        values = [_value(t) for t in outgoing]
        total = sum(values)
        if kind == "tick":
            out[state] = [(t, v / 100.0) for t, v in zip(outgoing, values, strict=True)]
            continue
        assert period is not None
        ratio = tick_ms / period
        if kind == "count":
            leave = -math.expm1(-total * ratio)
        else:
            stay = max(1.0 - total / 100.0, 0.0)
            leave = 1.0 if stay == 0.0 else -math.expm1(ratio * math.log(stay))
        split = [leave * v / total if total > 0 else 0.0 for v in values]
        out[state] = list(zip(outgoing, split, strict=True))
    return out


def churn_chance(churn: float | Rate | str, tick_ms: int) -> float:
    """Churn's chance per tick as a fraction (a number is percent per tick)."""
    if isinstance(churn, str):
        churn = parse_rate(churn, "churn")
    if isinstance(churn, Rate):
        return churn.per_tick(tick_ms) / 100.0
    return float(churn) / 100.0


def arrival_rate(arrivals: float | Rate | str | None, tick_ms: int) -> float:
    """Expected newcomers per tick (before any profile)."""
    if arrivals is None:
        return 0.0
    if isinstance(arrivals, str):
        arrivals = parse_rate(arrivals, "arrivals")
    if isinstance(arrivals, Rate):
        return arrivals.value * tick_ms / arrivals.period_ms
    return float(arrivals)


@dataclass
class _Edge:
    """One transition as the reference walks it."""

    transition: Transition
    chance: float  # per tick, a fraction, before the profile
    target: str
    profile: Profile | None = None


@dataclass
class _Pool:
    """A resource: its capacity, who holds a unit until which tick, and the FIFO queue."""

    capacity: int
    holders: dict[int, int] = field(default_factory=dict)  # subject -> release tick
    queue: deque[tuple[int, _Edge]] = field(default_factory=deque)


def _edges(
    model: Model, tick_ms: int, churn: float | Rate | str | None, churn_sinks: Sequence[Any]
) -> tuple[tuple[str, ...], dict[str, list[_Edge]]]:
    """The states (with ``churned`` when churn is on) and each state's edges."""
    chances = state_chances(model, tick_ms)
    edges = {s: [_Edge(t, c, t.to_state, t.profile) for t, c in chances[s]] for s in model.states}
    states = tuple(model.states)
    if churn is None:
        return states, edges
    chance = churn_chance(churn, tick_ms)
    if CHURNED not in states:
        states = (*states, CHURNED)
        edges[CHURNED] = []
    for s in model.states:
        if s != CHURNED and model.outgoing(s):
            transition = Transition("churn", s, CHURNED, 100.0 * chance, event_sinks=churn_sinks)
            edges[s].append(_Edge(transition, chance, CHURNED))
    return states, edges


def _chance_at(edge: _Edge, timestamp: int) -> float:
    if edge.profile is None:
        return edge.chance
    return edge.chance * edge.profile.multiplier(timestamp)


class Reference:
    """The per-tick definition of a run (see the module docstring for its conventions).

    Arguments mirror `dogesim.Simulation`; `rng` replaces the seed when given. `run(until)`
    stops after tick ``until - 1`` and a later `run()` continues (stop/resume); sinks are
    closed once, when the last tick is done or the run fails.
    """

    def __init__(
        self,
        model: Model,
        subjects: int | Sequence[Any],
        *,
        ticks: int,
        tick_ms: int,
        subject_factory: Callable[[], Any] | None = None,
        timestamp_start: int = 0,
        seed: int = 0,
        rng: random.Random | None = None,
        jitter: bool = False,
        arrivals: float | Rate | str | None = None,
        arrivals_profile: Profile | None = None,
        churn: float | Rate | str | None = None,
        churn_sinks: Sequence[Any] = (),
        on_tick: Callable[[int, list[str]], None] | None = None,
    ) -> None:
        self.ticks = ticks
        self.tick_ms = tick_ms
        self.timestamp_start = timestamp_start
        self.rng = rng if rng is not None else random.Random(seed)
        self.jitter = jitter
        self.arrival_rate = arrival_rate(arrivals, tick_ms)
        self.arrivals_profile = arrivals_profile
        self.on_tick = on_tick
        self.states, self.edges = _edges(model, tick_ms, churn, churn_sinks)
        self.initial = model.initial_state
        self.factory = subject_factory or (lambda: SimpleNamespace(id=len(self.subjects)))
        self.subjects: list[Any] = []
        if isinstance(subjects, int):
            for _ in range(subjects):
                self.subjects.append(self.factory())
        else:
            self.subjects = list(subjects)
        self.state = [self.initial] * len(self.subjects)
        self.pools = {name: _Pool(cap) for name, cap in model.resources.items()}
        self.busy: set[int] = set()  # queueing for or holding a resource
        self.sinks = list(
            {id(s): s for e in self._all_edges() for s in e.transition.event_sinks}.values()
        )
        self.next_tick = 0
        self.closed = False
        #: Events per trigger so far.
        self.events: dict[str, int] = {}

    def _all_edges(self) -> list[_Edge]:
        return [e for edges in self.edges.values() for e in edges]

    def subject_states(self) -> list[str]:
        """Every subject's state, in creation order."""
        return list(self.state)

    def run(self, until: int | None = None) -> None:
        """Run ticks ``next_tick .. until - 1`` (to the end by default)."""
        end = self.ticks if until is None else min(until, self.ticks)
        try:
            while self.next_tick < end:
                self._tick(self.next_tick)
                self.next_tick += 1
        except BaseException:
            self._close()
            raise
        if self.next_tick >= self.ticks:
            self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                close()

    # -- one tick ----------------------------------------------------------------------------

    def _tick(self, t: int) -> None:
        start = self.timestamp_start + t * self.tick_ms
        self._release(t, start)
        self._arrive(start)
        free = [i for i in range(len(self.subjects)) if i not in self.busy]
        stamps = dict.fromkeys(free, start)
        if self.jitter:
            for i in free:
                stamps[i] = start + math.floor(self.rng.random() * self.tick_ms)
            free.sort(key=lambda i: stamps[i])  # stable: ties keep creation order
        for i in free:
            self._attempt(i, t, stamps[i])
        if self.on_tick is not None:
            self.on_tick(t, self.state)

    def _release(self, t: int, start: int) -> None:
        """Free the units whose hold ends at `t`, then grant the queue heads."""
        for pool in self.pools.values():
            for i in [i for i, until in pool.holders.items() if until == t]:
                del pool.holders[i]
                self.busy.discard(i)
            while pool.queue and len(pool.holders) < pool.capacity:
                i, edge = pool.queue.popleft()
                self._grant(pool, i, edge, t, start)

    def _arrive(self, start: int) -> None:
        rate = self.arrival_rate
        if self.arrivals_profile is not None:
            rate *= self.arrivals_profile.multiplier(start)
        for _ in range(_poisson(self.rng, rate)):
            self.subjects.append(self.factory())
            self.state.append(self.initial)

    def _attempt(self, i: int, t: int, stamp: int) -> None:
        u = self.rng.random()
        cumulative = 0.0
        for edge in self.edges[self.state[i]]:
            cumulative += _chance_at(edge, self.timestamp_start + t * self.tick_ms)
            if u < cumulative:
                break
        else:
            return  # stays: no attempt this tick
        transition = edge.transition
        callback = transition.action_callback
        if callback is not None and not callback(self.subjects[i], transition):
            return  # vetoed
        if transition.resource is None:
            self._move(i, edge, stamp)
            return
        pool = self.pools[transition.resource]
        self.busy.add(i)
        if len(pool.holders) < pool.capacity:
            self._grant(pool, i, edge, t, stamp)
        else:
            pool.queue.append((i, edge))

    def _grant(self, pool: _Pool, i: int, edge: _Edge, t: int, stamp: int) -> None:
        hold = edge.transition.hold
        ticks = hold(self.subjects[i], edge.transition) if callable(hold) else hold
        pool.holders[i] = t + int(ticks)
        self._move(i, edge, stamp)

    def _move(self, i: int, edge: _Edge, stamp: int) -> None:
        self.state[i] = edge.target
        trigger = edge.transition.trigger
        self.events[trigger] = self.events.get(trigger, 0) + 1
        for sink in edge.transition.event_sinks:
            sink.collect(stamp, self.subjects[i], edge.transition)


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw by counting unit-rate exponential gaps (exact for any mean)."""
    if mean <= 0:
        return 0
    count, elapsed = 0, rng.expovariate(1.0)
    while elapsed < mean:
        count += 1
        elapsed += rng.expovariate(1.0)
    return count


class ExactLaw:
    """The per-subject law of the definition (vetoes with fixed chances, no resources).

    Args:
        model, tick_ms, timestamp_start, churn: as for the run.
        veto: per trigger, the chance that its callback vetoes an attempt.
    """

    def __init__(
        self,
        model: Model,
        tick_ms: int,
        *,
        timestamp_start: int = 0,
        churn: float | Rate | str | None = None,
        veto: dict[str, float] | None = None,
    ) -> None:
        self.states, edges = _edges(model, tick_ms, churn, ())
        self.index = {s: k for k, s in enumerate(self.states)}
        self.initial = self.index[model.initial_state]
        self.tick_ms = tick_ms
        self.timestamp_start = timestamp_start
        veto = veto or {}
        self.keys = [(s, e.transition.trigger) for s in self.states for e in edges[s]]
        self._edges = [e for s in self.states for e in edges[s]]
        self._source = np.asarray([self.index[s] for s, _ in self.keys], dtype=np.int64)
        self._target = np.asarray([self.index[e.target] for e in self._edges], dtype=np.int64)
        self._keep = np.asarray([1.0 - veto.get(e.transition.trigger, 0.0) for e in self._edges])
        self._profiled = [k for k, e in enumerate(self._edges) if e.profile is not None]
        self._cache: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}

    def at(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(``P_t``, ``q_t``): the tick's state matrix and each transition's event chance
        from its source state."""
        ts = self.timestamp_start + t * self.tick_ms
        key = tuple(self._edges[k].profile.key(ts) for k in self._profiled)  # type: ignore[union-attr]
        cached = self._cache.get(key)
        if cached is None:
            attempt = np.asarray([_chance_at(e, ts) for e in self._edges])
            q = attempt * self._keep
            n = len(self.states)
            matrix = np.zeros((n, n))
            np.add.at(matrix, (self._source, self._target), q)
            matrix[np.arange(n), np.arange(n)] += 1.0 - matrix.sum(axis=1)
            cached = self._cache[key] = (matrix, q)
        return cached

    def occupancy(self, ticks: int, checks: Sequence[int]) -> dict[int, np.ndarray]:
        """For a subject attempting from tick 0: its state distribution after each check."""
        pi = np.zeros(len(self.states))
        pi[self.initial] = 1.0
        out: dict[int, np.ndarray] = {}
        wanted = set(checks)
        for t in range(ticks):
            pi = pi @ self.at(t)[0]
            if t in wanted:
                out[t] = pi.copy()
        return out

    def arrivals(self, ticks: int, rate: float, profile: Profile | None) -> np.ndarray:
        """Expected newcomers per state after the last tick (each count is Poisson)."""
        mass = np.zeros(len(self.states))
        for t in range(ticks):
            lam = rate * (
                profile.multiplier(self.timestamp_start + t * self.tick_ms) if profile else 1
            )
            mass[self.initial] += lam
            mass = mass @ self.at(t)[0]
        return mass

    def events(self, ticks: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of one subject's number of events per transition (`keys`).

        The second moment sums ``E[B_s (1 + 2 * later_s)]`` over ticks ``s``: an event of
        transition i at ``s`` leaves the subject in its target, from which ``g_s`` (computed
        backward) is the expected number of later events of i."""
        n, m = len(self.states), len(self._edges)
        before = np.zeros((ticks, n))
        pi = np.zeros(n)
        pi[self.initial] = 1.0
        for t in range(ticks):
            before[t] = pi
            pi = pi @ self.at(t)[0]
        mean = np.zeros(m)
        second = np.zeros(m)
        later = np.zeros((n, m))  # g_s[x, i]: expected events of i after tick s, from x
        columns = np.arange(m)
        for s in range(ticks - 1, -1, -1):
            matrix, q = self.at(s)
            rate = before[s, self._source] * q
            mean += rate
            second += rate * (1.0 + 2.0 * later[self._target, columns])
            step = matrix @ later
            step[self._source, columns] += q
            later = step
        return mean, second - mean**2


# -- cohort features: kernels, chance tables, calendar ticks -------------------------------


def cohort_reference(
    model: Model,
    subjects: int,
    ticks: int,
    seed: int,
    *,
    stamps: Callable[[int], int] | None = None,
) -> list[tuple[int, int, str, str]]:
    """The per-tick definition of kernels and chance tables, walked literally: (subject,
    timestamp, from, to) of every move, tick by tick, subjects in creation order.

    Written as hazards, independently of the engine's "draw the length first": a subject
    whose stay in a kernel state has lasted ``l - 1`` attempts leaves at attempt ``l`` with
    chance ``w(l) / sum_{k >= l} w(k)``, to a destination drawn from the kernel's shares at
    ``l`` (its first stay, from tick 0, by the ``first`` kernel); elsewhere it takes
    transition ``i`` with chance ``p_i(t)`` per tick: the table's value at the tick's month
    and the subject's age ``t``, else the probability. Initial states are drawn from the
    mix. `stamps(t)` is tick ``t``'s timestamp (default ``1000 t``); no callbacks, sinks,
    resources, delays or arrivals.
    """
    from dogesim.laws import StayKernel
    from dogesim.varying import month_of

    rng = random.Random(seed)
    stamp = stamps or (lambda t: 1000 * t)
    names = list(model.initial_mix)
    weights = [model.initial_mix[n] for n in names]
    state = [rng.choices(names, weights)[0] for _ in range(subjects)]
    attempts = [0] * subjects  # attempts made in the current stay
    first = [True] * subjects
    out: list[tuple[int, int, str, str]] = []
    for t in range(ticks):
        ts = stamp(t)
        for i in range(subjects):
            here = state[i]
            law = model.dwell.get(here)
            attempts[i] += 1
            if isinstance(law, StayKernel):
                kernel = law.first if first[i] and law.first is not None else law
                to = _kernel_step(kernel, model, here, attempts[i], rng)
            else:
                to = _table_step(model, here, month_of(ts), t, rng)
            if to is not None:
                out.append((i, ts, here, to.to_state))
                state[i], attempts[i], first[i] = to.to_state, 0, False
    return out


def _kernel_step(
    kernel: Any, model: Model, state: str, length: int, rng: random.Random
) -> Transition | None:
    """Attempt `length` of a kernel stay: the transition it ends with, or None."""
    shares = dict(zip(kernel.lengths, kernel.weights, strict=True))
    rest = sum(w for k, w in shares.items() if k >= length)
    if length not in shares or rng.random() * rest >= shares[length]:
        return None
    row = kernel.row(length)
    pick = rng.choices(range(len(row)), row)[0]
    destination = kernel.destinations[pick]
    outgoing = model.outgoing(state)
    for t in outgoing:
        if t.trigger == destination:
            return t
    return next(t for t in outgoing if t.to_state == destination)


def _table_step(
    model: Model, state: str, month: int, age: int, rng: random.Random
) -> Transition | None:
    """One tick's attempt by the chances at this month and age: a transition or None."""
    u, edge = rng.random(), 0.0
    for t in model.outgoing(state):
        p = (t.chances.at(month, age) if t.chances is not None else t.probability) / 100.0
        if edge <= u < edge + p:
            return t
        edge += p
    return None
