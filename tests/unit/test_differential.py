"""Differential tests: the engine against the per-tick reference and the exact law.

Hypothesis draws random models (1-40 states, sparse and dense chances, final states, tick
lengths from 1 ms to 10 min, runs spanning many 64-tick calendar blocks, long sparse runs of
10^5+ ticks) and random feature combinations (calendar profiles, vetoes, arrivals with and
without a profile, churn, jitter, rates). Each run, of the engine and (when small enough)
of `tests.unit.reference.Reference`, is checked

- exactly: timestamps non-decreasing and within the run; (timestamp, subject) strictly
  increasing (within a tick subjects come in creation order, or in jittered-timestamp order);
  stamps on the tick without jitter and inside it with; both sinks of every transition
  called in their order with the same events; each sink closed once; every subject's events
  chain from the initial state to its final state in `subject_states()`;
- in law (`tests.unit.reference.ExactLaw`): the initial cohort's occupancy at several ticks
  (exact binomial quantiles), its events per transition (mean and variance computed from the
  law; normal bound plus z**2 for the skew of small counts), the number of newcomers and their
  final states (exact Poisson quantiles), and the waits between attempts (geometric with the
  state's total chance; chi-square with computed critical values).

With a shared resource there is no closed-form law: the exact rules are checked (capacity,
holds, chains, timestamps) and engine and reference are compared over independent
replications (Welch's t). Stopping at a random tick, checkpointing and resuming must give
the uninterrupted run's events exactly (vetoes, subject ids and holds then draw from the
global `random`, which the checkpoint carries).

False alarms: each test spends ``ALPHA = 1e-6`` in all, split evenly (Bonferroni) over its
examples, its runs and the quantities each run compares. The default profile (``ci``) is
derandomized, so the examples and seeds are the same on every run.

How to run:
    pytest tests/unit/test_differential.py                 # ci profile, < 60 s
    pytest tests/unit/test_differential.py -m slow         # the long profile (minutes)
    DOGESIM_HYPOTHESIS=long pytest tests/unit/test_differential.py   # every test, long
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dogesim import MemorySink, Model, Profile, Rate, Simulation, Transition
from tests.hypothesis_profiles import LONG
from tests.unit.reference import ExactLaw, Reference, arrival_rate

#: Every test here runs on both engine paths: the compiled kernel and its Python twin.
pytestmark = pytest.mark.usefixtures("kernel_path")

#: Chance of a false alarm per test, over all its examples.
ALPHA = 1e-6
#: 2026-01-05 00:00 UTC, a Monday: profiles see real hours and weekdays.
EPOCH = 1_767_571_200_000
TICK_LENGTHS = (1, 1_000, 60_000, 600_000)
#: The reference runs only when subjects x ticks stays under this (it pays per tick).
REFERENCE_BUDGET = 60_000


# -- scenarios ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A random model and run settings, rebuilt identically from its numbers."""

    n_states: int
    spec_seed: int
    dense: bool
    subjects: int
    ticks: int
    tick_ms: int
    start_hours: int
    seed: int
    profiles: bool = False
    vetoes: bool = False
    arrivals: float | None = None
    arrivals_profile: bool = False
    churn: float | None = None
    jitter: bool = False
    rates: bool = False
    split_rates: bool = False  # rates with several transitions per state (the per-state law)
    resource: int = 0  # capacity of the resource "desk" some transitions hold (0: none)
    random_holds: bool = False  # holds drawn from the global `random` at each grant

    @property
    def timestamp_start(self) -> int:
        return EPOCH + self.start_hours * 3_600_000

    def build(self, sinks: list[Any], veto_rng: Any = None) -> Model:
        """The model, every transition feeding `sinks` (vetoes draw from `veto_rng`, a
        `random.Random` or the `random` module)."""
        rng = np.random.default_rng(self.spec_seed)
        n = self.n_states
        model = Model([f"s{k}" for k in range(n)], "s0")
        if self.resource:
            model.add_resource("desk", self.resource)
        counter = 0
        for k in range(n):
            if n > 1 and k > 0 and rng.random() < 0.2:
                continue  # a final state
            width = int(rng.integers(1, min(n, 5) + 1))
            targets = rng.integers(0, n, size=width).tolist()
            total = rng.uniform(20.0, 85.0) if self.dense else 10 ** rng.uniform(-2.5, 0.3)
            shares = rng.dirichlet(np.ones(width)) * total
            shares[rng.random(width) < 0.1] = 0.0
            as_rate = self.rates and (width == 1 or self.split_rates)
            # A period of 1, 6 or 60 ticks keeps every state's chance per tick under 86%.
            period = self.tick_ms * int(rng.choice([1, 6, 60]))
            if self.split_rates:
                # Per-state and per-transition rescaling differ most when a tick spans
                # several periods (the per-state law keeps the state's total under 100%).
                ratio = int(rng.choice([2, 4]))
                period = max(1, self.tick_ms // ratio)
            counting = bool(rng.random() < 0.5)
            if as_rate and self.split_rates:
                # Keep the state's chance per tick under 90% (churn adds up to 5%): a total
                # P per period gives 1 - (1 - P)**ratio per tick, a count L gives 1 - e**-L*ratio.
                most = (
                    50.0 * math.log(10.0) / ratio if counting else 100.0 * (1 - 0.1 ** (1 / ratio))
                )
                shares *= min(1.0, most / max(float(shares.sum()), 1e-300))
            for target, share in zip(targets, shares.tolist(), strict=True):
                trigger = f"t{counter}"
                counter += 1
                chance: float | Rate = float(share)
                extra: dict[str, Any] = {}
                if as_rate:
                    chance = (
                        Rate.per(share / 50.0, period) if counting else Rate.percent(share, period)
                    )
                elif self.profiles and rng.random() < 0.6:
                    extra["profile"] = Profile(hourly=rng.uniform(0.0, 1.6, 24).tolist())
                    # At the profile's peak the chance is at most the share drawn.
                    chance = float(share) / max(extra["profile"].peak, 1.0)
                if self.resource and rng.random() < 0.4:
                    extra["resource"] = "desk"
                    extra["hold"] = hold_of(trigger, self.random_holds)
                callback = None
                if self.vetoes and rng.random() < 0.5:
                    callback = Veto(veto_chance(trigger), veto_rng or random.Random(0))
                model.add_transition(
                    trigger, f"s{k}", f"s{target}", chance, callback, sinks, **extra
                )
        return model

    def options(self) -> dict[str, Any]:
        """The run settings, as keyword arguments of `Simulation` and `Reference`."""
        return {
            "ticks": self.ticks,
            "tick_ms": self.tick_ms,
            "timestamp_start": self.timestamp_start,
            "jitter": self.jitter,
            "arrivals": self.arrivals,
            "arrivals_profile": self.profile_of_arrivals(),
            "churn": self.churn,
        }

    def law(self) -> ExactLaw:
        model = self.build([])
        vetoed = {t.trigger: veto_chance(t.trigger) for t in model.transitions if t.action_callback}
        return ExactLaw(
            model,
            self.tick_ms,
            timestamp_start=self.timestamp_start,
            churn=self.churn,
            veto=vetoed,
        )

    def profile_of_arrivals(self) -> Profile | None:
        if not self.arrivals_profile:
            return None
        hourly = np.random.default_rng(self.spec_seed + 1).uniform(0.0, 2.0, 24)
        return Profile(hourly=hourly.tolist())


def hold_of(trigger: str, drawn: bool) -> int | Callable[[Any, Transition], int]:
    """A fixed hold of 1..20 ticks per trigger, or one drawn per grant from global `random`."""
    if not drawn:
        return 1 + int(trigger[1:]) * 7 % 20
    return lambda subject, transition: random.randint(1, 20)


def veto_chance(trigger: str) -> float:
    """A fixed veto chance per trigger (0.1 .. 0.8)."""
    return 0.1 + 0.7 * (int(trigger[1:]) * 0.618034 % 1.0)


class Veto:
    """A callback that vetoes an attempt with a fixed chance, drawing from its own RNG."""

    def __init__(self, chance: float, rng: Any) -> None:
        self.chance = chance
        self.rng = rng

    def __call__(self, subject: Any, transition: Transition) -> bool:
        return self.rng.random() >= self.chance


class Numbered:
    """Makes subjects numbered in creation order."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(self) -> Any:
        subject = Subject(self.made)
        self.made += 1
        return subject


@dataclass
class Subject:
    id: int


@st.composite
def scenarios(
    draw: Callable[..., Any],
    *,
    max_states: int = 40,
    long: bool = False,
    rates: bool = False,
    split_rates: bool = False,
    plain: bool = False,
    with_resource: bool = False,
    resumable: bool = False,
) -> Scenario:
    """A random scenario: model shape, run length and feature combination.

    `plain`: no profiles or vetoes (waits are then geometric); `with_resource`: a resource
    with fixed holds; `resumable`: maybe a resource with holds drawn per grant, at least
    two ticks."""
    # Per-state and per-transition rescaling differ most for large chances: dense.
    dense = split_rates or (draw(st.booleans()) and not long)
    if long:
        ticks = draw(st.integers(100_000, 120_000))
        subjects = draw(st.sampled_from([40, 10, 1]))
        arrivals = draw(st.none() | st.sampled_from([0.001, 0.01]))
    else:
        lengths = [7, 64, 65, 200, 700, 1500] if resumable else [1, 7, 64, 65, 200, 700, 1500]
        ticks = draw(st.sampled_from(lengths))
        most = max(1, (40_000 if dense else 200_000) // ticks)
        # Sampled sizes, not integers shrinking towards 1: most examples have some power.
        subjects = min(most, draw(st.sampled_from([300, 100, 30, 5, 1])))
        arrivals = draw(st.none() | st.sampled_from([0.001, 0.01, 0.2, 1.5]))
        if arrivals is not None:
            # The reference pays per subject per tick: keep rate * ticks**2 / 2 bounded.
            arrivals = min(arrivals, 100_000 / ticks**2 + 0.001)
    return Scenario(
        n_states=draw(st.integers(1, max_states)),
        spec_seed=draw(st.integers(0, 2**32 - 1)),
        dense=dense,
        subjects=subjects,
        ticks=ticks,
        tick_ms=draw(st.sampled_from(TICK_LENGTHS)),
        start_hours=draw(st.integers(0, 24 * 7)),
        seed=draw(st.integers(0, 2**32 - 1)),
        profiles=draw(st.booleans()) and not (long or plain),
        vetoes=draw(st.booleans()) and not plain,
        arrivals=arrivals,
        arrivals_profile=draw(st.booleans()) and not long,
        churn=draw(st.none() | st.sampled_from([0.01, 1.0, 5.0])),
        jitter=draw(st.booleans()),
        rates=rates or draw(st.booleans()),
        split_rates=split_rates,
        resource=draw(st.integers(1, 3))
        if with_resource or (resumable and draw(st.booleans()))
        else 0,
        random_holds=resumable and draw(st.booleans()),
    )


# -- running -------------------------------------------------------------------------------------


@dataclass
class Recorded:
    """What one run left: the events, the sinks' call log, the final states."""

    events: list[tuple[int, int, str, str, str]]
    second: list[tuple[int, int, str, str, str]]
    log: list[str]
    closes: tuple[int, int]
    states: list[str]


def _sinks() -> tuple[MemorySink, MemorySink, list[str]]:
    log: list[str] = []

    def mapper(name: str) -> Callable[[int, Any, Transition], Any]:
        def record(timestamp: int, subject: Any, transition: Transition) -> Any:
            log.append(name)
            return (
                timestamp,
                subject.id,
                transition.trigger,
                transition.from_state,
                transition.to_state,
            )

        return record

    return MemorySink(mapper("first"), "first"), MemorySink(mapper("second"), "second"), log


def run(scenario: Scenario, engine: bool) -> Recorded:
    """Run `scenario` on the engine or on the reference."""
    first, second, log = _sinks()
    veto_rng = random.Random(scenario.seed ^ (0 if engine else 1))
    model = scenario.build([first, second], veto_rng)
    factory = Numbered()
    subjects = [factory() for _ in range(scenario.subjects)]
    common = {**scenario.options(), "subject_factory": factory, "churn_sinks": [first, second]}
    states: list[str]
    if engine:
        sim = Simulation(model, subjects, seed=scenario.seed, **common)
        sim.run()
        states = sim.subject_states()
    else:
        reference = Reference(model, subjects, seed=scenario.seed, **common)
        reference.run()
        states = reference.subject_states()
    return Recorded(
        list(first.events),
        list(second.events),
        log,
        (first.closed_count, second.closed_count),
        states,
    )


# -- exact checks ---------------------------------------------------------------------------------


def check_exact(scenario: Scenario, rec: Recorded) -> None:
    """What the contract fixes exactly, event for event."""
    assert rec.closes == (1, 1)
    assert rec.second == rec.events
    assert rec.log == ["first", "second"] * len(rec.events)
    start, tick_ms = scenario.timestamp_start, scenario.tick_ms
    previous = (-1, -1)
    last_state: dict[int, str] = {}
    seen: set[tuple[int, int]] = set()
    for ts, subject, _trigger, source, target in rec.events:
        tick, offset = divmod(ts - start, tick_ms)
        if scenario.resource:
            # Grants of queued subjects come at their tick's start, before its attempts.
            assert ts >= previous[0], ("timestamps", previous, ts, subject)
            assert (tick, subject) not in seen, ("two events in one tick", tick, subject)
            seen.add((tick, subject))
        else:
            assert (ts, subject) > previous, ("order", previous, ts, subject)
        previous = (ts, subject)
        assert 0 <= tick < scenario.ticks
        assert offset == 0 or scenario.jitter
        assert last_state.get(subject, "s0") == source, ("chain", subject, source)
        last_state[subject] = target
    for subject, state in enumerate(rec.states):
        assert last_state.get(subject, "s0") == state, ("final", subject, state)


# -- law checks -------------------------------------------------------------------------------


def checks_of(ticks: int) -> list[int]:
    """The ticks whose occupancy is compared: spread evenly, and densely near the start
    (where chances, not the long-run mix, decide the occupancy)."""
    early = {3**k - 1 for k in range(12) if 3**k <= ticks}
    return sorted(early | {int(x) for x in np.linspace(0, ticks - 1, 5)})


def occupancy_at(rec: Recorded, n: int, tick: int, start: int, tick_ms: int) -> dict[str, int]:
    """States of the first `n` subjects after `tick`, from their events."""
    state = ["s0"] * n
    for ts, subject, _, _, target in rec.events:
        if (ts - start) // tick_ms > tick:
            break
        if subject < n:
            state[subject] = target
    counts: dict[str, int] = {}
    for s in state:
        counts[s] = counts.get(s, 0) + 1
    return counts


def law_quantities(scenario: Scenario, law: ExactLaw) -> int:
    """How many numbers `check_law` compares for one run."""
    n = len(law.states)
    count = len(checks_of(scenario.ticks)) * n + len(law.keys)
    return count + (n + 1 if scenario.arrivals is not None else 0)


def within_binomial(x: int, n: int, p: float, alpha: float) -> bool:
    p = min(max(p, 0.0), 1.0)
    return bool(stats.binom.ppf(alpha / 2, n, p) <= x <= stats.binom.isf(alpha / 2, n, p))


def within_poisson(x: int, mean: float, alpha: float) -> bool:
    if mean <= 0:
        return x == 0
    return bool(stats.poisson.ppf(alpha / 2, mean) <= x <= stats.poisson.isf(alpha / 2, mean))


def check_law(scenario: Scenario, rec: Recorded, law: ExactLaw, alpha: float) -> None:
    """Occupancy, events per transition and arrivals against the exact law, each at `alpha`."""
    n, ticks = scenario.subjects, scenario.ticks
    start, tick_ms = scenario.timestamp_start, scenario.tick_ms
    checks = checks_of(ticks)
    pis = law.occupancy(ticks, checks)
    for tick in checks:
        counts = occupancy_at(rec, n, tick, start, tick_ms)
        for k, state in enumerate(law.states):
            x = counts.get(state, 0)
            assert within_binomial(x, n, pis[tick][k], alpha), ("occupancy", tick, state, x, n)
    mean, var = law.events(ticks)
    z = float(stats.norm.isf(alpha / 2))
    observed: dict[tuple[str, str], int] = {}
    for _, subject, trigger, source, _ in rec.events:
        if subject < n:
            observed[(source, trigger)] = observed.get((source, trigger), 0) + 1
    for k, key in enumerate(law.keys):
        x = observed.get(key, 0)
        allowed = z * math.sqrt(max(n * var[k], 0.0)) + z * z
        assert abs(x - n * mean[k]) <= allowed, ("events", key, x, n * mean[k], allowed)
    if scenario.arrivals is None:
        return
    profile = scenario.profile_of_arrivals()
    rate = arrival_rate(scenario.arrivals, tick_ms)
    total = sum(
        rate * (profile.multiplier(start + t * tick_ms) if profile else 1.0) for t in range(ticks)
    )
    newcomers = rec.states[n:]
    assert within_poisson(len(newcomers), total, alpha), ("arrivals", len(newcomers), total)
    expected = law.arrivals(ticks, rate, profile)
    for k, state in enumerate(law.states):
        x = newcomers.count(state)
        assert within_poisson(x, float(expected[k]), alpha), ("newcomers", state, x, expected[k])


def differential(scenario: Scenario, examples: int) -> None:
    """Run the engine (and the reference when small) and check both, exactly and in law."""
    law = scenario.law()
    use_reference = scenario.subjects * scenario.ticks <= REFERENCE_BUDGET
    runs = 2 if use_reference else 1
    alpha = ALPHA / examples / runs / law_quantities(scenario, law)
    for engine in (True, False)[:runs]:
        rec = run(scenario, engine)
        try:
            assert set(rec.states) <= set(law.states)
            check_exact(scenario, rec)
            check_law(scenario, rec, law, alpha)
        except AssertionError as exc:
            raise AssertionError(f"{'engine' if engine else 'reference'}: {exc}") from exc


# -- the tests ----------------------------------------------------------------------------------


@given(scenarios())
def test_random_models_and_features_match_the_law(scenario: Scenario) -> None:
    """Random models x features: engine and reference exact in order and right in law."""
    differential(scenario, settings().max_examples)


@pytest.mark.slow
@LONG
@given(scenarios())
def test_random_models_and_features_match_the_law_long(scenario: Scenario) -> None:
    """The long profile of the random differential test."""
    differential(scenario, LONG.max_examples)


@settings(max_examples=3)
@given(scenarios(max_states=8, long=True))
def test_long_sparse_runs_match_the_law(scenario: Scenario) -> None:
    """10^5+ ticks with few subjects (thousands of calendar blocks) follow the law."""
    differential(scenario, 3)


@pytest.mark.slow
@settings(LONG, max_examples=25)
@given(scenarios(max_states=8, long=True))
def test_long_sparse_runs_match_the_law_long(scenario: Scenario) -> None:
    """The long profile of the long sparse runs."""
    differential(scenario, 25)


@settings(max_examples=8)
@given(scenarios(max_states=6, rates=True, split_rates=True))
def test_rates_split_per_state_match_the_law(scenario: Scenario) -> None:
    """Rates with several transitions per state: the engine follows the per-state law."""
    differential(scenario, 8)


# -- waits between attempts -------------------------------------------------------------------


def leave_chances(law: ExactLaw) -> np.ndarray:
    """Per state, the chance per tick of an attempt (no profiles, no vetoes)."""
    _, q = law.at(0)
    total = np.zeros(len(law.states))
    np.add.at(total, [law.index[source] for source, _ in law.keys], q)
    return total


def gaps(rec: Recorded, n: int, tick_ms: int, start: int) -> list[tuple[str, int, int | None]]:
    """(state, tick it was entered, tick of the next event or None) for the first `n`
    subjects; the initial state counts as entered at tick -1 (first attempt at tick 0)."""
    open_gap: dict[int, tuple[str, int]] = {i: ("s0", -1) for i in range(n)}
    out: list[tuple[str, int, int | None]] = []
    for ts, subject, _, _, target in rec.events:
        if subject >= n:
            continue
        tick = (ts - start) // tick_ms
        state, since = open_gap[subject]
        out.append((state, since, tick))
        open_gap[subject] = (target, tick)
    out.extend((state, since, None) for state, since in open_gap.values())
    return out


def chi_square_bins(counts: np.ndarray, expected: np.ndarray) -> tuple[float, int]:
    """The chi-square statistic and its degrees of freedom, merging bins from the left
    until each expects at least 5."""
    merged_c: list[float] = []
    merged_e: list[float] = []
    c_acc = e_acc = 0.0
    for c, e in zip(counts.tolist(), expected.tolist(), strict=True):
        c_acc, e_acc = c_acc + c, e_acc + e
        if e_acc >= 5.0:
            merged_c.append(c_acc)
            merged_e.append(e_acc)
            c_acc = e_acc = 0.0
    if merged_c:
        merged_c[-1] += c_acc
        merged_e[-1] += e_acc
    c_arr, e_arr = np.asarray(merged_c), np.asarray(merged_e)
    return float(((c_arr - e_arr) ** 2 / np.maximum(e_arr, 1e-300)).sum()), len(merged_c) - 1


def check_waits(scenario: Scenario, rec: Recorded, law: ExactLaw, alpha: float) -> int:
    """In each state, the ticks to the next attempt are Geometric(P_s) on {1, 2, ...}:
    bins 1..K-1 and a tail >= K over gaps that began at least K ticks before the end
    (whether they are >= K is then known, whatever came later). Returns states tested."""
    chance = leave_chances(law)
    by_state: dict[str, list[tuple[int, int | None]]] = {}
    tested = 0
    found = gaps(rec, scenario.subjects, scenario.tick_ms, scenario.timestamp_start)
    for state, since, until in found:
        by_state.setdefault(state, []).append((since, None if until is None else until - since))
    for state, pairs in by_state.items():
        p = float(chance[law.index[state]])
        if p >= 1.0 - 1e-12:
            last = scenario.ticks - 1
            assert all(g == 1 for a, g in pairs if a < last), ("certain", state)
            continue
        if p <= 0.0:
            assert all(g is None for _, g in pairs), ("never", state)
            continue
        k = min(max(2, math.ceil(math.log(0.02) / math.log1p(-p)) + 1), scenario.ticks // 4)
        if k < 2:
            continue
        counts = np.zeros(k)
        for begun, length in pairs:
            if begun > scenario.ticks - 1 - k:
                continue
            counts[k - 1 if length is None or length >= k else length - 1] += 1
        total = counts.sum()
        pmf = p * (1 - p) ** np.arange(k - 1)
        expected = np.append(pmf, (1 - p) ** (k - 1)) * total
        if total < 30:
            continue
        statistic, df = chi_square_bins(counts, expected)
        if df < 1:
            continue
        assert statistic <= stats.chi2.isf(alpha, df), ("waits", state, statistic, df, p)
        tested += 1
    return tested


@given(scenarios(plain=True))
def test_waits_between_attempts_are_geometric(scenario: Scenario) -> None:
    """Ticks between a subject's attempts in a state are Geometric(the state's chance)."""
    # Enough gaps to test: at least 80 subjects over 400 ticks (still within the budget).
    scenario = replace(
        scenario, subjects=max(scenario.subjects, 80), ticks=max(scenario.ticks, 400)
    )
    law = scenario.law()
    use_reference = scenario.subjects * scenario.ticks <= REFERENCE_BUDGET
    runs = 2 if use_reference else 1
    alpha = ALPHA / settings().max_examples / runs / len(law.states)
    for engine in (True, False)[:runs]:
        rec = run(scenario, engine)
        try:
            check_waits(scenario, rec, law, alpha)
        except AssertionError as exc:
            raise AssertionError(f"{'engine' if engine else 'reference'}: {exc}") from exc


# -- stop and resume ----------------------------------------------------------------------------


class RandomId:
    """Subjects whose ids come from the global `random` (restored by a checkpoint)."""

    def __call__(self) -> Subject:
        return Subject(random.getrandbits(48))


class Stopper:
    """A sink that stops its run at the first event at or after `timestamp`."""

    def __init__(self, timestamp: int) -> None:
        self.timestamp = timestamp
        self.sim: Simulation | None = None

    def collect(self, timestamp: int, subject: Any, transition: Transition) -> None:
        if timestamp >= self.timestamp and self.sim is not None:
            self.sim.stop()

    def close(self) -> None:
        pass


def resumable_run(
    scenario: Scenario, stop_tick: int | None, path: str
) -> list[tuple[int, int, str, str, str]]:
    """The engine's events, uninterrupted (`stop_tick` None) or stopped at `stop_tick`,
    checkpointed to `path` and resumed into fresh sinks."""
    stamp = scenario.timestamp_start + (stop_tick or 0) * scenario.tick_ms
    options: dict[str, Any] = {
        "arrivals": scenario.arrivals,
        "arrivals_profile": scenario.profile_of_arrivals(),
        "churn": scenario.churn,
        "subject_factory": RandomId(),
    }

    def model_and_sinks() -> tuple[Model, MemorySink, Stopper]:
        first, _, _ = _sinks()
        stopper = Stopper(stamp)
        sinks: list[Any] = [first, stopper] if stop_tick is not None else [first]
        options["churn_sinks"] = sinks
        return scenario.build(sinks, random), first, stopper

    model, sink, stopper = model_and_sinks()
    settings_ = {key: value for key, value in scenario.options().items() if key not in options}
    sim = Simulation(model, scenario.subjects, seed=scenario.seed, **settings_, **options)
    stopper.sim = sim
    sim.run()
    events = list(sink.events)
    if stop_tick is None:
        return events
    assert sink.closed_count == 1
    sim.checkpoint(path)
    model, sink, stopper = model_and_sinks()
    resumed = Simulation.resume(path, model, **options)
    resumed.run()
    assert sink.closed_count == 1
    return events + list(sink.events)


@given(scenario=scenarios(max_states=12, resumable=True), where=st.floats(0.0, 1.0))
def test_resume_at_a_random_tick_equals_the_uninterrupted_run(
    scenario: Scenario, where: float, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Stop at a random tick, checkpoint, resume: the events equal the uninterrupted run's."""
    path = str(tmp_path_factory.mktemp("resume") / "run.ckpt")
    whole = resumable_run(scenario, None, path)
    stop_tick = int(where * (scenario.ticks - 1))
    assert resumable_run(scenario, stop_tick, path) == whole


# -- resources ------------------------------------------------------------------------------------


def check_resources(scenario: Scenario, rec: Recorded, model: Model) -> None:
    """Holds last their ticks, no more subjects hold the resource than its capacity, and a
    holder's next event comes after its hold."""
    holds = {(t.from_state, t.trigger): t.hold for t in model.transitions if t.resource}
    start, tick_ms = scenario.timestamp_start, scenario.tick_ms
    changes = np.zeros(scenario.ticks + 21, dtype=np.int64)
    busy_until: dict[int, int] = {}
    for ts, subject, trigger, source, _ in rec.events:
        tick = (ts - start) // tick_ms
        assert tick >= busy_until.get(subject, 0), ("event during a hold", subject, tick)
        hold = holds.get((source, trigger))
        if isinstance(hold, int):
            changes[tick] += 1
            changes[tick + hold] -= 1
            busy_until[subject] = tick + hold
    assert int(np.cumsum(changes).max(initial=0)) <= scenario.resource


@given(scenarios(max_states=10, with_resource=True))
def test_resources_respect_capacity_holds_and_order(scenario: Scenario) -> None:
    """With a shared resource, engine and reference keep the exact rules (order, chains,
    capacity, holds)."""
    for engine in (True, False):
        if not engine and scenario.subjects * scenario.ticks > REFERENCE_BUDGET:
            continue
        rec = run(scenario, engine)
        try:
            check_exact(scenario, rec)
            check_resources(scenario, rec, scenario.build([]))
        except AssertionError as exc:
            raise AssertionError(f"{'engine' if engine else 'reference'}: {exc}") from exc


def totals(rec: Recorded) -> dict[str, float]:
    """A run's events per (state, trigger) and its final occupancy per state."""
    out: dict[str, float] = {}
    for _, _, trigger, source, _ in rec.events:
        key = f"events {source}/{trigger}"
        out[key] = out.get(key, 0.0) + 1.0
    for state in rec.states:
        out[f"state {state}"] = out.get(f"state {state}", 0.0) + 1.0
    return out


def welch_ok(a: np.ndarray, b: np.ndarray, alpha: float) -> bool:
    """Two samples of run totals have the same mean, by Welch's t at level `alpha`."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return bool(a.mean() == b.mean())
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1) + 1e-300)
    t = abs(a.mean() - b.mean()) / math.sqrt(va + vb)
    return bool(t <= stats.t.isf(alpha / 2, max(df, 1.0)))


#: Replications per side when engine and reference are compared with no exact law.
REPLICATIONS = 40


@settings(max_examples=6)
@given(scenarios(max_states=6, with_resource=True))
def test_resources_engine_and_reference_agree_in_law(scenario: Scenario) -> None:
    """With a shared resource (no closed-form law), engine and reference give the same mean
    events per transition and final occupancy over independent replications (Welch's t)."""
    small = replace(scenario, subjects=min(scenario.subjects, 30), ticks=min(scenario.ticks, 200))
    sides: list[list[dict[str, float]]] = [[], []]
    for r in range(REPLICATIONS):
        run_r = replace(small, seed=small.seed + r)
        sides[0].append(totals(run(run_r, True)))
        sides[1].append(totals(run(run_r, False)))
    keys = sorted({k for side in sides for run_totals in side for k in run_totals})
    alpha = ALPHA / 6 / max(len(keys), 1)
    for key in keys:
        a, b = (np.asarray([t.get(key, 0.0) for t in side]) for side in sides)
        assert welch_ok(a, b, alpha), (key, a.mean(), b.mean())
