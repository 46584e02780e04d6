"""Chance tables by month of year and by age (`dogesim.varying`) in models and the engine.

The engine thins candidate attempts drawn at a state's bound (its largest total chance at
any tick); each test counts, per level (month or age bin), the events of a transition and
the subject-ticks at risk, and bounds events - exposure * p by a normal bound at a
false-alarm rate of 1e-6 (the centred sum of per-tick Bernoulli trials is a martingale with
variance sum p (1 - p)).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from dogesim import MemorySink, Model, Simulation
from dogesim.errors import ModelError
from dogesim.varying import ByAge, ByMonth, chance_table, month_of, state_peak
from tests.unit.cohorts_stats import Z_ALPHA
from tests.unit.fit_helpers import MONTH_START, engine_log

DAY = 86_400_000
#: Two peaks in different months summing over 100%: allowed, no tick exceeds 100%.
TO_B = [60, 0, 10, 0, 0, 0, 5, 0, 0, 0, 0, 0]
TO_C = [0, 60, 10, 0, 0, 0, 0, 0, 20, 0, 0, 0]


def _run_days(model: Model, subjects: int, days: int, seed: int) -> pd.DataFrame:
    """The engine's log of `model` on daily ticks from 2001-01-01, with a tick column."""
    from dogesim import Simulation
    from dogesim.sinks.memory import MemorySink

    sink = MemorySink(lambda ts, s, t: (s.id, ts, t.from_state, t.to_state))
    for transition in model.transitions:
        object.__setattr__(transition, "event_sinks", (sink,))
    Simulation(
        model, subjects, ticks=days, tick_ms=DAY, timestamp_start=MONTH_START, seed=seed
    ).run()
    log = pd.DataFrame(sink.events, columns=["subject", "timestamp", "from_state", "to_state"])
    log["tick"] = (log["timestamp"] - MONTH_START) // DAY
    return log


def _at_risk(log: pd.DataFrame, state: str, subjects: int, ticks: int, initial: bool) -> np.ndarray:
    """Subjects in `state` at the start of each tick (their attempts of that tick)."""
    leave = np.bincount(log.loc[log["from_state"] == state, "tick"], minlength=ticks)
    enter = np.bincount(log.loc[log["to_state"] == state, "tick"], minlength=ticks)
    after = (subjects if initial else 0) + np.cumsum(enter - leave)
    return np.concatenate([[subjects if initial else 0], after[:-1]])


def _check(events: float, exposure: float, p: float) -> None:
    bound = Z_ALPHA * math.sqrt(max(exposure * p * (1 - p), 1e-12))
    assert abs(events - exposure * p) <= bound + 1e-9, (events, exposure, p)


def test_by_month_chances_hold_month_by_month() -> None:
    """Two tables from A whose peaks (60% in January, 60% in February) sum over 100%: the
    model is accepted, and each month's events over subject-days at risk match the month's
    chance for both transitions."""
    model = Model(["A", "B", "C"], "A")
    model.add_transition("toB", "A", "B", by_month=TO_B)
    model.add_transition("toC", "A", "C", by_month=TO_C)
    model.add_transition("backB", "B", "A", 30)
    model.add_transition("backC", "C", "A", 30)
    days, n = 730, 400
    log = _run_days(model, n, days, seed=21)
    risk = _at_risk(log, "A", n, days, initial=True)
    months = np.array([month_of(MONTH_START + t * DAY) for t in range(days)])
    for target, table in (("B", TO_B), ("C", TO_C)):
        moves = log[(log["from_state"] == "A") & (log["to_state"] == target)]
        events = np.bincount(moves["tick"], minlength=days)
        for month in range(1, 13):
            in_month = months == month
            _check(events[in_month].sum(), risk[in_month].sum(), table[month - 1] / 100)
    assert ((log["from_state"] == "A") & (log["tick"].map(lambda t: months[t]) == 4)).sum() == 0


def test_by_age_chances_hold_bin_by_bin() -> None:
    """Age is ticks since the subject's start: nobody moves before age 5, and each age
    bin's events over subjects at risk match its chance."""
    model = Model(["A", "B"], "A")
    model.add_transition("go", "A", "B", by_age={"edges": [0, 5, 20], "chances": [0, 8, 30]})
    log, _ = engine_log(model, 3000, 40, seed=5)
    log["tick"] = log["timestamp"] // 1000
    assert log["tick"].min() >= 5
    risk = _at_risk(log, "A", 3000, 40, initial=True)
    events = np.bincount(log["tick"], minlength=40)
    for low, high, p in ((0, 5, 0.0), (5, 20, 0.08), (20, 40, 0.30)):
        _check(events[low:high].sum(), risk[low:high].sum(), p)


