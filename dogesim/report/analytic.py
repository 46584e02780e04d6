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
- `approximations(model)`: why the chain is only an approximation of a model (dwell and
  delay laws, per-subject rates, calendar profiles), in words.

An approximation, stated plainly: callbacks may veto attempts (the subject stays), and the
matrix cannot know how often they will, so with vetoing callbacks the chain overstates the
moves they guard. Use ``build_model(callbacks=False)`` / the bare chain for exact checks, or
compare with `tables.transition_table` veto rates. Subjects move independently, so the count
in state ``s`` after tick ``t`` is binomial: ``n * pi_t[s]`` on average with variance
``n * pi_t[s] * (1 - pi_t[s])``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dogesim.model import Model
from dogesim.report.tables import time_index

__all__ = [
    "analytic_occupancy_frame",
    "approximations",
    "describe",
    "expected_occupancy",
    "initial_distribution",
    "occupancy_band",
    "occupancy_probabilities",
    "stationary_distribution",
    "transition_matrix",
]


def transition_matrix(model: Model) -> np.ndarray:
    """The per-tick matrix ``P[i, j]``: probability to be in state j after one tick in i."""
    return np.asarray(model.transition_matrix(), dtype=float)


def initial_distribution(model: Model) -> np.ndarray:
    """The distribution at the start: the initial mix (everyone in the initial state when
    the model has one)."""
    pi0 = np.zeros(len(model.states))
    for state, share in model.initial_mix.items():
        pi0[model.index(state)] += share
    return pi0


def approximations(model: Model) -> list[str]:
    """Why the Markov line of `model` is only an approximation (empty: it is exact, up to
    callback vetoes), one sentence per reason."""
    notes = []
    if model.dwell:
        notes.append(
            "states " + ", ".join(repr(s) for s in model.dwell) + " have dwell-time laws; the "
            "chain stands for them with geometric stays of the same per-tick chances"
        )
    delayed = [t.trigger for t in model.transitions if t.delay is not None]
    if delayed:
        notes.append(
            "transitions " + ", ".join(repr(t) for t in delayed) + " have delay laws, which "
            "the chain ignores"
        )
    scaled = [t.trigger for t in model.transitions if t.rate_attribute]
    if scaled:
        notes.append(
            "transitions " + ", ".join(repr(t) for t in scaled) + " scale with a subject "
            "attribute; the chain uses their chances unscaled (attribute 1)"
        )
    if any(t.profile is not None for t in model.transitions):
        notes.append("calendar profiles are ignored: the chain uses the chances as given")
    return notes


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
