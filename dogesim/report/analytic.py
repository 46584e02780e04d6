"""The analytic side: a model as a discrete-time Markov chain, one step per tick.

- `transition_matrix(model)`: the per-tick matrix ``P`` (rows sum to 1; the stay probability
  on the diagonal), from `Model.transition_matrix`.
- `occupancy_probabilities(model, ticks)`: the state distribution after each tick's moves,
  ``pi0 @ P**(t+1)`` for row ``t`` — the engine's convention for `RunResult.occupancy`.
- `expected_occupancy(model, ticks, subjects)` and `occupancy_band(...)`: expected counts and
  a band of ``z`` binomial standard deviations around them.
- `analytic_occupancy_frame(...)`: expected counts as a DataFrame with the run's time index.
- `stationary_distribution(model)`: the long-run distribution reached from the initial state.
- `describe(model)`: the matrix, the stationary distribution and mean ticks per state visit.
- `initial_distribution(model)`: the initial mix as a vector.
- `chain_of_result(result)`: the chain a run walked (its mix, chances and delay laws).
- `approximations(model, semi_markov=False)`: why the analytic line is only an
  approximation of a model (dwell and delay laws unless the line is semi-Markov, per-subject
  rates, calendar profiles), in words.
- `semi_markov_occupancy(model, ticks, start, clock=None)`: expected subjects per state
  when states have dwell laws and moves delay laws, exactly (ages expanded into phases),
  with calendar profiles weighed in when the run's clock is given; None when the expansion
  would be too much work (`MAX_WORK`).
- `expected_counts(model, ticks, start)`: expected subjects per state from the counts
  `start` per state (e.g. a run's `RunResult.started()`): semi-Markov when the model has
  laws, else the chain; and `expected_band(...)`, its binomial band.

The semi-Markov line follows the engine's rules (`dogesim.engine.dwell`): after a move the
next attempt comes after the move's delay law, else the state's dwell law (at an attempt the
move is chosen in proportion to the chances), else the geometric law of the chances; a stay
kernel gives both the stay's length and, given the length, its destination (a first stay
its own kernel when there is one). Chance tables by month or age are not followed (the
chain is drawn then, and `approximations` says so). A
state's time since entry is expanded into one phase per tick of its law (up to where the
law's tail is below 1e-12), so the chain of phases is Markov and ``start @ M_0 ... M_t`` is
exact, up to vetoes and per-subject rates (the matrices ``M_t`` change with the profiles'
multipliers at tick ``t``).

An approximation, stated plainly: callbacks may veto attempts (the subject stays), and the
matrix cannot know how often they will, so with vetoing callbacks the chain overstates the
moves they guard. Use ``build_model(callbacks=False)`` / the bare chain for exact checks, or
compare with `tables.transition_table` veto rates. Subjects move independently, so the count
in state ``s`` after tick ``t`` is binomial: ``n * pi_t[s]`` on average with variance
``n * pi_t[s] * (1 - pi_t[s])``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dogesim.laws import Law, StayKernel
from dogesim.model import Model, Transition
from dogesim.rates import profiled_peak
from dogesim.report.tables import time_index
from dogesim.result import RunResult

__all__ = [
    "MAX_WORK",
    "analytic_occupancy_frame",
    "approximations",
    "chain_of_result",
    "describe",
    "expected_band",
    "expected_counts",
    "expected_occupancy",
    "initial_distribution",
    "occupancy_band",
    "occupancy_probabilities",
    "semi_markov_occupancy",
    "stationary_distribution",
    "too_long",
    "transition_matrix",
    "uses_semi_markov",
]


def transition_matrix(model: Model) -> np.ndarray:
    """The per-tick matrix ``P[i, j]``: probability to be in state j after one tick in i."""
    return np.asarray(model.transition_matrix(), dtype=float)


def chain_of_result(result: RunResult) -> Model:
    """The chain a run walked: its states, the initial mix it drew, its transitions'
    probabilities and delay laws, nothing else (no callbacks, sinks or profiles; a result
    does not carry dwell laws: pass the model itself where it has some)."""
    mix = result.initial_mix() or result.initial_state
    model = Model(result.states, mix, name="run")
    for t in result.transitions:
        model.add_transition(t.trigger, t.from_state, t.to_state, t.probability, delay=t.delay)
    return model


def initial_distribution(model: Model) -> np.ndarray:
    """The distribution at the start: the initial mix (everyone in the initial state when
    the model has one)."""
    pi0 = np.zeros(len(model.states))
    for state, share in model.initial_mix.items():
        pi0[model.index(state)] += share
    return pi0


def approximations(model: Model, *, semi_markov: bool = False, profiles: bool = False) -> list[str]:
    """Why the analytic line of `model` is only an approximation (empty: it is exact, up to
    callback vetoes), one sentence per reason; `semi_markov`: the line is
    `semi_markov_occupancy`'s, exact for dwell and delay laws; `profiles`: it weighs the
    calendar profiles in (it was given the run's clock)."""
    notes = []
    kernels, tables = _beyond_phases(model)
    if kernels and (not semi_markov or tables):
        notes.append(
            f"states {_some(kernels)} have stay kernels (length and destination); the line "
            "stands for them with geometric stays of the same per-tick chances"
        )
    if tables:
        notes.append(
            f"transitions {_some(tables)} have chance tables by month or age; the line uses "
            "each table's mean chance"
        )
    plain_dwell = [s for s in model.dwell if s not in kernels]
    if (not semi_markov or kernels or tables) and plain_dwell:
        notes.append(
            f"states {_some(plain_dwell)} have dwell-time laws; the chain stands for "
            "them with geometric stays of the same per-tick chances"
        )
    delayed = [t.trigger for t in model.transitions if t.delay is not None]
    if delayed and (not semi_markov or kernels or tables):
        notes.append(f"transitions {_some(delayed)} have delay laws, which the chain ignores")
    scaled = [t.trigger for t in model.transitions if t.rate_attribute]
    if scaled:
        notes.append(
            f"transitions {_some(scaled)} scale with a subject attribute; the chain uses their "
            "chances unscaled (attribute 1)"
        )
    if any(t.profile is not None for t in model.transitions) and not (semi_markov and profiles):
        notes.append("calendar profiles are ignored: the chain uses the chances as given")
    return notes


def _beyond_phases(model: Model) -> tuple[list[str], list[str]]:
    """The states with stay kernels and the transitions with chance tables; the phase line
    follows kernels (`kernels` is for the chain's notes) but not tables (it then falls back
    to the chain)."""
    kernels = [s for s, law in model.dwell.items() if isinstance(law, StayKernel)]
    tables = [t.trigger for t in model.transitions if getattr(t, "chances", None) is not None]
    return kernels, tables


def _some(names: list[str], limit: int = 6) -> str:
    """Distinct names, quoted, the first `limit` of them and how many more."""
    distinct = list(dict.fromkeys(names))
    shown = ", ".join(repr(n) for n in distinct[:limit])
    more = len(distinct) - limit
    return f"{shown} and {more} more" if more > 0 else shown


def occupancy_probabilities(
    model: Model, ticks: int, initial: np.ndarray | None = None, *, every: int = 1
) -> np.ndarray:
    """The state distribution after each tick's moves, shape ``(ticks, states)``; with
    `every` > 1 after the last tick of each row of `every` ticks (as `RunResult` records a
    long run), shape ``(ceil(ticks / every), states)``.

    Row ``t`` is ``pi0 @ P**(t + 1)``: the distribution after tick ``t``'s moves, matching
    the engine's `RunResult.occupancy` (which records counts after each tick's moves).

    Args:
        model: the chain.
        ticks: how many ticks.
        initial: the starting distribution (everyone in the initial state when omitted).
        every: ticks per row (the run's `RunResult.record_every`).
    """
    matrix = transition_matrix(model)
    pi = initial_distribution(model) if initial is None else np.asarray(initial, dtype=float)
    rows = -(-ticks // every)
    step = np.linalg.matrix_power(matrix, every) if every > 1 else matrix
    out = np.empty((rows, len(model.states)))
    for r in range(rows):
        if (r + 1) * every > ticks:  # a last, shorter row
            pi = pi @ np.linalg.matrix_power(matrix, ticks - r * every)
        else:
            pi = pi @ step
        out[r] = pi
    return out


def expected_occupancy(model: Model, ticks: int, subjects: int, *, every: int = 1) -> np.ndarray:
    """Expected subjects per state after each tick's (or row's) moves: ``subjects * pi_t``."""
    return subjects * occupancy_probabilities(model, ticks, every=every)


def occupancy_band(
    model: Model, ticks: int, subjects: int, z: float = 3.0, *, every: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)``: ``n pi_t -/+ z sqrt(n pi_t (1 - pi_t))`` per tick (or row) and state.

    Each count is binomial (subjects move independently), so a simulated occupancy falls
    outside the band at a given tick and state with probability of about
    ``2 * (1 - Phi(z))`` (for ``n pi_t`` not too small). The band is clipped to the counts
    that can happen, ``0 .. n``.
    """
    probs = occupancy_probabilities(model, ticks, every=every)
    mean = subjects * probs
    sd = np.sqrt(subjects * probs * (1.0 - probs))
    return np.clip(mean - z * sd, 0, subjects), np.clip(mean + z * sd, 0, subjects)


def analytic_occupancy_frame(
    model: Model,
    *,
    ticks: int,
    subjects: int,
    tick_ms: int,
    timestamp_start: int = 0,
) -> pd.DataFrame:
    """Expected subjects per state after each tick's moves, with the run's time index."""
    return pd.DataFrame(
        expected_occupancy(model, ticks, subjects),
        index=time_index(timestamp_start, tick_ms, ticks),
        columns=pd.Index(list(model.states), name="state"),
    )


def stationary_distribution(
    model: Model, initial: np.ndarray | None = None, *, tol: float = 1e-13
) -> np.ndarray:
    """The long-run distribution reached from the initial state.

    When the chain has a single closed class (the usual case) this is its unique stationary
    distribution ``pi = pi P``, solved as a linear system. Otherwise (absorbing or several
    closed classes) it is the limit of ``(1/T) sum_t pi0 P^t`` from `initial`, computed by
    repeated squaring of the lazy chain ``(I + P) / 2``, which has the same limit and is
    aperiodic.
    """
    matrix = transition_matrix(model)
    n = matrix.shape[0]
    system = np.vstack([matrix.T - np.eye(n), np.ones((1, n))])
    rhs = np.zeros(n + 1)
    rhs[-1] = 1.0
    if np.linalg.matrix_rank(matrix.T - np.eye(n)) == n - 1:
        pi, *_ = np.linalg.lstsq(system, rhs, rcond=None)
        pi = np.clip(pi, 0.0, None)
        return pi / pi.sum()
    lazy = 0.5 * (np.eye(n) + matrix)
    start = initial_distribution(model) if initial is None else np.asarray(initial, dtype=float)
    power = lazy
    previous = start @ power
    for _ in range(200):
        power = power @ power
        current = start @ power
        if np.abs(current - previous).max() < tol:
            break
        previous = current
    return current


def describe(model: Model) -> dict[str, Any]:
    """The chain at a glance: matrix, stationary distribution and expected holding times."""
    matrix = transition_matrix(model)
    stay = np.diag(matrix)
    with np.errstate(divide="ignore"):
        holding = np.where(stay < 1.0, 1.0 / (1.0 - stay), np.inf)
    return {
        "states": list(model.states),
        "matrix": matrix,
        "stationary": stationary_distribution(model),
        "mean_ticks_in_state": holding,
        "approximations": approximations(model),
    }


# -- the semi-Markov line: dwell and delay laws, exactly -----------------------------------

#: The most (matrix entries x ticks) the semi-Markov line steps through; beyond it the
#: functions fall back to the chain (and `approximations` says so).
MAX_WORK = 2e8
#: A law's tail beyond this is folded into its last phase.
_TAIL = 1e-12
#: The longest law (in ticks) expanded into phases.
_MAX_PHASES = 1 << 20


def _end_hazards(law: Law) -> np.ndarray | None:
    """Per age ``a = 0 .. A-1`` (ticks since entry), the chance that the wait ends at the
    next tick given it has not ended yet; the last is 1. None: the law is too long."""
    kmax = 16
    while 1.0 - law.cdf(float(kmax)) > _TAIL:
        kmax *= 2
        if kmax > _MAX_PHASES:
            return None
    pmf = law.pmf(kmax)
    positive = np.flatnonzero(pmf > 0)
    pmf = pmf[: int(positive[-1]) + 1] if len(positive) else pmf[:1]
    survival = 1.0 - np.concatenate(([0.0], np.cumsum(pmf)[:-1]))
    hazard = np.divide(pmf, survival, out=np.ones_like(pmf), where=survival > _TAIL)
    hazard[-1] = 1.0
    return np.clip(hazard, 0.0, 1.0)


#: The clock of a line under calendar profiles: (timestamp of tick 0, tick length in ms).
Clock = tuple[int, int]
#: Where the end of a wait leads: (phase, chance) pairs, or a function of the age giving them.
Ending = list[tuple[int, float]] | Callable[[int], list[tuple[int, float]]]


def _destination(outgoing: list[Transition], destination: str) -> int:
    """The position among `outgoing` of a kernel's destination: a trigger, else the one
    transition leading to that state (the model checked it when it was built)."""
    for k, t in enumerate(outgoing):
        if t.trigger == destination:
            return k
    return next(k for k, t in enumerate(outgoing) if t.to_state == destination)


class _Phases:
    """The chain of phases of a model: each state, or each age of a state with a dwell law
    or of a move with a delay law, is one phase; `step` moves a vector one tick.

    Under calendar profiles (with a `clock`) the chances of a tick are weighed by their
    profiles' multipliers at its timestamp, as the engine does: a geometric state moves by
    ``p m(t)`` per tick; a dwell or delay that ends picks a move in proportion to ``p m(t)``
    (none of them possible: a new wait); a delay ending in a geometric state moves with
    ``p m(t) / peak`` (the thinning of the state's peak chance) and else waits geometrically.
    """

    def __init__(self, model: Model, clock: Clock | None = None) -> None:
        self.model = model
        self.clock = clock if any(t.profile is not None for t in model.transitions) else None
        self.owner: list[int] = []  # the state each phase belongs to
        self.too_long = False
        self.entry: dict[str, int] = {}  # state -> the phase a plain move enters
        self.after_delay: dict[int, int] = {}  # transition position -> its first delay phase
        self.dwell_hazards: dict[str, np.ndarray] = {}
        self.delay_hazards: dict[int, np.ndarray] = {}
        # stay kernels: the first-stay block of a state whose kernel has one
        self.first_entry: dict[str, int] = {}
        self.first_hazards: dict[str, np.ndarray] = {}
        self.outgoing: dict[str, list[int]] = {s: [] for s in model.states}
        for j, t in enumerate(model.transitions):
            self.outgoing[t.from_state].append(j)
        self._profiles = list(
            {id(t.profile): t.profile for t in model.transitions if t.profile}.values()
        )
        self._edges: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._allocate()
        if not self.too_long:
            self._owner = np.asarray(self.owner, dtype=np.int64)
            self.size = len(self._connect(None)[0])

    def _new(self, state: str, count: int) -> int:
        first = len(self.owner)
        self.owner.extend([self.model.index(state)] * count)
        return first

    def _allocate(self) -> None:
        model = self.model
        for state in model.states:
            law = model.dwell.get(state) if self.outgoing[state] else None
            hazards = _end_hazards(law) if law is not None else None
            if law is not None and hazards is None:
                self.too_long = True
                return
            if hazards is not None:
                self.dwell_hazards[state] = hazards
            self.entry[state] = self._new(state, 1 if hazards is None else len(hazards))
            first = law.first if isinstance(law, StayKernel) else None
            if first is not None:
                first_hazards = _end_hazards(first)
                if first_hazards is None:
                    self.too_long = True
                    return
                self.first_hazards[state] = first_hazards
                self.first_entry[state] = self._new(state, len(first_hazards))
        for j, t in enumerate(model.transitions):
            if t.delay is None:
                continue
            hazards = _end_hazards(t.delay)
            if hazards is None:
                self.too_long = True
                return
            self.delay_hazards[j] = hazards
            self.after_delay[j] = self._new(t.to_state, len(hazards))

    def _target(self, j: int) -> int:
        """The phase the move `j` leads to."""
        delayed = self.after_delay.get(j)
        return delayed if delayed is not None else self.entry[self.model.transitions[j].to_state]

    def _chances(self, state: str, ts: int | None) -> list[tuple[int, float]]:
        """The per-tick chance of each move from `state` at `ts` (profiles weighed in)."""
        out = []
        for j in self.outgoing[state]:
            t = self.model.transitions[j]
            factor = t.profile.multiplier(ts) if t.profile is not None and ts is not None else 1.0
            out.append((j, t.probability / 100.0 * factor))
        return out

    def _ending(self, state: str, ts: int | None, *, thinned: bool) -> list[tuple[int, float]]:
        """Where an attempt that ends a wait in `state` leads: in proportion to the chances
        (all zero: a new wait), or, `thinned`, each move by its chance over the state's
        peak and the rest to the state's geometric phase."""
        chances = self._chances(state, ts)
        total = math.fsum(c for _, c in chances)
        if thinned and ts is not None:
            # The engine thins from the state's largest total at any moment (`engine.tables`).
            outgoing = [self.model.transitions[j] for j in self.outgoing[state]]
            peak = profiled_peak((t.probability / 100.0, t.profile) for t in outgoing)[0]
            if peak > 0:
                moves = [(self._target(j), c / peak) for j, c in chances]
                return [*moves, (self.entry[state], max(1.0 - total / peak, 0.0))]
        if total <= 0:
            return [(self.entry[state], 1.0)]
        return [(self._target(j), c / total) for j, c in chances]

    def _kernel_ending(
        self, state: str, kernel: StayKernel
    ) -> Callable[[int], list[tuple[int, float]]]:
        """Where a kernel stay ending at age `a` (a stay of ``a + 1`` ticks) leads: its
        destinations' shares at that length (none when the length has no weight)."""
        outgoing = [self.model.transitions[j] for j in self.outgoing[state]]
        targets = [
            self._target(self.outgoing[state][_destination(outgoing, d)])
            for d in kernel.destinations
        ]
        lengths = set(kernel.lengths)

        def ending(age: int) -> list[tuple[int, float]]:
            if age + 1 not in lengths:
                return []
            return list(zip(targets, kernel.row(age + 1), strict=True))

        return ending

    def _connect(self, ts: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The matrix of one tick at `ts` as (rows, columns, values)."""
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []

        def edge(source: int, target: int, chance: float) -> None:
            if chance > 0:
                rows.append(source)
                cols.append(target)
                vals.append(chance)

        def ages(first: int, hazards: np.ndarray, ending: Ending) -> None:
            for a, h in enumerate(hazards.tolist()):
                for target, w in ending(a) if callable(ending) else ending:
                    edge(first + a, target, h * w)
                if a + 1 < len(hazards):
                    edge(first + a, first + a + 1, 1.0 - h)

        for state in self.model.states:
            phase = self.entry[state]
            hazards = self.dwell_hazards.get(state)
            law = self.model.dwell.get(state)
            if hazards is not None and isinstance(law, StayKernel):
                ages(phase, hazards, self._kernel_ending(state, law))
                if law.first is not None:
                    first = self._kernel_ending(state, law.first)
                    ages(self.first_entry[state], self.first_hazards[state], first)
                continue
            if hazards is not None:
                ages(phase, hazards, self._ending(state, ts, thinned=False))
                continue
            stay = 1.0
            for j, chance in self._chances(state, ts):
                edge(phase, self._target(j), chance)
                stay -= chance
            edge(phase, phase, max(stay, 0.0))
        for j, hazards in self.delay_hazards.items():
            state = self.model.transitions[j].to_state
            plain = state not in self.dwell_hazards and not any(
                self.model.transitions[k].rate_attribute for k in self.outgoing[state]
            )
            ages(self.after_delay[j], hazards, self._ending(state, ts, thinned=plain))
        return (
            np.asarray(rows, dtype=np.int64),
            np.asarray(cols, dtype=np.int64),
            np.asarray(vals, dtype=float),
        )

    def _matrix(self, tick: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The matrix of `tick` (one per distinct profile moment, kept)."""
        if self.clock is None:
            key: tuple[Any, ...] = ()
            ts = None
        else:
            ts = self.clock[0] + tick * self.clock[1]
            key = tuple(p.key(ts) for p in self._profiles)
        cached = self._edges.get(key)
        if cached is None:
            cached = self._edges[key] = self._connect(ts)
        return cached

    def start(self, counts: np.ndarray) -> np.ndarray:
        """The phase vector of subjects `counts` per state, just entered (as newcomers)."""
        vector = np.zeros(len(self.owner))
        for state, n in zip(
            self.model.states, np.asarray(counts, dtype=float).tolist(), strict=True
        ):
            # a first stay follows the kernel's first-stay law when it has one
            vector[self.first_entry.get(state, self.entry[state])] += n
        return vector

    def step(self, vector: np.ndarray, tick: int) -> np.ndarray:
        """The phase vector after `tick`'s moves."""
        rows, cols, vals = self._matrix(tick)
        return np.bincount(cols, weights=vector[rows] * vals, minlength=len(vector))

    def per_state(self, vector: np.ndarray) -> np.ndarray:
        """Subjects per state of a phase vector."""
        return np.bincount(self._owner, weights=vector, minlength=len(self.model.states))


def _rows(ticks: int, every: int) -> int:
    return -(-ticks // every)


def _phases(model: Model, ticks: int, clock: Clock | None) -> _Phases | None:
    """The phases of `model`, or None when a law is too long, the work too much, or the
    model has what phases do not follow (stay kernels, chance tables)."""
    if _beyond_phases(model)[1]:
        return None
    phases = _Phases(model, clock)
    if phases.too_long or phases.size * ticks > MAX_WORK:
        return None
    return phases


def semi_markov_occupancy(
    model: Model,
    ticks: int,
    start: np.ndarray,
    *,
    every: int = 1,
    clock: Clock | None = None,
) -> np.ndarray | None:
    """Expected subjects per state after each tick's (or row of `every` ticks') moves, from
    `start` subjects per state, following dwell and delay laws exactly (see the module
    docstring) and, given the `clock` (timestamp of tick 0, tick length in ms), calendar
    profiles too; shape ``(ceil(ticks / every), states)``. None when a law is too long to
    expand or the work would exceed `MAX_WORK` (use the chain then).

    The model's laws must be in ticks (`Model.at_tick`)."""
    phases = _phases(model, ticks, clock)
    if phases is None:
        return None
    vector = phases.start(start)
    out = np.empty((_rows(ticks, every), len(model.states)))
    for t in range(ticks):
        vector = phases.step(vector, t)
        if (t + 1) % every == 0 or t == ticks - 1:
            out[t // every] = phases.per_state(vector)
    return out


def too_long(model: Model, ticks: int, clock: Clock | None = None) -> bool:
    """True when `model`'s phase line would exceed `MAX_WORK` (or a law is too long)."""
    if _beyond_phases(model)[1]:
        return False
    phases = _Phases(model, clock)
    return phases.too_long or phases.size * ticks > MAX_WORK


def uses_semi_markov(model: Model, ticks: int, clock: Clock | None = None) -> bool:
    """True when `expected_counts` steps through `model`'s phases (dwell or delay laws, or
    calendar profiles with a `clock`) rather than taking powers of the plain chain."""
    profiled = clock is not None and any(t.profile is not None for t in model.transitions)
    if not (model.semi_markov or profiled) or _beyond_phases(model)[1]:
        return False
    return _phases(model, ticks, clock) is not None


def _per_start(
    model: Model, ticks: int, start: np.ndarray, every: int, clock: Clock | None
) -> np.ndarray:
    """Per occupied start state, the distribution after each row: ``(k, rows, states)``."""
    occupied = [k for k, n in enumerate(np.asarray(start).tolist()) if n > 0]
    out = np.zeros((len(occupied), _rows(ticks, every), len(model.states)))
    for row, k in enumerate(occupied):
        one = np.zeros(len(model.states))
        one[k] = 1.0
        out[row] = expected_counts(model, ticks, one, every=every, clock=clock)
    return out


def expected_counts(
    model: Model,
    ticks: int,
    start: np.ndarray | Sequence[float],
    *,
    every: int = 1,
    clock: Clock | None = None,
) -> np.ndarray:
    """Expected subjects per state after each tick's (or row's) moves, from `start` subjects
    per state (e.g. `RunResult.started()`): through the phases when the model has dwell or
    delay laws, or profiles and a `clock` (`uses_semi_markov`), else ``start @ P**(t+1)``."""
    counts = np.asarray(start, dtype=float)
    if uses_semi_markov(model, ticks, clock):
        exact = semi_markov_occupancy(model, ticks, counts, every=every, clock=clock)
        if exact is not None:
            return exact
    return occupancy_probabilities(model, ticks, counts, every=every)


def expected_band(
    model: Model,
    ticks: int,
    start: np.ndarray | Sequence[float],
    z: float = 3.0,
    *,
    every: int = 1,
    clock: Clock | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)``: the expectation of `expected_counts` -/+ `z` standard deviations.

    Subjects move independently, so a state's count is a sum of binomials, one per start
    state ``s``: variance ``sum_s n_s p_s (1 - p_s)``; clipped to ``0 .. sum(start)``."""
    counts = np.asarray(start, dtype=float)
    probs = _per_start(model, ticks, counts, every, clock)
    weights = counts[counts > 0][:, None, None]
    mean = (weights * probs).sum(axis=0)
    sd = np.sqrt((weights * probs * (1.0 - probs)).sum(axis=0))
    total = float(counts.sum())
    return np.clip(mean - z * sd, 0, total), np.clip(mean + z * sd, 0, total)
