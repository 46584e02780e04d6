"""The skip-ahead engine is exact in distribution: checked against the per-tick definition.

Two references:
- the exact law of the per-tick definition for models without callbacks (subjects are
  independent Markov chains: the count in state s after tick t is Binomial(N, pi_t[s]) with
  pi_t = e0 P^(t+1); expected events of transition i are N * sum_t pi_{t-1}[from_i] p_i);
- the per-tick oracle (tests/unit/oracle.py) for the banking model with its callbacks.

Every bound is computed from the model or from per-subject variances (subjects are i.i.d.,
so totals are sums of N i.i.d. terms); Z = 5 keeps the chance of a false alarm below 1e-5
across all checks of a test, and the seeds are fixed.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from scipy import stats

from dogesim import Model, Simulation, Transition
from dogesim.examples import banking, clickstream
from tests.unit.oracle import run_per_tick

Z = 5.0


class PerSubjectCounter:
    """Counts events per (subject index, transition) for variance estimates."""

    def __init__(self, n: int, model: Model) -> None:
        self.columns = {id(t): j for j, t in enumerate(model.transitions)}
        self.counts = np.zeros((n, len(model.transitions)), dtype=np.int64)

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        self.counts[subject.index, self.columns[id(transition)]] += 1

    def close(self) -> None:
        pass


class Indexed:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def exact_law(model: Model, ticks: int) -> tuple[np.ndarray, np.ndarray]:
    """(pi after each tick, expected events per subject per transition) of the definition."""
    matrix = np.asarray(model.transition_matrix())
    before = np.zeros(len(model.states))
    before[model.index(model.initial_state)] = 1.0
    occupancy = np.zeros((ticks, len(model.states)))
    expected = np.zeros(len(model.transitions))
    source = [model.index(t.from_state) for t in model.transitions]
    probability = np.asarray([t.probability / 100 for t in model.transitions])
    for t in range(ticks):
        expected += before[source] * probability
        before = before @ matrix
        occupancy[t] = before
    return occupancy, expected


def attach(model: Model, sink: Any) -> Model:
    """A copy of `model` whose every transition feeds `sink` (and keeps its callback)."""
    copy = Model(model.states, model.initial_state, name=model.name)
    for t in model.transitions:
        copy.add_transition(
            t.trigger, t.from_state, t.to_state, t.probability, t.action_callback, [sink]
        )
    return copy


@pytest.mark.parametrize(
    ("name", "bare", "n", "ticks"),
    [
        ("banking (sparse)", banking.build_banking_model(callbacks=False), 40_000, 400),
        ("clickstream (dense)", clickstream.build_clickstream_model(), 4_000, 120),
    ],
)
def test_engine_matches_the_exact_law(name: str, bare: Model, n: int, ticks: int) -> None:
    """Occupancy per tick and events per transition agree with the per-tick law."""
    counter = PerSubjectCounter(n, bare)
    model = attach(bare, counter)
    counter.columns = {id(t): j for j, t in enumerate(model.transitions)}
    result = Simulation(
        model, [Indexed(i) for i in range(n)], ticks=ticks, tick_ms=1, seed=2024
    ).run()
    pi, expected = exact_law(model, ticks)

    checked = 0
    for t in np.linspace(0, ticks - 1, 12).astype(int):
        for s in range(len(model.states)):
            mean = n * pi[t, s]
            sd = math.sqrt(n * pi[t, s] * (1 - pi[t, s]))
            assert abs(result.occupancy[t, s] - mean) <= Z * sd + 1, (name, t, model.states[s])
            checked += 1

    per_subject = counter.counts
    assert (per_subject.sum(axis=0) == result.events_per_transition).all()
    for j, transition in enumerate(model.transitions):
        sd = per_subject[:, j].std(ddof=1) * math.sqrt(n)
        deviation = abs(per_subject[:, j].sum() - n * expected[j])
        assert deviation <= Z * sd + 1, (name, transition.trigger, deviation, sd)
    assert checked >= 12 * 3


def test_engine_matches_the_per_tick_oracle_with_callbacks() -> None:
    """With the banking callbacks (vetoes drawing on global random), engine and oracle agree."""
    n, ticks = 3_000, 1_000

    class Counter(PerSubjectCounter):
        def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
            self.counts[subject.user_id, self.columns[id(transition)]] += 1

    def simulate(engine: bool) -> tuple[np.ndarray, np.ndarray]:
        counter = Counter(n, banking.build_banking_model())
        model = attach(banking.build_banking_model(), counter)
        # `attach` rebuilt the transitions: map them to the counter's columns by position.
        counter.columns = {id(t): j for j, t in enumerate(model.transitions)}
        random.seed(11 if engine else 12)
        factory = banking.UserFactory()
        users = [factory.create() for _ in range(n)]
        occupancy = np.zeros((ticks, len(model.states)), dtype=np.int64)
        if engine:
            result = Simulation(
                model, users, ticks=ticks, tick_ms=1, seed=5, seed_globals=False
            ).run()
            occupancy = result.occupancy
        else:

            def record(t: int, states: list[str]) -> None:
                for s, name in enumerate(model.states):
                    occupancy[t, s] = states.count(name)

            run_per_tick(model, users, ticks, 1, random.Random(6), on_tick=record)
        return occupancy, counter.counts

    occ_engine, ev_engine = simulate(engine=True)
    occ_oracle, ev_oracle = simulate(engine=False)
    for t in (0, 10, 100, 500, ticks - 1):
        for s in range(3):
            p = (occ_engine[t, s] + occ_oracle[t, s]) / (2 * n)
            sd = math.sqrt(2 * n * p * (1 - p))
            assert abs(occ_engine[t, s] - occ_oracle[t, s]) <= Z * sd + 1, (t, s)
    for j, transition in enumerate(banking.build_banking_model().transitions):
        a, b = ev_engine[:, j], ev_oracle[:, j]
        sd = math.sqrt(n * (a.var(ddof=1) + b.var(ddof=1)))
        assert abs(a.sum() - b.sum()) <= Z * sd + 1, transition.trigger
        assert a.sum() > 0, transition.trigger


def test_gaps_between_attempts_are_geometric() -> None:
    """Ticks between a subject's successive events follow Geometric(p), the per-tick law."""
    p = 0.04
    seen: dict[int, int] = {}
    gaps: list[int] = []

    class Gaps:
        def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
            last = seen.get(subject.index)
            if last is not None:
                gaps.append(timestamp - last)
            seen[subject.index] = timestamp

        def close(self) -> None:
            pass

    model = Model(["on"], "on")
    model.add_transition("ping", "on", "on", 100 * p, event_sinks=[Gaps()])
    Simulation(model, [Indexed(i) for i in range(500)], ticks=3_000, tick_ms=1, seed=99).run()
    observed = np.bincount(np.asarray(gaps), minlength=200)[1:]
    # Bins 1..K-1 and a tail bin; expected counts from the geometric pmf.
    k = 80
    total = len(gaps)
    pmf = p * (1 - p) ** np.arange(k - 1)
    expected = np.append(pmf, 1 - pmf.sum()) * total
    counts = np.append(observed[: k - 1], observed[k - 1 :].sum())
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert total > 30_000
    assert chi2 < stats.chi2.ppf(1 - 1e-6, df=k - 1), chi2
    # The first event of each subject: its tick is Geometric(p) on {0, 1, ...} too.
    firsts = np.asarray(sorted(seen.values()))
    assert len(firsts) == 500


def test_choice_between_transitions_follows_their_probabilities() -> None:
    """Given an attempt, transition i is chosen with probability p_i / sum(p)."""
    model = Model(["s"], "s")
    probabilities = {"a": 1.0, "b": 3.0, "zero": 0.0, "c": 6.0}
    for trigger, p in probabilities.items():
        model.add_transition(trigger, "s", "s", p)
    result = Simulation(model, 2_000, ticks=2_000, tick_ms=1, seed=8).run()
    counts = result.events_by_trigger()
    total = sum(counts.values())
    assert counts["zero"] == 0
    for trigger, p in probabilities.items():
        share = p / 10.0
        sd = math.sqrt(total * share * (1 - share))
        assert abs(counts[trigger] - total * share) <= Z * sd, trigger