def test_a_tick_over_100_percent_is_refused() -> None:
    """Only a tick whose total exceeds 100% is refused, naming the state and the total."""
    model = Model(["A", "B", "C"], "A")
    model.add_transition("toB", "A", "B", by_month=TO_B)
    model.add_transition("toC", "A", "C", by_month=TO_C)
    with pytest.raises(ModelError, match=r"state 'A'.*reach 105% in some tick"):
        model.add_transition("loop", "A", "A", 45)
    model.add_transition("loop", "A", "A", 40)
    with pytest.raises(ModelError, match="reach 130%"):
        Model(
            ["A", "B"],
            "A",
            [
                Model(["A", "B"], "A").add_transition(
                    "x", "A", "B", by_age={"edges": [0, 3], "chances": [90, 10]}
                ),
                Model(["A", "B"], "A").add_transition(
                    "y", "A", "A", by_age={"edges": [0, 2], "chances": [40, 0]}
                ),
            ],
        )


def test_tables_read_and_check_their_data_forms() -> None:
    """by_month needs 12 percentages, by_age edges increasing from 0; the tables give the
    chance at (month, age), their peak over every combination, and round-trip as data."""
    month = ByMonth(TO_B)
    age = ByAge([0, 5, 20], [0, 8, 30])
    assert month.at(2, 0) == 0 and month.at(1, 99) == 60 and age.at(1, 4) == 0
    assert age.at(7, 5) == 8 and age.at(7, 200) == 30
    assert state_peak(1.0, [month, age]) == 91.0
    assert chance_table(month.to_dict(), "t") == month
    assert chance_table(age.to_dict(), "t") == age
    with pytest.raises(ModelError, match="give 12 chances"):
        ByMonth([1, 2])
    with pytest.raises(ModelError, match="increase strictly from 0"):
        ByAge([1, 5], [1, 2])
    with pytest.raises(ModelError, match="from 0 to 100"):
        ByMonth([101] + [0] * 11)
    with pytest.raises(ModelError, match="one chance table"):
        Model(["A", "B"], "A").add_transition(
            "x", "A", "B", by_month=TO_B, by_age={"edges": [0], "chances": [1]}
        )


