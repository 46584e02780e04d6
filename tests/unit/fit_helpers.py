"""Helpers for the estimator tests: a per-tick chain drawn with numpy (chances may depend
on the tick and on the subject's age), written as an event log plus a roster.

The engine is the real component for the chain with constant chances and is used where a
test compares with it; coverage tests repeat a fit over hundreds of seeds and need laws the
engine has not got yet (chances by month, by age), so they draw the per-tick definition here
— the estimators, not this helper, are under test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

#: Transitions: state -> [(to_state, chance per tick)]; a chance may be a callable of
#: (tick, month, age) arrays returning an array.
Chances = Mapping[str, Sequence[tuple[str, Any]]]

MONTH_START = int(pd.Timestamp("2001-01-01", tz="UTC").value // 1_000_000)


def month_times(ticks: int, start: int = MONTH_START) -> np.ndarray:
    """Epoch ms of the first day of each of `ticks` months from `start`."""
    first = pd.Timestamp(start, unit="ms", tz="UTC")
    stamps = [first + pd.DateOffset(months=k) for k in range(ticks)]
    return np.array([int(s.value // 1_000_000) for s in stamps], dtype=np.int64)


def draw_chain(
    chances: Chances,
    initial: Mapping[str, float] | str,
    subjects: int,
    ticks: int,
    rng: np.random.Generator,
    *,
    times: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw the chain tick by tick; return (event log, roster).

    Args:
        chances: per state, its transitions and their chances.
        initial: one state, or shares per state to draw each subject's start from.
        subjects, ticks: the population and the window.
        rng: the generator.
        times: each tick's timestamp (default: tick k at k * 1000 ms).
        weights: per-subject weights written to the roster and the log (default none).
    """
    states = list(dict.fromkeys([*chances, *(to for ts in chances.values() for to, _ in ts)]))
    if isinstance(initial, str):
        state = np.full(subjects, states.index(initial))
    else:
        names = list(initial)
        p = np.array([initial[n] for n in names], dtype=float)
        state = np.array(
            [states.index(names[k]) for k in rng.choice(len(names), subjects, p=p / p.sum())]
        )
    start_state = state.copy()
    times = np.arange(ticks, dtype=np.int64) * 1000 if times is None else times
    months = np.asarray(pd.to_datetime(times, unit="ms", utc=True).month)
    rows: list[tuple[int, int, str, str]] = []
    for t in range(ticks):
        u = rng.random(subjects)
        new = state.copy()
        for s, name in enumerate(states):
            members = np.flatnonzero(state == s)
            if not len(members):
                continue
            edge = np.zeros(len(members))
            for to, chance in chances.get(name, ()):
                p = (
                    chance(
                        np.full(len(members), t),
                        np.full(len(members), months[t]),
                        np.full(len(members), t),
                    )
                    if callable(chance)
                    else np.full(len(members), float(chance))
                )
                hit = (u[members] >= edge) & (u[members] < edge + p)
                new[members[hit]] = states.index(to)
                edge = edge + p
        moved = np.flatnonzero(new != state)
        rows.extend((int(i), int(times[t]), states[state[i]], states[new[i]]) for i in moved)
        state = new
    log = pd.DataFrame(rows, columns=["subject", "timestamp", "from_state", "to_state"])
    roster = pd.DataFrame(
        {"subject": np.arange(subjects), "state": [states[s] for s in start_state]}
    )
    if weights is not None:
        roster["weight"] = weights
        log["weight"] = weights[log["subject"].to_numpy(dtype=np.int64)]
    return log, roster


