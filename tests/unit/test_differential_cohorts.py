"""Differential tests of the cohort features where they meet: chance tables (by month, by
age), calendar profiles and per-subject rates, mixed at random within and across states.

Hypothesis draws random models (2-4 states, 1-3 transitions per state, each plain, with a
month table, an age table or an hourly/weekly profile; states scaled by a per-subject
``pace`` or not) and runs them in the engine. The check needs no second engine: the engine's
own events are replayed to know every subject's state at every tick, and at each tick the
per-tick law gives each subject's chance ``p`` of each transition:

- unscaled state: ``p_j = c_j(t)``, the transition's chance at the tick (the table's value at
  the tick's month and the subject's age, or the chance times the profile's multiplier);
- scaled state: ``p_j = (1 - exp(-H)) w_j / H``, ``w_j = r_j c_j f(P)``, ``H = sum w``,
  ``P = sum c``, ``f(P) = -ln(1 - P) / P``, ``r_j`` the subject's pace for a scaled
  transition (else 1).

So, per transition and chance level, ``events - sum p`` is a martingale whose increments are
bounded by 1, with predictable variation ``V = sum p (1 - p)``; Freedman's inequality bounds
it by ``a`` with ``a^2 / (2 (V + a / 3)) = ln(2 / alpha)``. A rule the engine broke at one
level only (a profile's peak hour, one month) shows in that level's group. ``alpha`` is split
(Bonferroni) over the groups and examples; the ``ci`` profile is derandomized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dogesim import MemorySink, Model, Profile, Simulation
from dogesim.varying import month_of
from tests.hypothesis_profiles import LONG

ALPHA = 1e-6
#: 2026-01-05 00:00 UTC, a Monday.
EPOCH = 1_767_571_200_000
HOUR = 3_600_000
#: (tick length, ticks): runs that span several months and see every hour.
CLOCKS = ((HOUR, 1500), (6 * HOUR, 600), (24 * HOUR, 400))


@dataclass
class Edge:
    """One drawn transition: its states, kind and numbers."""

    source: int
    target: int
    kind: str  # plain, month, age, profile
    chance: float  # percent (the base of a profile)
    months: tuple[float, ...] = ()
    ages: tuple[float, float, float] = (0.0, 0.0, 0.0)  # edge age, chance before, after
    hourly: tuple[float, ...] = ()
    weekly: tuple[float, ...] = ()
    scaled: bool = False


@dataclass
class Case:
    states: int
    edges: list[Edge]
    tick_ms: int
    ticks: int
    subjects: int
    seed: int


@st.composite
def edges_of(draw: Any, source: int, states: int, scaled: bool) -> list[Edge]:
    """1-3 transitions out of `source` whose chances peak at 45% in all."""
    count = draw(st.integers(1, 3))
    budget = 45.0 / count
    out = []
    for _ in range(count):
        kind = draw(st.sampled_from(["plain", "month", "age", "profile"]))
        target = draw(st.integers(0, states - 1))
        chance = draw(st.floats(0.5, budget / 3 if kind == "profile" else budget))
        edge = Edge(source, target, kind, chance, scaled=scaled and draw(st.booleans()))
        if kind == "month":
            edge.months = tuple(draw(st.lists(st.floats(0, budget), min_size=12, max_size=12)))
        elif kind == "age":
            edge.ages = (
                float(draw(st.integers(1, 300))),
                draw(st.floats(0, budget)),
                draw(st.floats(0, budget)),
            )
        elif kind == "profile":
            # at most x3 at any moment: the chance is at most a third of the budget
            hours = st.sampled_from([0.0, 0.3, 1.0, 3.0])
            days = st.sampled_from([0.0, 0.3, 1.0])
            edge.hourly = tuple(draw(st.lists(hours, min_size=24, max_size=24)))
            edge.weekly = tuple(draw(st.lists(days, min_size=7, max_size=7)))
        out.append(edge)
    return out


@st.composite
def cases(draw: Any) -> Case:
    states = draw(st.integers(2, 4))
    edges: list[Edge] = []
    for source in range(states):
        edges.extend(draw(edges_of(source, states, draw(st.booleans()))))
    tick_ms, ticks = draw(st.sampled_from(CLOCKS))
    return Case(states, edges, tick_ms, ticks, 120, draw(st.integers(0, 2**31)))


def _profile(edge: Edge) -> Profile:
    return Profile(hourly=list(edge.hourly), weekly=list(edge.weekly))


def build(case: Case, sink: MemorySink) -> Model:
    """The drawn model, every transition into `sink`."""
    names = [f"S{k}" for k in range(case.states)]
    model = Model(names, "S0")
    for k, edge in enumerate(case.edges):
        options: dict[str, Any] = {"event_sinks": [sink]}
        if edge.scaled:
            options["rate_attribute"] = "pace"
        if edge.kind == "month":
            options["by_month"] = list(edge.months)
        elif edge.kind == "age":
            edge_age, before, after = edge.ages
            options["by_age"] = {"edges": [0, edge_age], "chances": [before, after]}
        elif edge.kind == "profile":
            options["profile"] = _profile(edge)
        chance = None if edge.kind in ("month", "age") else edge.chance
        model.add_transition(f"t{k}", names[edge.source], names[edge.target], chance, **options)
    return model


def chances_at(case: Case) -> np.ndarray:
    """Per tick and transition, its chance (a fraction): tick x transition."""
    out = np.zeros((case.ticks, len(case.edges)))
    for t in range(case.ticks):
        ts = EPOCH + t * case.tick_ms
        month = month_of(ts)
        for k, edge in enumerate(case.edges):
            if edge.kind == "month":
                value = edge.months[month - 1]
            elif edge.kind == "age":
                edge_age, before, after = edge.ages
                value = before if t < edge_age else after
            elif edge.kind == "profile":
                value = edge.chance * _profile(edge).multiplier(ts)
            else:
                value = edge.chance
            out[t, k] = value / 100.0
    return out


def state_paths(case: Case, events: list[tuple[int, int, int]]) -> np.ndarray:
    """Per subject and tick, its state at the start of the tick (from its events: subject,
    tick, transition index)."""
    paths = np.zeros((case.subjects, case.ticks), dtype=np.int64)
    by_subject: dict[int, list[tuple[int, int]]] = {}
    for i, t, k in events:
        by_subject.setdefault(i, []).append((t, k))
    for i, moves in by_subject.items():
        for t, k in sorted(moves):
            paths[i, t + 1 :] = case.edges[k].target
    return paths


def move_chances(case: Case, chances: np.ndarray, paces: np.ndarray, paths: np.ndarray) -> Any:
    """Per subject, tick and transition: the law's chance of the move (0 where the subject
    is not in the transition's state)."""
    n_edges = len(case.edges)
    p = np.zeros((case.subjects, case.ticks, n_edges))
    for s in range(case.states):
        ks = [k for k, e in enumerate(case.edges) if e.source == s]
        if not ks:
            continue
        here = paths == s  # subject x tick
        c = chances[:, ks]  # tick x outgoing
        if any(case.edges[k].scaled for k in ks):
            rates = np.ones((case.subjects, len(ks)))
            for m, k in enumerate(ks):
                if case.edges[k].scaled:
                    rates[:, m] = paces
            total = c.sum(axis=1)  # tick
            factor = np.where(total > 0, -np.log1p(-total) / np.where(total > 0, total, 1), 1)
            w = rates[:, None, :] * (c * factor[:, None])[None, :, :]  # subject x tick x out
            hazard = w.sum(axis=2)
            share = np.divide(
                w, hazard[:, :, None], out=np.zeros_like(w), where=hazard[:, :, None] > 0
            )
            chance = -np.expm1(-hazard)[:, :, None] * share
        else:
            chance = np.broadcast_to(c[None, :, :], (case.subjects, case.ticks, len(ks)))
        p[:, :, ks] = np.where(here[:, :, None], chance, 0.0)
    return p