def test_age_edges_in_durations_are_rescaled_to_the_tick() -> None:
    """by_age edges given as durations become ticks of the run (here 1 h ticks: 1 d = 24)."""
    table = ByAge([0, "1d"], [0, 50])
    assert not table.in_ticks and table.at_tick(3_600_000) == ByAge([0, 24], [0, 50])
    model = Model(["A", "B"], "A")
    model.add_transition("go", "A", "B", by_age={"edges": [0, "1d"], "chances": [0, 50]})
    log, _ = engine_log(model, 200, 48, seed=2, tick_ms=3_600_000)
    assert (log["timestamp"] // 3_600_000).min() >= 24


def test_engine_on_month_ticks_matches_the_per_tick_definition() -> None:
    """A model with a by_month, a by_age and a constant transition, run by the engine on
    1mo ticks and drawn tick by tick by `fit_helpers.draw_chain` (the definition, with the
    same chances as functions of month and age): the same law of events per tick and
    transition (two-sample chi-square)."""
    from dogesim import MemorySink, Simulation
    from tests.unit.cohorts_stats import chi_square_critical
    from tests.unit.fit_helpers import draw_chain, month_times, two_sample

    season = [2, 2, 2, 2, 2, 2, 25, 2, 30, 2, 2, 2]
    ages = {"edges": [0, 6, 18], "chances": [1, 12, 4]}
    sink = MemorySink(lambda ts, s, t: (s.id, ts, t.from_state, t.to_state))
    model = Model(["school", "work", "idle"], "school")
    model.add_transition("leave", "school", "work", by_month=season, event_sinks=[sink])
    model.add_transition("drop", "school", "idle", 3, event_sinks=[sink])
    model.add_transition("find", "idle", "work", by_age=ages, event_sinks=[sink])
    model.add_transition("lose", "work", "idle", 5, event_sinks=[sink])
    ticks, n = 30, 3000
    Simulation(model, n, ticks=ticks, tick_ms="1mo", timestamp_start=MONTH_START, seed=6).run()
    engine = pd.DataFrame(sink.events, columns=["subject", "timestamp", "from_state", "to_state"])
    chances = {
        "school": [
            ("work", lambda _, month, __: np.array(season)[month - 1] / 100),
            ("idle", 0.03),
        ],
        "idle": [
            ("work", lambda _, __, age: np.where(age < 6, 0.01, np.where(age < 18, 0.12, 0.04)))
        ],
        "work": [("idle", 0.05)],
    }
    reference, _ = draw_chain(
        chances, "school", n, ticks, np.random.default_rng(7), times=month_times(ticks)
    )
    statistic, df = two_sample(engine, reference)
    assert df > 40
    assert statistic <= chi_square_critical(df)


MONTHLY_FILE = """\
name: seasons
states: [school, work, idle]
initial_state: school
tick: 1mo
start: 2001-01-01
ticks: 24
seed: 3
subjects: {count: 200}
transitions:
  - trigger: leave
    from: school
    to: work
    by_month: [0, 0, 0, 0, 0, 0, 40, 0, 50, 0, 0, 0]
  - {trigger: drop, from: school, to: idle, probability: 2}
  - trigger: find
    from: idle
    to: work
    by_age: {edges: [0, 6], chances: [0, 20]}
"""


def test_model_file_tables_and_month_ticks_load_run_and_write_back() -> None:
    """by_month / by_age replace probability in a transition, tick: 1mo stamps month
    starts: the loaded model has the tables, its run moves school -> work only in July and
    September, and dump_model writes the same tables and tick back."""
    from dogesim.modelfile import dump_model, load_model_text

    spec = load_model_text(MONTHLY_FILE)
    assert spec.calendar == 1
    leave, drop, find = spec.model.transitions
    assert isinstance(leave.chances, ByMonth) and leave.chances.at(9, 0) == 50
    assert isinstance(find.chances, ByAge) and drop.chances is None
    sink = MemorySink(lambda ts, s, t: (ts, t.trigger))
    model = Model(
        spec.model.states,
        "school",
        [dataclasses.replace(t, event_sinks=[sink]) for t in spec.model.transitions],
    )
    Simulation(model, 200, ticks=24, tick_ms="1mo", timestamp_start=spec.timestamp_start).run()
    months = {month_of(ts) for ts, trigger in sink.events if trigger == "leave"}
    assert months == {7, 9}
    again = load_model_text(dump_model(spec))
    assert again.calendar == 1
    assert [t.chances for t in again.model.transitions] == [leave.chances, None, find.chances]


DROP = "{trigger: drop, from: school, to: idle, probability: 2}"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            DROP,
            DROP.replace("}", ", by_month: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}"),
            "by_month gives the chances; drop probability",
        ),
        (
            "    by_month: [0,",
            "    by_age: {edges: [0], chances: [1]}\n    by_month: [0,",
            "give one chance table",
        ),
        (DROP, DROP.replace("probability: 2", "by_month: [1, 2]"), r"give 12 chances"),
    ],
)
def test_model_file_table_mistakes_name_the_line(old: str, new: str, message: str) -> None:
    """A table with a probability, two tables, or a short one is refused with file:line."""
    from dogesim.modelfile import load_model_text

    with pytest.raises(ModelError, match=r"<model>:1\d: transitions\[\d\]\.\w+: " + message):
        load_model_text(MONTHLY_FILE.replace(old, new))