def simulate_kernel(
    kernel: Any, initial: Sequence[str], ticks: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, dict[int, str]]:
    """Walk a fitted semi-Markov `kernel` (`spells.Kernel`) from the given initial states:
    draw each stay's length from its dwell law, then its destination given that length.
    Returns (event log on 1000 ms ticks, roster)."""
    laws: dict[Any, tuple[np.ndarray, np.ndarray]] = {}
    for key, law in kernel.dwell.items():
        histogram = law.histogram()
        mass = np.array(list(histogram.values()))
        laws[key] = (np.array(list(histogram)), mass / mass.sum())
    rows: list[tuple[int, int, str, str]] = []
    roster = {}
    for subject, state in enumerate(initial):
        roster[subject] = state
        tick, first = -1, True
        while (key := kernel.key(state, first)) is not None:
            lengths, mass = laws[key]
            length = int(rng.choice(lengths, p=mass))
            tick += length  # the stay's last attempt, when it moves
            if tick >= ticks:
                break
            table = kernel.destinations[key]
            shares = table.loc[min(length, table.index[-1])].to_numpy(dtype=float)
            to = str(table.columns[rng.choice(len(shares), p=shares / shares.sum())])
            rows.append((subject, tick * 1000, state, to))
            state, first = to, False
    log = pd.DataFrame(rows, columns=["subject", "timestamp", "from_state", "to_state"])
    return log, roster


def engine_log(
    model: Any, subjects: int, ticks: int, seed: int, *, tick_ms: int = 1000
) -> tuple[pd.DataFrame, dict[int, str]]:
    """Run `model` in the engine (`dogesim.Simulation`) and return (event log, roster):
    every event of every transition, and each subject's state before tick 0 (its first
    event's from-state, else where it stayed)."""
    from dogesim import Simulation
    from dogesim.sinks.memory import MemorySink

    sink = MemorySink(lambda ts, s, t: (s.id, ts, t.from_state, t.to_state))
    for transition in model.transitions:
        object.__setattr__(transition, "event_sinks", (sink,))
    sim = Simulation(model, subjects, ticks=ticks, tick_ms=tick_ms, seed=seed)
    sim.run()
    log = pd.DataFrame(sink.events, columns=["subject", "timestamp", "from_state", "to_state"])
    roster = dict(enumerate(sim.subject_states()))
    first = log.drop_duplicates("subject")
    roster.update(zip(first["subject"].tolist(), first["from_state"].tolist(), strict=True))
    return log, roster


def two_sample(a: pd.DataFrame, b: pd.DataFrame) -> tuple[float, int]:
    """Pearson's homogeneity statistic of two event logs' counts per (timestamp, from, to)
    cell (cells with a pooled count under 10 pooled together), and its degrees of freedom:
    small when both logs come from one law."""
    keys = ["timestamp", "from_state", "to_state"]
    both = pd.concat(
        [a[keys].value_counts().rename("a"), b[keys].value_counts().rename("b")], axis=1
    ).fillna(0.0)
    small = both.sum(axis=1) < 10
    table = pd.concat([both[~small], both[small].sum().to_frame().T]).to_numpy()
    table = table[table.sum(axis=1) > 0]
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    return float(((table - expected) ** 2 / expected).sum()), len(table) - 1


def coverage_bounds(seeds: int, level: float, alpha: float = 1e-3) -> tuple[float, float]:
    """The range a Binomial(seeds, level) count falls outside of with probability `alpha`."""
    return (
        float(stats.binom.ppf(alpha / 2, seeds, level)),
        float(stats.binom.isf(alpha / 2, seeds, level)),
    )


def wilson_coverage(trials: int, p: float, level: float = 0.95) -> float:
    """The exact coverage of the Wilson interval for `trials` Bernoulli(p) trials (it
    oscillates around `level` as the trials and `p` vary)."""
    from dogesim.report.fit import wilson_interval

    k = np.arange(trials + 1)
    inside = np.array(
        [low <= p <= high for low, high in (wilson_interval(int(j), trials, level) for j in k)]
    )
    return float(stats.binom.pmf(k, trials, p)[inside].sum())


def count_covered(pairs: Sequence[tuple[float, float]], truth: float) -> int:
    """How many intervals (low, high) contain `truth`."""
    return sum(int(low <= truth <= high) for low, high in pairs)


__all__ = [
    "MONTH_START",
    "Chances",
    "count_covered",
    "coverage_bounds",
    "draw_chain",
    "engine_log",
    "month_times",
    "simulate_kernel",
    "two_sample",
    "wilson_coverage",
]
