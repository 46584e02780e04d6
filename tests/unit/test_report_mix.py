"""Reports of runs that start from an initial mix, and the semi-Markov analytic line: the
run result counts where subjects started (arrivals too), observed occupancy from a log is
never negative, the analytic expectation starts from the mix and follows dwell and delay
laws exactly (statistical bounds from the binomial law, fixed seeds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dogesim import MemorySink, Model, Profile, Simulation, Transition
from dogesim.laws import Fixed, LogNormal, StayKernel
from dogesim.report import analytic, compare, plots, tables
from dogesim.report.compare import memory_log

Z = 5.0


def mixed(sinks: list[object] | None = None) -> Model:
    """Three states, starting 3:1 in a and b; a lasts 3 ticks exactly, b and c are
    geometric; b's move to a waits 2 ticks before the next attempt."""
    chosen = sinks or []
    return Model(
        ["a", "b", "c"],
        {"a": 3, "b": 1},
        [
            Transition("ab", "a", "b", 60, event_sinks=chosen),
            Transition("ac", "a", "c", 40, event_sinks=chosen),
            Transition("ba", "b", "a", 30, event_sinks=chosen, delay=Fixed(2)),
            Transition("ca", "c", "a", 10, event_sinks=chosen),
        ],
        dwell={"a": Fixed(3)},
    )


def test_result_counts_the_initial_mix_and_the_arrivals_mix() -> None:
    """initial_counts and arrival_counts hold the states the mix drew (3:1 within Z sd);
    occupancy row 0 is the start plus tick 0's moves; a plain model counts its one state."""
    result = Simulation(mixed(), 4000, ticks=30, tick_ms=1000, seed=5, arrivals=40).run()
    started = result.initial_counts
    assert started.tolist() == result.started().tolist()
    assert int(started.sum()) == 4000 and started[2] == 0
    assert abs(started[0] - 3000) < Z * np.sqrt(4000 * 0.75 * 0.25)
    assert result.initial_mix() == {"a": int(started[0]), "b": int(started[1])}
    came = result.arrival_counts
    assert int(came.sum()) == result.arrivals > 800 and came[2] == 0
    assert abs(came[0] - 0.75 * came.sum()) < Z * np.sqrt(came.sum() * 0.75 * 0.25)
    plain = Simulation(Model(["x", "y"], "y"), 7, ticks=3, tick_ms=1000, seed=1).run()
    assert plain.initial_counts.tolist() == [0, 7]
    assert plain.arrival_counts.tolist() == [0, 0]


def test_first_rows_of_a_mixed_run_are_the_mix() -> None:
    """Both starting states last 3 ticks (first attempts at tick 2), so rows 0 and 1 of the
    run, of the occupancy its log implies and of the analytic line all equal the drawn mix;
    the log's occupancy is the run's exactly and never negative."""
    sink = MemorySink()
    model = Model(
        ["a", "b", "c"],
        {"a": 3, "b": 1},
        [
            Transition("ac", "a", "c", 50, event_sinks=[sink]),
            Transition("bc", "b", "c", 50, event_sinks=[sink]),
        ],
        dwell={"a": Fixed(3), "b": Fixed(3)},
    )
    result = Simulation(model, 2000, ticks=20, tick_ms=1000, seed=2).run()
    started = result.started()
    events = pd.DataFrame(memory_log(sink.events))
    observed = tables.observed_occupancy(
        events, model, subjects=2000, ticks=20, tick_ms=1000, timestamp_start=0
    ).to_numpy()
    expected = analytic.expected_counts(model, 20, started)
    assert started[2] == 0 and started[1] > 0
    for rows in (result.occupancy, observed, expected):
        np.testing.assert_allclose(rows[:2], [started, started])
    np.testing.assert_array_equal(observed, result.occupancy)
    assert observed.min() >= 0
    assert result.occupancy[2].tolist() == [0, 0, 2000]


