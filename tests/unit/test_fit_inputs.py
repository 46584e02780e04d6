"""Fit inputs: ISO vs epoch timestamps, survey weights, the roster, the initial mix, calendar
months and per-group fits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from dogesim import DogesimError, MemorySink, Model, Simulation
from dogesim.report.fit import fit_by, fit_event_log
from dogesim.report.observed import TickGrid, observe, timestamps_ms
from tests.unit.fit_helpers import (
    count_covered,
    coverage_bounds,
    draw_chain,
    month_times,
)

CHAIN = {"a": [("b", 0.05)], "b": [("a", 0.1), ("c", 0.05)], "c": [("a", 0.2)]}


def engine_log(subjects: int, ticks: int, seed: int) -> tuple[Any, pd.DataFrame]:
    """A real engine run of a three-state chain, as a DataFrame log."""
    model = Model(["a", "b", "c"], "a", name="abc")
    sink = MemorySink(lambda ts, s, t: (s.id, ts, t.trigger, t.from_state, t.to_state))
    model.add_transition("go", "a", "b", 5, event_sinks=[sink])
    model.add_transition("back", "b", "a", 10, event_sinks=[sink])
    model.add_transition("deeper", "b", "c", 5, event_sinks=[sink])
    model.add_transition("reset", "c", "a", 20, event_sinks=[sink])
    result = Simulation(model, subjects, ticks=ticks, tick_ms=1000, seed=seed).run()
    log = pd.DataFrame(
        sink.events, columns=["subject", "timestamp", "trigger", "from_state", "to_state"]
    )
    return result, log


def test_timestamps_ms_reads_iso_through_an_explicit_unit() -> None:
    """ISO strings of any precision and offset give exact epoch ms (not 1000x too small)."""
    column = pd.Series(
        [
            "1970-01-01T00:00:01.500Z",
            "2026-03-01T10:00:00+02:00",
            "2026-03-01T08:00:00.000001Z",
            "2026-03-01 08:00:00",
        ]
    )
    expected = [1500, 1772352000000, 1772352000000, 1772352000000]
    assert timestamps_ms(column).tolist() == expected
    assert timestamps_ms(pd.Series([1500, 1772352000000])).tolist() == [1500, 1772352000000]
    as_datetimes = pd.Series(pd.to_datetime(column.iloc[:2], utc=True, format="ISO8601"))
    assert timestamps_ms(as_datetimes).tolist() == expected[:2]
    with pytest.raises(DogesimError, match="neither epoch milliseconds nor ISO-8601"):
        timestamps_ms(pd.Series(["yesterday"]))


def test_iso_and_epoch_logs_give_the_same_fit() -> None:
    """The same engine log with epoch-ms and with ISO-8601 timestamps fits identically."""
    _, log = engine_log(200, 60, seed=4)
    start = 1_700_000_000_000
    epoch = log.assign(timestamp=log["timestamp"] + start)
    iso = epoch.assign(
        timestamp=pd.to_datetime(epoch["timestamp"], unit="ms", utc=True).dt.strftime(
            "%Y-%m-%dT%H:%M:%S.%f+00:00"
        )
    )
    fits = [
        fit_event_log(frame, tick_ms=1000, window_start=start, ticks=60, subjects=200)
        for frame in (epoch, iso)
    ]
    pd.testing.assert_frame_equal(fits[0].table(), fits[1].table())
    assert fits[0].exposure == fits[1].exposure and fits[0].events == len(log) > 0


def test_roster_makes_silent_subjects_count_exactly() -> None:
    """With the whole population in a roster, exposures equal the engine's subject-ticks per
    state and silent subjects are counted, over a window where many never move."""
    result, log = engine_log(300, 6, seed=9)
    roster = pd.DataFrame({"subject": range(300), "state": "a"})
    fit = fit_event_log(log, tick_ms=1000, window_start=0, ticks=6, roster=roster)
    before = np.vstack([np.array([[300, 0, 0]]), result.occupancy[:-1]])
    assert fit.exposure == dict(zip(result.states, before.sum(axis=0).tolist(), strict=True))
    assert fit.subjects == 300 and sum(fit.silent.values()) == 300 - log["subject"].nunique()
    assert fit.initial_source == "roster"
    without = fit_event_log(log, tick_ms=1000, window_start=0, ticks=6)
    assert without.subjects == log["subject"].nunique() < 300
    assert without.transitions[0].probability > fit.transitions[0].probability


def test_roster_disagreeing_with_the_log_is_rejected() -> None:
    """A roster state other than the first event's origin, a subject missing from the roster,
    and a duplicated roster row are errors naming the subject."""
    log = pd.DataFrame([{"subject": 1, "timestamp": 2000, "from_state": "a", "to_state": "b"}])
    options: dict[str, Any] = {"tick_ms": 1000, "states": ["a", "b"], "window_start": 0, "ticks": 5}
    with pytest.raises(DogesimError, match="subject 1 is in 'b' at the window start"):
        fit_event_log(log, roster={1: "b", 2: "a"}, **options)
    with pytest.raises(DogesimError, match=r"subjects \[1\] are in the event log but not"):
        fit_event_log(log, roster={2: "a"}, **options)
    twice = pd.DataFrame({"subject": [1, 1], "state": ["a", "a"]})
    with pytest.raises(DogesimError, match="subject 1 is listed twice"):
        fit_event_log(log, roster=twice, **options)


def test_weight_two_is_a_duplicated_subject() -> None:
    """Giving a subject weight 2 gives the same estimates, exposures and initial mix as
    listing it twice; equal weights of any size give the unweighted intervals."""
    rng = np.random.default_rng(5)
    log, roster = draw_chain(CHAIN, {"a": 0.6, "b": 0.4}, 80, 40, rng)
    heavy = 7
    copy = log[log["subject"] == heavy].assign(subject=1000)
    doubled_log = pd.concat([log, copy], ignore_index=True)
    doubled_roster = pd.concat(
        [roster, roster[roster["subject"] == heavy].assign(subject=1000)], ignore_index=True
    )
    weights = roster.assign(w=np.where(roster["subject"] == heavy, 2.0, 1.0))
    options: dict[str, Any] = {"tick_ms": 1000, "window_start": 0, "ticks": 40}
    doubled = fit_event_log(doubled_log, roster=doubled_roster, **options)
    weighted = fit_event_log(log, roster=weights, weight="w", **options)
    for d, w in zip(doubled.transitions, weighted.transitions, strict=True):
        assert (d.trigger, d.events, d.exposure) == (w.trigger, w.events, w.exposure)
        assert d.probability == pytest.approx(w.probability, rel=1e-12)
    assert [s.count for s in doubled.initial_mix] == [s.count for s in weighted.initial_mix]
    plain = fit_event_log(log, roster=roster, **options)
    equal = fit_event_log(log, roster=roster.assign(w=3.7), weight="w", **options)
    for p, e in zip(plain.transitions, equal.transitions, strict=True):
        assert (p.ci_low, p.ci_high) == pytest.approx((e.ci_low, e.ci_high), rel=1e-9)
        assert e.exposure == pytest.approx(3.7 * p.exposure)


def test_weights_from_the_log_must_be_one_per_subject() -> None:
    """A weight column in the log is per subject: two values for one subject are refused,
    and a negative weight too."""
    log = pd.DataFrame(
        [
            {"subject": 1, "timestamp": 0, "from_state": "a", "to_state": "b", "w": 1.0},
            {"subject": 1, "timestamp": 1000, "from_state": "b", "to_state": "a", "w": 2.0},
        ]
    )
    with pytest.raises(DogesimError, match="subject 1 has several values of 'w'"):
        fit_event_log(log, tick_ms=1000, weight="w", ticks=3)
    with pytest.raises(DogesimError, match=r"weight -1\.0"):
        fit_event_log(log.assign(w=-1.0), tick_ms=1000, weight="w", ticks=3)


@pytest.mark.parametrize("seeds", [40, pytest.param(1000, marks=pytest.mark.slow)])
def test_weighted_intervals_cover_at_nominal_rate(seeds: int) -> None:
    """With unequal (non-informative) weights, the Kish-adjusted 95% intervals of a chain's
    chances cover the truth a number of times consistent with Binomial(seeds, 0.95)."""
    truth = 0.05
    rng = np.random.default_rng(2026)
    pairs = []
    for _ in range(seeds):
        weights = rng.choice([0.5, 1.0, 4.0], 120)
        log, roster = draw_chain({"a": [("b", truth)], "b": [("a", 0.2)]}, "a", 120, 30, rng)
        fit = fit_event_log(
            log, tick_ms=1000, window_start=0, ticks=30, roster=roster.assign(w=weights), weight="w"
        )
        go = next(t for t in fit.transitions if t.from_state == "a")
        pairs.append((go.ci_low, go.ci_high))
    low, high = coverage_bounds(seeds, 0.95)
    assert low <= count_covered(pairs, truth) <= high


@pytest.mark.parametrize("seeds", [40, pytest.param(1000, marks=pytest.mark.slow)])
def test_initial_mix_from_the_roster_with_covering_intervals(seeds: int) -> None:
    """Initial shares are the roster's proportions; over many seeds each 95% interval covers
    its true share at a rate consistent with Binomial(seeds, 0.95)."""
    truth = {"a": 0.5, "b": 0.3, "c": 0.2}
    rng = np.random.default_rng(17)
    intervals: dict[str, list[tuple[float, float]]] = {s: [] for s in truth}
    for _ in range(seeds):
        log, roster = draw_chain(CHAIN, truth, 60, 3, rng)
        fit = fit_event_log(log, tick_ms=1000, window_start=0, ticks=3, roster=roster)
        counts = roster["state"].value_counts()
        for share in fit.initial_mix:
            assert share.count == counts.get(share.state, 0)
            intervals[share.state].append((share.ci_low, share.ci_high))
    low, high = coverage_bounds(seeds, 0.95, alpha=1e-3 / 3)
    for state, pairs in intervals.items():
        assert low <= count_covered(pairs, truth[state]) <= high, state


def test_initial_mix_is_written_to_the_model_file() -> None:
    """A fit whose subjects start in several states writes `initial_state: {state: count}`
    (counts summing to the population) and never silently a single state."""
    log = pd.DataFrame(
        [
            {"subject": 1, "timestamp": 1000, "from_state": "a", "to_state": "b"},
            {"subject": 2, "timestamp": 2000, "from_state": "b", "to_state": "a"},
        ]
    )
    roster = {1: "a", 2: "b", 3: "b", 4: "c", 5: "b"}
    fit = fit_event_log(
        log, tick_ms=1000, states=["a", "b", "c"], window_start=0, ticks=4, roster=roster
    )
    assert fit.initial_counts() == {"a": 1, "b": 3, "c": 1}
    assert fit.initial_state == "b"
    text = fit.write_model_file()
    assert 'initial_state: {"a": 1, "b": 3, "c": 1}\n' in text
    assert "# initial mix from the roster (95% CI): a 20.0%" in text
    single = fit_event_log(log.iloc[:1], tick_ms=1000, states=["a", "b"], window_start=0, ticks=4)
    assert "initial_state: a\n" in single.write_model_file()
    assert single.initial_source == "first events"


def test_calendar_month_ticks() -> None:
    """With tick '1mo' a tick is a calendar month (28 to 31 days): events on any day of a
    month fall in that month's tick."""
    times = month_times(14)
    grid = TickGrid.parse("1mo", int(times[0]))
    assert grid.index(times).tolist() == list(range(14))
    assert grid.index(times[1:] - 1).tolist() == list(range(13))
    assert grid.times(np.arange(14)).tolist() == times.tolist()
    assert grid.month_of_year(np.array([0, 1, 12])).tolist() == [1, 2, 1]
    log = pd.DataFrame(
        [
            {
                "subject": 1,
                "timestamp": int(times[1]) + 27 * 86_400_000,
                "from_state": "a",
                "to_state": "b",
            },
            {"subject": 1, "timestamp": int(times[2]), "from_state": "b", "to_state": "a"},
        ]
    )
    obs = observe(log, tick="1mo", window_start=int(times[0]), ticks=12)
    assert obs.events["tick"].tolist() == [1, 2]
    with pytest.raises(DogesimError, match="calendar months like '1mo'"):
        TickGrid.parse("1M", 0)


