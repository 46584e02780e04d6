"""A model compiled for a run.

- `Tables`: the lookup tables the walker reads per attempt.
- `effective_model`: a model as a run sees it (chances at the run's tick, churn added).

Transitions are grouped by their from-state (``order[j]`` is the j-th of that grouping):
``first[s]`` and ``n_out[s]`` give state ``s``'s slice. Per state, the choice thresholds are
the cumulative chances of its transitions divided by the most the state can ever have
(``peak``, the sum at the peaks of their calendar profiles); a uniform draw ``u`` picks the
first transition whose threshold exceeds ``u``, and none (no attempt after all: thinning) when
``u`` is above the last threshold, which happens only when a profile lowers the chances now.
``invlog[s] = 1 / ln(1 - peak)`` turns a uniform into the geometric wait until the state's
next attempt (0: every tick; NaN or None: never). Per transition: target state, callback,
sinks' ``collect`` methods, resource, and whether Python work is needed at all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import simpy

from dogesim.engine.dwell import SemiMarkov, initial_mix, needs_semi_markov
from dogesim.errors import ModelError
from dogesim.model import Model, Transition
from dogesim.rates import Profile, Rate, moment_text, parse_rate, profiled_peak

__all__ = ["Tables", "effective_model"]

#: How many distinct profile moments keep their thresholds cached.
_CACHE = 4096
#: One hour in milliseconds: a profile's multiplier is constant within a local hour.
_HOUR = 3_600_000


def _offset_ms(profile: Profile) -> int | None:
    """The profile's UTC offset in milliseconds when it is a whole number of them."""
    offset = profile.utc_offset_hours * _HOUR
    return int(offset) if float(offset).is_integer() else None


def _threshold_lists(thresholds: np.ndarray, n_out: np.ndarray) -> list[list[float]]:
    """Per state, the thresholds that matter for bisection (its transitions' columns)."""
    return [row[: int(n)] for row, n in zip(thresholds.tolist(), n_out.tolist(), strict=True)]


def _peak_chances(model: Model, name: str, outgoing: list[Transition]) -> tuple[list[float], float]:
    """The chances per tick of `outgoing` at their profiles' peaks, and the state's largest
    total chance at any moment (`profiled_peak`: peaks at different hours do not add up),
    the rate its attempts are drawn at before thinning; checked to be at most 1."""
    top = [t.probability / 100.0 * (t.profile.peak if t.profile else 1.0) for t in outgoing]
    total, moment = sum(top), None
    if any(t.profile is not None for t in outgoing):
        total, moment = profiled_peak((t.probability / 100.0, t.profile) for t in outgoing)
    if total > 1.0 + 1e-9:
        when = "" if moment is None else f" (e.g. at {moment_text(moment)})"
        raise ModelError(
            f"{model.name}: state {name!r}: at the peaks of their calendar profiles the "
            f"outgoing probabilities reach {100 * total:g}% per tick{when}, at most 100%"
        )
    return top, min(total, 1.0)


def _inverse_log(total: float) -> float:
    """``1 / ln(1 - total)``: 0 when certain, NaN when the chance is (numerically) nil."""
    if total >= 1.0:
        return 0.0
    if total <= 1e-300:
        return math.nan
    inv = 1.0 / math.log1p(-total)
    return inv if math.isfinite(inv) else math.nan