def test_observed_occupancy_of_a_mixed_model_is_never_negative() -> None:
    """Subjects start where their first event leaves from; silent ones follow the mix (split
    by largest remainders), so no count is negative and each row sums to the population."""
    model = Model(["a", "b", "c"], {"a": 1, "b": 1, "c": 1}, [Transition("ab", "a", "b", 1)])
    log = pd.DataFrame(
        {
            "subject": [1, 2, 3],
            "timestamp": [0, 1000, 1000],
            "trigger": ["ab"] * 3,
            "from_state": ["a"] * 3,
            "to_state": ["b"] * 3,
        }
    )
    observed = tables.observed_occupancy(
        log, model, subjects=10, ticks=3, tick_ms=1000, timestamp_start=0
    )
    # 3 seen start in a; 7 silent split 3/2/2 by the mix (a first: the remainders tie)
    assert tables.observed_start(log, model, 10).tolist() == [6, 2, 2]
    # over the 3 ticks a silent subject is a bit less likely in a (it could have left):
    # shares 0.99**3 : 1 : 1 give 2.30 / 2.35 / 2.35, so b gets the odd one
    assert tables.observed_start(log, model, 10, 3).tolist() == [5, 3, 2]
    assert observed.to_numpy().tolist() == [[4, 4, 2], [2, 6, 2], [2, 6, 2]]
    assert observed.to_numpy().min() >= 0


def test_silent_subjects_start_where_one_can_stay_still() -> None:
    """A state every subject leaves within the window (a dwell law shorter than it) gets
    none of the subjects without events; the others share them by mix x chance to stay."""
    model = Model(
        ["school", "work"],
        {"school": 3, "work": 1},
        [Transition("leave", "school", "work", 100), Transition("quit", "work", "work", 10)],
        dwell={"school": Fixed(4)},
    )
    log = pd.DataFrame(
        {
            "subject": [1],
            "timestamp": [3000],
            "trigger": ["leave"],
            "from_state": ["school"],
            "to_state": ["work"],
        }
    )
    assert tables.observed_start(log, model, 9, 10).tolist() == [1, 8]


def test_semi_markov_line_follows_dwell_and_delay_laws() -> None:
    """A run of 20000 subjects stays within Z sd of the semi-Markov expectation at every
    tick and state, while the plain chain's line is far off (so the laws are in the line)."""
    model = Model(
        ["a", "b", "c"],
        {"a": 2, "b": 1},
        [
            Transition("ab", "a", "b", 60),
            Transition("ac", "a", "c", 40),
            Transition("ba", "b", "a", 20, delay=Fixed(3)),
            Transition("bc", "b", "c", 5, delay=Fixed(2)),
            Transition("ca", "c", "a", 10),
        ],
        dwell={"a": LogNormal(4, 0.5)},
    )
    result = Simulation(model, 20_000, ticks=60, tick_ms=1000, seed=3).run()
    started = result.started()
    assert analytic.uses_semi_markov(model, 60)
    low, high = analytic.expected_band(model, 60, started, Z)
    occupancy = result.occupancy
    assert ((occupancy >= low) & (occupancy <= high)).all()
    chain = analytic.occupancy_probabilities(model, 60, started)
    sd = np.sqrt(np.maximum(chain * (1 - chain / 20_000), 1.0))
    assert float(np.max(np.abs(occupancy - chain) / sd)) > 10 * Z
    assert analytic.approximations(model, semi_markov=True) == []


def test_semi_markov_line_keeps_rows_of_every_ticks_and_falls_back_when_too_long() -> None:
    """With every=k the line has one row per k ticks (the last tick of each); a law too long
    to expand gives None and the chain is used."""
    model = mixed()
    started = np.asarray([30.0, 10.0, 0.0])
    per_tick = analytic.expected_counts(model, 25, started)
    rows = analytic.expected_counts(model, 25, started, every=10)
    np.testing.assert_allclose(rows, per_tick[[9, 19, 24]])
    long = Model(["a", "b"], "a", [Transition("go", "a", "b", 10)], dwell={"a": Fixed(2e6)})
    assert analytic.semi_markov_occupancy(long, 5, np.asarray([1.0, 0.0])) is None
    assert not analytic.uses_semi_markov(long, 5)
    np.testing.assert_allclose(
        analytic.expected_counts(long, 5, [1.0, 0.0]),
        analytic.occupancy_probabilities(long, 5),
    )


