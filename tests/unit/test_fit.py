"""Calibration: exposure and counts are exact, the MLE recovers the model, and the 95%
intervals cover the truth at their nominal rate over many seeds."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from dogesim import DogesimError, MemorySink, Model, Simulation
from dogesim.examples import banking
from dogesim.modelfile import load_model_file
from dogesim.report.fit import fit_event_log, wilson_interval


def record(timestamp: int, subject: Any, transition: Any) -> tuple[Any, ...]:
    return (subject.id, timestamp, transition.trigger, transition.from_state, transition.to_state)


def as_log(events: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    keys = ("subject", "timestamp", "trigger", "from_state", "to_state")
    return [dict(zip(keys, event, strict=True)) for event in events]


def three_state() -> Model:
    """A small chain with a self-loop event and two ways out of `b`."""
    model = Model(["a", "b", "c"], "a", name="abc")
    model.add_transition("go", "a", "b", 5)
    model.add_transition("ping", "a", "a", 10)
    model.add_transition("deeper", "b", "c", 20)
    model.add_transition("back", "b", "a", 10)
    model.add_transition("reset", "c", "a", 30)
    return model


def simulate(model: Model, subjects: int, ticks: int, seed: int) -> tuple[Any, list[Any]]:
    sink = MemorySink(record)
    model = Model(
        model.states,
        model.initial_state,
        [dataclasses.replace(t, event_sinks=(sink,)) for t in model.transitions],
        name=model.name,
    )
    result = Simulation(model, subjects, ticks=ticks, tick_ms=1000, seed=seed).run()
    return result, sink.events


def test_wilson_interval_known_values() -> None:
    """Textbook Wilson intervals (z = 1.96): 5/10 and 0/10."""
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(1.959964**2 / (10 + 1.959964**2), abs=1e-6)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_log_likelihood_and_exposure_by_hand() -> None:
    """One subject over 5 ticks: a (ticks 0-1), go at 1, b (2-3), back at 3, a (4)."""
    log = as_log([(7, 1000, "go", "a", "b"), (7, 3000, "back", "b", "a")])
    fit = fit_event_log(log, tick_ms=1000, states=["a", "b"], window_start=0, ticks=5)
    assert fit.exposure == {"a": 3, "b": 2}
    go, back = fit.transitions
    assert (go.trigger, go.events, go.exposure, go.probability) == ("go", 1, 3, 1 / 3)
    assert (back.trigger, back.probability) == ("back", 1 / 2)
    expected = math.log(1 / 3) + 2 * math.log(2 / 3) + 2 * math.log(1 / 2)
    assert fit.log_likelihood == pytest.approx(expected, abs=1e-12)


def test_censored_window_exposure_and_counts_are_exact() -> None:
    """A window cut from the middle of a run (censored at both ends, silent subjects given by
    state) yields exactly the engine's subject-ticks per state and events per transition."""
    model = three_state()
    result, events = simulate(model, 400, 300, seed=12)
    start, stop = 100, 250
    # The state of every subject just before the window, from the full log.
    state = dict.fromkeys(range(400), "a")
    active = set()
    for subject, ts, _, _, to_state in events:
        if ts < start * 1000:
            state[subject] = to_state
        elif ts < stop * 1000:
            active.add(subject)
    silent: dict[str, int] = {}
    for subject, where in state.items():
        if subject not in active:
            silent[where] = silent.get(where, 0) + 1
    fit = fit_event_log(
        as_log(events),
        tick_ms=1000,
        model=model,
        window_start=start * 1000,
        window_end=stop * 1000,
        silent=silent,
    )
    before = result.occupancy[start - 1 : stop - 1]  # occupancy at the start of each tick
    expected_exposure = dict(zip(result.states, before.sum(axis=0).tolist(), strict=True))
    assert fit.exposure == expected_exposure
    window_events = result.events_per_tick[start:stop].sum(axis=0)
    assert [t.events for t in fit.transitions] == window_events.tolist()
    assert fit.ticks == stop - start and fit.subjects == 400


def test_fit_recovers_banking_probabilities() -> None:
    """The bare banking chain, 20k subjects: every estimate is within 5 sd of the truth and
    the exposure matches the run's subject-ticks."""
    sink = MemorySink(lambda ts, s, t: (s.user_id, ts, t.trigger, t.from_state, t.to_state))
    result = banking.banking_simulation(
        [sink], subjects=20_000, ticks=600, seed=77, callbacks=False
    ).run()
    fit = fit_event_log(
        as_log(sink.events),
        tick_ms=60_000,
        model=banking.build_banking_model(callbacks=False),
        window_start=0,
        ticks=600,
        subjects=20_000,
    )
    from dogesim.report.tables import transition_table

    exposure = transition_table(result).set_index("trigger")["subject_ticks"]
    for t in fit.transitions:
        assert t.exposure == exposure[t.trigger]
        p = t.configured
        assert p is not None
        assert abs(t.probability - p) <= 5 * math.sqrt(p * (1 - p) / t.exposure), t.trigger
    table = fit.table()
    assert list(table["configured_pct"]) == [row[3] for row in banking.TRANSITIONS]