def test_newcomers_age_from_their_arrival() -> None:
    """A chance of 0% before age 3 and 100% from it: everyone moves exactly 3 ticks after
    its start: the first population at tick 3, each newcomer 3 ticks after it arrived."""
    sink = MemorySink(lambda ts, s, t: (s.id, ts // 1000))
    model = Model(["A", "B"], "A")
    chances = {"edges": [0, 3], "chances": [0, 100]}
    model.add_transition("go", "A", "B", by_age=chances, event_sinks=[sink])
    ids = itertools.count()
    sim = Simulation(
        model,
        5,
        subject_factory=lambda: SimpleNamespace(id=next(ids)),
        ticks=30,
        tick_ms=1000,
        seed=4,
        arrivals=0.5,
        record_every=1,
    )
    sim.run()
    assert sim._walker is not None
    # subjects are made in order: the first 5, then each tick's newcomers
    born = [0] * 5
    for tick, count in sorted(sim._walker.recorder.arrivals.items()):
        born.extend([tick] * count)
    assert len(born) > 15
    assert sorted(sink.events) == [(i, b + 3) for i, b in enumerate(born) if b + 3 < 30]


def test_engine_matches_the_reference_walker_on_month_ticks() -> None:
    """By-month and by-age chances on 1mo ticks: the engine and
    `reference.cohort_reference` (stamped by the same calendar) agree in law."""
    from dogesim.calendar_ticks import CalendarTicks
    from tests.unit.cohorts_stats import chi_square_critical
    from tests.unit.fit_helpers import two_sample
    from tests.unit.reference import cohort_reference

    sink = MemorySink(lambda ts, s, t: (s.id, ts, t.from_state, t.to_state))
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", by_month=TO_B, event_sinks=[sink])
    model.add_transition(
        "back", "b", "a", by_age={"edges": [0, 10], "chances": [5, 40]}, event_sinks=[sink]
    )
    Simulation(model, 3000, ticks=24, tick_ms="1mo", timestamp_start=MONTH_START, seed=8).run()
    engine = pd.DataFrame(sink.events, columns=["subject", "timestamp", "from_state", "to_state"])
    calendar = CalendarTicks(1, MONTH_START)
    reference = pd.DataFrame(
        cohort_reference(model, 3000, 24, seed=9, stamps=calendar.stamp),
        columns=["subject", "timestamp", "from_state", "to_state"],
    )
    statistic, df = two_sample(engine, reference)
    assert df > 20
    assert statistic <= chi_square_critical(df)


def _table_and_profile_model(peak_multiplier: float) -> tuple[Model, MemorySink]:
    """State A left by a month table (10% every month) and by a 5% transition whose hourly
    profile is 0.2 all day but `peak_multiplier` at noon; B and C return at once."""
    from dogesim import Profile

    sink = MemorySink()
    hourly = [0.2] * 24
    hourly[12] = peak_multiplier
    model = Model(["A", "B", "C"], "A")
    model.add_transition("tab", "A", "B", by_month=[10] * 12, event_sinks=[sink])
    profile = Profile(hourly=hourly)
    model.add_transition("prof", "A", "C", 5, profile=profile, event_sinks=[sink])
    model.add_transition("back_b", "B", "A", 100)
    model.add_transition("back_c", "C", "A", 100)
    return model, sink


def test_a_state_with_a_chance_table_and_a_profile_follows_both_at_every_hour() -> None:
    """A month table (10%) beside a profiled 5% transition (x4 at noon: 20%): a move out of
    A at noon is "prof" with chance 20/30, at other hours 1/11 (given a move). Before, the
    state's thinning bound left the profile out (15%), so at noon "prof" got 5 of 15 parts
    (a third) instead of two thirds."""
    model, sink = _table_and_profile_model(4.0)
    Simulation(model, 2000, ticks=3 * 1440, tick_ms=60_000, seed=3).run()
    moves: dict[int, list[int]] = {}
    for event in sink.events:
        hour = (event.timestamp // 3_600_000) % 24
        counts = moves.setdefault(hour, [0, 0])
        counts[event.trigger == "prof"] += 1
    for hour, p in ((12, 20 / 30), (0, 1 / 11), (18, 1 / 11)):
        tab, prof = moves[hour]
        n = tab + prof
        assert abs(prof - n * p) <= Z_ALPHA * math.sqrt(n * p * (1 - p)), (hour, tab, prof)


def test_a_profile_lifting_a_tables_state_over_100_percent_is_refused() -> None:
    """The state's total at its peak counts the profiles' peak: 95% from a table and a 5%
    transition that a profile doubles at noon reach 105%, refused naming the state."""
    from dogesim import Profile

    model = Model(["A", "B", "C"], "A")
    model.add_transition("tab", "A", "B", by_month=[95] * 12)
    hourly = [1.0] * 24
    hourly[12] = 2.0
    with pytest.raises(ModelError, match=r"state 'A'.*reach 105% in some tick"):
        model.add_transition("prof", "A", "C", 5, profile=Profile(hourly=hourly))