def test_fit_by_group_recovers_each_group() -> None:
    """fit_by fits one model per roster group; each group's estimate is within 4 sd of its
    own truth and the group shares are the roster's."""
    rng = np.random.default_rng(8)
    parts = []
    for group, (p, n, offset) in {"slow": (0.02, 300, 0), "fast": (0.2, 100, 1000)}.items():
        log, roster = draw_chain({"a": [("b", p)], "b": [("a", 0.1)]}, "a", n, 50, rng)
        parts.append(
            (
                log.assign(subject=log["subject"] + offset),
                roster.assign(subject=roster["subject"] + offset, kind=group),
            )
        )
    log = pd.concat([p[0] for p in parts], ignore_index=True)
    roster = pd.concat([p[1] for p in parts], ignore_index=True)
    groups = fit_by(log, by="kind", tick_ms=1000, window_start=0, ticks=50, roster=roster)
    assert groups.shares == {"slow": 0.75, "fast": 0.25}
    for group, p in (("slow", 0.02), ("fast", 0.2)):
        go = next(t for t in groups.results[group].transitions if t.from_state == "a")
        assert abs(go.probability - p) <= 4 * np.sqrt(p * (1 - p) / go.exposure), group
    assert set(groups.table()["group"]) == {"slow", "fast"}