def test_plot_occupancy_of_a_mixed_run_starts_from_its_mix() -> None:
    """The figure's analytic line (read from the figure) is the expectation from the run's
    start, and the band never goes negative."""
    model = mixed()
    result = Simulation(model, 500, ticks=15, tick_ms=1000, seed=4).run()
    fig = plots.plot_occupancy(result, model=model)
    axis = fig.axes[0]
    dashed = next(line for line in axis.get_lines() if line.get_label() == "analytic")
    expected = analytic.expected_counts(model, 15, result.started())
    np.testing.assert_allclose(np.asarray(dashed.get_ydata(), dtype=float), expected[:, 0])
    low, _ = analytic.expected_band(model, 15, result.started(), 3.0)
    assert low.min() >= 0


def test_model_of_result_keeps_the_mix_and_delays() -> None:
    """The chain rebuilt from a result starts from the drawn mix and keeps delay laws."""
    result = Simulation(mixed(), 100, ticks=3, tick_ms=1000, seed=1).run()
    chain = plots.model_of_result(result)
    total = sum(result.initial_mix().values())
    assert chain.initial_mix == pytest.approx(
        {s: n / total for s, n in result.initial_mix().items()}
    )
    assert [t.delay for t in chain.transitions] == [None, None, Fixed(2), None]


def test_transition_table_exposure_starts_from_the_mix() -> None:
    """subject_ticks at tick 0 count the subjects where they started, not all in one state."""
    model = Model(["a", "b"], {"a": 1, "b": 1}, [Transition("stay_b", "b", "b", 0)])
    result = Simulation(model, 10, ticks=1, tick_ms=1000, seed=1).run()
    table = tables.transition_table(result)
    assert int(table.loc[0, "subject_ticks"]) == int(result.started()[1])


def test_analytic_line_weighs_calendar_profiles_given_the_clock() -> None:
    """Sessions open by an hourly profile; a session's end delays the next attempt 4 ticks,
    whose attempt is thinned by the profile (the engine's peak thinning): 20000 subjects
    stay within Z sd of the line at every row, and the line without the clock is far off."""
    night = Profile(hourly=[0.1] * 6 + [1.0] * 6 + [2.0] * 6 + [0.5] * 6)
    model = Model(
        ["off", "on", "b"],
        {"off": 4, "on": 1},
        [
            Transition("start", "off", "on", 8, profile=night),
            Transition("end", "on", "off", 30, delay=Fixed(4)),
            Transition("browse", "on", "b", 10),
            Transition("back", "b", "on", 20, profile=night),
        ],
    )
    tick_ms, ticks = 600_000, 288  # 10 minutes, two days
    result = Simulation(model, 20_000, ticks=ticks, tick_ms=tick_ms, seed=6).run()
    clock = (result.timestamp_start, tick_ms)
    started = result.started()
    assert analytic.uses_semi_markov(model, ticks, clock)
    low, high = analytic.expected_band(model, ticks, started, Z, clock=clock)
    assert ((result.occupancy >= low) & (result.occupancy <= high)).all()
    unclocked = analytic.expected_counts(model, ticks, started)
    sd = np.sqrt(np.maximum(unclocked * (1 - unclocked / 20_000), 1.0))
    assert float(np.max(np.abs(result.occupancy - unclocked) / sd)) > 10 * Z
    assert analytic.approximations(model, semi_markov=True, profiles=True) == []
    assert "profiles are ignored" in " ".join(analytic.approximations(model, semi_markov=True))