class Tables:
    """The compiled transition tables of one run (see the module docstring)."""

    def __init__(self, model: Model, env: simpy.Environment) -> None:
        n_states = len(model.states)
        order: list[Transition] = []
        width = max((len(model.outgoing(s)) for s in model.states), default=1)
        self.first = np.zeros(n_states, dtype=np.int64)
        self.n_out = np.zeros(n_states, dtype=np.int64)
        self.thresholds = np.full((n_states, max(width, 1)), 2.0)
        self.peak = np.zeros(n_states)
        self.invlog = np.full(n_states, np.nan)
        for s, name in enumerate(model.states):
            outgoing = list(model.outgoing(name))
            self.first[s], self.n_out[s] = len(order), len(outgoing)
            order.extend(outgoing)
            top, total = _peak_chances(model, name, outgoing)
            self.peak[s] = total
            if total <= 0.0:
                continue  # never moves: stays out of the calendar
            self.thresholds[s, : len(top)] = np.cumsum(top) / total
            self.thresholds[s, len(outgoing) - 1] = 1.0
            self.invlog[s] = _inverse_log(total)
        self.model = model
        self.order = order
        position = {id(t): j for j, t in enumerate(model.transitions)}
        self.order_to_model = np.asarray([position[id(t)] for t in order], dtype=np.int64)
        self.first_list: list[int] = self.first.tolist()
        self.n_out_list: list[int] = self.n_out.tolist()
        self.threshold_lists = _threshold_lists(self.thresholds, self.n_out)
        self.profiled = any(t.profile is not None for t in order)
        self.draw_choice = self.profiled or bool((self.n_out > 1).any())
        self.invlog_list: list[float | None] = [
            None if math.isnan(x) else x for x in self.invlog.tolist()
        ]
        self.to = np.asarray([model.index(t.to_state) for t in order], dtype=np.int64)
        self.to_list: list[int] = self.to.tolist()
        self.initial = model.index(next(iter(model.initial_mix)))
        self.mix, self.semi = _cohorts(model, order)
        self.callbacks = [t.action_callback for t in order]
        self.collectors = [tuple(s.collect for s in t.event_sinks) for t in order]
        resources = {name: simpy.Resource(env, cap) for name, cap in model.resources.items()}
        self.resource_of: list[simpy.Resource | None] = [
            resources[t.resource] if t.resource else None for t in order
        ]
        self.has_resources = any(r is not None for r in self.resource_of)
        self._cache: dict[tuple[Any, ...], tuple[np.ndarray, list[list[float]]]] = {}
        distinct = {id(t.profile): t.profile for t in order if t.profile is not None}
        self._profiles = list(distinct.values())
        # Each profile's UTC offset in whole ms (None: not whole, no hour windows).
        self._offsets = [_offset_ms(p) for p in self._profiles]
        self._window = (0, 0)
        self._current = (self.thresholds, self.threshold_lists)

    def choice(self, timestamp: int) -> tuple[np.ndarray, list[list[float]]]:
        """The choice thresholds at `timestamp` (they change only under calendar profiles),
        as an array and as per-state lists.

        A profile's multiplier is constant within a local clock hour, so the thresholds are
        kept for the window of time where every profile stays in its hour: a busy tick
        costs one comparison, not Python work per transition."""
        if not self.profiled:
            return self.thresholds, self.threshold_lists
        low, high = self._window
        if low <= timestamp < high:
            return self._current
        key = tuple(p.key(timestamp) for p in self._profiles)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._profiled_thresholds(timestamp)
            if len(self._cache) < _CACHE:
                self._cache[key] = cached
        self._current = cached
        self._window = self._hour_window(timestamp)
        return cached

    def _hour_window(self, timestamp: int) -> tuple[int, int]:
        """The times around `timestamp` where every profile stays in its local hour."""
        low, high = timestamp, timestamp + 1
        if all(offset is not None for offset in self._offsets):
            low, high = -(1 << 62), 1 << 62
            for offset in self._offsets:
                assert offset is not None
                start = (timestamp + offset) // _HOUR * _HOUR - offset
                low, high = max(low, start), min(high, start + _HOUR)
        return low, high

    def _profiled_thresholds(self, timestamp: int) -> tuple[np.ndarray, list[list[float]]]:
        thresholds = np.full_like(self.thresholds, 2.0)
        for s, peak in enumerate(self.peak.tolist()):
            if peak <= 0:
                continue
            cumulative = 0.0
            begin = self.first_list[s]
            for k in range(self.n_out_list[s]):
                tr = self.order[begin + k]
                factor = tr.profile.multiplier(timestamp) if tr.profile else 1.0
                cumulative += tr.probability / 100.0 * factor
                thresholds[s, k] = min(cumulative / peak, 1.0)
        return thresholds, _threshold_lists(thresholds, self.n_out)


def _cohorts(
    model: Model, order: list[Transition]
) -> tuple[tuple[np.ndarray, np.ndarray] | None, SemiMarkov | None]:
    """The initial mix to draw from, and the semi-Markov laws (None: a plain chain)."""
    semi = SemiMarkov(model, order) if needs_semi_markov(model) else None
    return initial_mix(model), semi


def effective_model(
    model: Model,
    tick_ms: int,
    churn: float | Rate | str | None,
    churn_sinks: Sequence[Any],
) -> Model:
    """`model` as a run at `tick_ms` sees it: a ``churn`` transition from every non-final
    state to the final state ``churned`` when `churn` is given, then every chance rescaled to
    the tick (the model `Simulation.model` holds, and reports need).

    Churn is added before the one rescaling, so a churn rate is rescaled with the state's
    other rates as one total (`dogesim.rates.per_tick_chances`); a plain number is a
    percentage per tick of this run, whatever tick the model was written for."""
    if churn is not None:
        model = _with_churn(model, _churn_chance(churn, tick_ms), churn_sinks)
    return model.at_tick(tick_ms)


def _churn_chance(churn: float | Rate | str, tick_ms: int) -> float | Rate:
    """Churn as a transition's chance: a `Rate`, or a per-tick percentage of this run."""
    if isinstance(churn, str):
        return parse_rate(churn, "churn")
    if isinstance(churn, Rate):
        return churn
    # "X% per tick" of this run's tick: `at_tick` keeps it as given, also in a model
    # written for another tick (where a plain number would be read per the model's tick).
    return Rate("percent", churn, tick_ms)


def _with_churn(model: Model, chance: float | Rate, churn_sinks: Sequence[Any]) -> Model:
    """`model` plus a ``churn`` transition from every non-final state to ``churned``."""
    states = list(model.states)
    if "churned" not in states:
        states.append("churned")
    copy = Model(
        states,
        model.initial,
        [dataclasses.replace(t) for t in model.transitions],
        name=model.name,
        tick_ms=model.tick_ms,
        resources=model.resources,
        dwell=model.dwell,
        attributes=model.attributes,
    )
    for state in model.states:
        if state != "churned" and not model.is_final(state):
            copy.add_transition("churn", state, "churned", chance, event_sinks=churn_sinks)
    return copy