@pytest.mark.parametrize("seeds", [40, pytest.param(400, marks=pytest.mark.slow)])
def test_intervals_cover_at_nominal_rate_over_many_seeds(seeds: int) -> None:
    """Over many seeds each transition's 95% interval covers the true probability a number
    of times consistent with Binomial(seeds, 0.95); pooled over the 5 transitions, too."""
    level = 0.95
    covered: dict[str, int] = {}
    model = three_state()
    truth = {t.trigger: t.probability / 100 for t in model.transitions}
    for seed in range(seeds):
        _, events = simulate(model, 150, 80, seed=1000 + seed)
        fit = fit_event_log(
            as_log(events),
            tick_ms=1000,
            model=model,
            window_start=0,
            ticks=80,
            subjects=150,
            confidence=level,
        )
        for t in fit.transitions:
            covered[t.trigger] = covered.get(t.trigger, 0) + int(
                t.ci_low <= truth[t.trigger] <= t.ci_high
            )
    # Per transition: fail only if the count is below what nominal coverage gives with
    # probability 0.001/5 (Bonferroni over the transitions).
    low_each = stats.binom.ppf(0.001 / 5, seeds, level)
    for trigger, count in covered.items():
        assert count >= low_each, (trigger, count, low_each)
    # Pooled: two-sided, also catching intervals that are too wide.
    pooled = sum(covered.values())
    n = seeds * len(covered)
    low, high = stats.binom.ppf(1e-4, n, level), stats.binom.isf(1e-4, n, level)
    assert low <= pooled <= high, (pooled, low, high)


def test_fitted_model_file_round_trip(tmp_path: Path) -> None:
    """write_model_file writes a model that loads, with the fitted probabilities."""
    model = three_state()
    _, events = simulate(model, 300, 100, seed=3)
    fit = fit_event_log(
        as_log(events), tick_ms=1000, model=model, window_start=0, ticks=100, subjects=300
    )
    fit.write_model_file(tmp_path / "fitted.yaml", name="abc_fitted", seed=5)
    spec = load_model_file(tmp_path / "fitted.yaml")
    assert spec.name == "abc_fitted" and spec.seed == 5 and spec.subjects.count == 300
    for written, fitted in zip(spec.transitions, fit.transitions, strict=True):
        assert written.trigger == fitted.trigger
        assert written.probability == pytest.approx(100 * fitted.probability, rel=1e-5)
        assert written.description is not None and "95% CI" in written.description
    spec.run(sinks=[])


def test_unseen_transitions_and_silent_subjects() -> None:
    """A configured transition with no events gets 0 with a non-empty interval; silent
    subjects add exposure in the initial state."""
    model = three_state()
    log = as_log([(1, 2000, "go", "a", "b")])
    fit = fit_event_log(log, tick_ms=1000, model=model, window_start=0, ticks=10, subjects=4)
    by_trigger = {t.trigger: t for t in fit.transitions}
    assert by_trigger["go"].exposure == 3 + 3 * 10
    assert by_trigger["reset"].events == 0 and by_trigger["reset"].ci_high == 1.0
    assert by_trigger["ping"].probability == 0 and by_trigger["ping"].ci_high > 0
    assert fit.silent == {"a": 3}


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (
            [(1, 1000, "go", "a", "b"), (1, 2000, "go", "a", "b")],
            "ends in 'b' at 1000 but its next",
        ),
        ([(1, 1000, "go", "a", "b"), (1, 1500, "back", "b", "a")], "two events in tick 1"),
        ([(1, 1000, "go", "a", "z")], r"states \['z'\] that are not in"),
    ],
)
def test_inconsistent_logs_are_rejected(events: list[tuple[Any, ...]], message: str) -> None:
    """Gaps, double moves in a tick and unknown states are errors naming the subject/state."""
    with pytest.raises(DogesimError, match=message):
        fit_event_log(
            as_log(events), tick_ms=1000, states=["a", "b", "c"], window_start=0, ticks=10
        )


def test_population_smaller_than_log_is_rejected() -> None:
    """`subjects` below the number of subjects in the log is an error."""
    log = as_log([(1, 0, "go", "a", "b"), (2, 0, "go", "a", "b")])
    with pytest.raises(DogesimError, match="subjects=1 but the log shows 2"):
        fit_event_log(log, tick_ms=1000, states=["a", "b"], window_start=0, ticks=3, subjects=1)


def test_fit_from_csv_file(tmp_path: Path) -> None:
    """A CSV log with dotted subject columns (as CsvSink writes) fits like JSONL."""
    spec = load_model_file(
        Path(__file__).resolve().parents[2] / "models" / "ecommerce.yaml",
        subjects=200,
        ticks=120,
    )
    from dogesim.sinks.files import CsvSink

    path = tmp_path / "ev.csv"
    spec.run(sinks=[CsvSink(path)])
    fit = fit_event_log(path, tick_ms=spec.tick_ms, model=spec, ticks=120, subjects=200)
    assert fit.events == sum(t.events for t in fit.transitions) > 0
    assert np.isfinite(fit.log_likelihood)