def test_a_log_missing_moves_gives_no_negative_counts() -> None:
    """A move without a sink is missing from the log: the subject counts as moving at its
    next event (a warning says how many), so the occupancy stays within 0 .. n."""
    sink = MemorySink()
    model = Model(
        ["a", "b"],
        "a",
        [Transition("go", "a", "b", 30, event_sinks=[sink]), Transition("back", "b", "a", 30)],
    )
    Simulation(model, 200, ticks=40, tick_ms=1000, seed=9).run()
    log = pd.DataFrame(compare.memory_log(sink.events))
    with pytest.warns(UserWarning, match="events leave a state other than"):
        observed = tables.observed_occupancy(
            log, model, subjects=200, ticks=40, tick_ms=1000, timestamp_start=0
        ).to_numpy()
    assert observed.min() >= 0 and (observed.sum(axis=1) == 200).all()
    # a subject is in b from its go (seen) until its next go: the unseen back is placed there
    assert observed[-1, 1] == log.drop_duplicates("subject", keep="last").shape[0]


def test_semi_markov_line_follows_stay_kernels_with_their_first_stays() -> None:
    """A kernel decides a stay's length and, given it, where it goes (the first stay by its
    own kernel): 20000 subjects stay within Z sd of the line, the chain is far off."""
    later = StayKernel([2, 5], [1, 1], {"b": [1, 0], "c": [0, 1]})
    kernel = StayKernel(
        [2, 5], [1, 1], {"b": [1, 0], "c": [0, 1]}, first=StayKernel([3], [1], {"c": [1]})
    )
    model = Model(
        ["a", "b", "c"],
        {"a": 3, "b": 1},
        [
            Transition("ab", "a", "b", 50),
            Transition("ac", "a", "c", 50),
            Transition("ba", "b", "a", 30),
            Transition("ca", "c", "a", 20),
        ],
        dwell={"a": kernel},
    )
    result = Simulation(model, 20_000, ticks=40, tick_ms=1000, seed=4).run()
    started = result.started()
    assert analytic.uses_semi_markov(model, 40)
    low, high = analytic.expected_band(model, 40, started, Z)
    assert ((result.occupancy >= low) & (result.occupancy <= high)).all()
    # first stays in a last 3 ticks: after tick 1 a holds them and b's returners (30% a
    # tick); after tick 2 they are all in c, in the run and in the line
    expected = analytic.expected_counts(model, 40, started)
    n_a, n_b = float(started[0]), float(started[1])
    assert expected[1, 0] == pytest.approx(n_a + n_b * (1 - 0.7**2), rel=1e-12)
    assert expected[2, 2] >= n_a and result.occupancy[2, 2] >= n_a
    plain = Model(model.states, model.initial, model.transitions, dwell={"a": later})
    other = analytic.expected_counts(plain, 40, started)
    sd = np.sqrt(np.maximum(expected * (1 - expected / 20_000), 1.0))
    assert float(np.max(np.abs(other - expected) / sd)) > 10 * Z
    chain = analytic.occupancy_probabilities(model, 40, started)
    assert float(np.max(np.abs(result.occupancy - chain) / sd)) > 10 * Z
    assert analytic.approximations(model, semi_markov=True) == []


def test_chance_tables_fall_back_to_the_chain_and_say_so() -> None:
    """The phase line does not follow chance tables by month or age: it is not used for
    them, and the notes name the transitions."""
    model = Model(
        ["a", "b"],
        "a",
        [Transition("ab", "a", "b", 10), Transition("ba", "b", "a", by_month=[5] * 6 + [20] * 6)],
        dwell={"a": Fixed(3)},
    )
    assert not analytic.uses_semi_markov(model, 30)
    assert analytic.semi_markov_occupancy(model, 30, np.asarray([1.0, 0])) is None
    assert not analytic.too_long(model, 30)
    notes = " ".join(analytic.approximations(model, semi_markov=True, profiles=True))
    assert "'ba' have chance tables" in notes and "'a' have dwell-time laws" in notes