def freedman(variation: float, alpha: float) -> float:
    """The deviation ``a`` a martingale with increments in [-1, 1] and predictable variation
    `variation` exceeds with chance at most `alpha` (both sides)."""
    log = math.log(2 / alpha)
    return log / 3 + math.sqrt((log / 3) ** 2 + 2 * log * variation)


def check(case: Case, examples: int) -> None:
    sink = MemorySink(lambda ts, s, t: (s.id, ts, t.trigger))
    model = build(case, sink)
    paces = np.random.default_rng(case.seed).lognormal(0.0, 0.5, case.subjects)
    subjects = [SimpleNamespace(id=i, pace=float(r)) for i, r in enumerate(paces)]
    Simulation(
        model,
        subjects,
        ticks=case.ticks,
        tick_ms=case.tick_ms,
        timestamp_start=EPOCH,
        seed=case.seed,
    ).run()
    events = [(i, (ts - EPOCH) // case.tick_ms, int(trigger[1:])) for i, ts, trigger in sink.events]
    chances = chances_at(case)
    p = move_chances(case, chances, paces, state_paths(case, events))
    observed = np.zeros_like(p)
    for i, t, k in events:
        observed[i, t, k] += 1
    assert observed.max(initial=0) <= 1  # one move per subject and tick
    groups: dict[tuple[int, float], tuple[float, float, float]] = {}
    for k in range(len(case.edges)):
        levels = np.round(chances[:, k], 9)
        for level in np.unique(levels):
            at = levels == level
            pk, xk = p[:, at, k], observed[:, at, k]
            groups[(k, float(level))] = (xk.sum(), pk.sum(), (pk * (1 - pk)).sum())
    alpha = ALPHA / (examples * max(len(groups), 1))
    for (k, level), (x, mean, variation) in groups.items():
        assert abs(x - mean) <= freedman(variation, alpha), (
            f"transition t{k} ({case.edges[k].kind}, scaled={case.edges[k].scaled}) at "
            f"chance {level:.4g}: {x:.0f} moves, the law expects {mean:.1f}"
        )


@settings(max_examples=12)
@given(cases())
def test_tables_profiles_and_rates_in_random_combinations_follow_the_law(case: Case) -> None:
    """Random mixes of chance tables, profiles and per-subject rates: every transition's
    moves at every chance level match the per-tick law's compensator."""
    check(case, 12)


@pytest.mark.slow
@settings(LONG, max_examples=150)
@given(cases())
def test_tables_profiles_and_rates_in_random_combinations_follow_the_law_long(
    case: Case,
) -> None:
    """The long profile."""
    check(case, 150)
