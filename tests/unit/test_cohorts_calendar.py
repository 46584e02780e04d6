"""Calendar ticks (``1mo``, ``1y``): runs stamped at month starts (UTC), the same grid in
fit and report, and ``1M`` refused as ambiguous."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dogesim import MemorySink, Model, Simulation
from dogesim.calendar_ticks import MEAN_MONTH_MS, CalendarTicks, calendar_months
from dogesim.errors import ModelError
from dogesim.rates import parse_duration
from dogesim.report.fit import fit_event_log
from dogesim.report.observed import observe
from tests.unit.cohorts_stats import Z_ALPHA, fits_pmf

START = int(pd.Timestamp("1993-08-01", tz="UTC").value // 1_000_000)


def _ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


def _run(tick: str, p: float, subjects: int, ticks: int, seed: int) -> list[tuple[int, int]]:
    """(subject, timestamp) of every a -> b move (b final) on calendar ticks from START."""
    sink = MemorySink(lambda ts, s, t: (s.id, ts))
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", p, event_sinks=[sink])
    Simulation(model, subjects, ticks=ticks, tick_ms=tick, timestamp_start=START, seed=seed).run()
    return sink.events


def test_month_ticks_are_stamped_at_month_starts() -> None:
    """Tick t of a 1mo run is stamped at the first day of the t-th month after the start,
    and the first move's tick is geometric with the per-tick chance (chi-square)."""
    events = _run("1mo", 20, 3000, 40, seed=1)
    stamps = CalendarTicks(1, START)
    table = {stamps.stamp(t): t for t in range(40)}
    assert stamps.stamp(5) == _ms("1994-01-01") and stamps.stamp(17) == _ms("1995-01-01")
    assert all(ts in table for _, ts in events)
    ticks = np.array([table[ts] for _, ts in events]) + 1
    pmf = np.array([0.8 ** (k - 1) * 0.2 for k in range(1, 41)])
    assert fits_pmf(ticks, pmf)


def test_year_ticks_are_stamped_at_year_starts() -> None:
    """A 1y run from a January start steps a year per tick."""
    start = _ms("2000-01-01")
    sink = MemorySink(lambda ts, s, t: ts)
    model = Model(["a"], "a")
    model.add_transition("tick", "a", "a", 100, event_sinks=[sink])
    Simulation(model, 1, ticks=4, tick_ms="1y", timestamp_start=start, seed=1).run()
    assert sink.events == [_ms(f"{2000 + k}-01-01") for k in range(4)]
    assert calendar_months("1y") == 12 and calendar_months("3mo") == 3
    assert calendar_months("1m") is None and calendar_months(60_000) is None


def test_month_runs_fit_back_on_the_month_grid() -> None:
    """The fit on "1mo" reads the run's timestamps as the same ticks: the fitted chance is
    within a normal bound of the configured 20%, over the right exposure."""
    events = _run("1mo", 20, 2000, 24, seed=2)
    log = pd.DataFrame(events, columns=["subject", "timestamp"]).assign(
        from_state="a", to_state="b"
    )
    fit = fit_event_log(log, tick_ms="1mo", window_start=START, ticks=24, subjects=2000)
    (moved,) = fit.transitions
    assert moved.events == len(events)
    bound = Z_ALPHA * math.sqrt(0.2 * 0.8 / moved.exposure)
    assert abs(moved.probability - 0.2) <= bound
    obs = observe(log, tick="1mo", states=["a", "b"], window_start=START, ticks=24)
    assert obs.grid.times(np.arange(3)).tolist() == [START, _ms("1993-09-01"), _ms("1993-10-01")]


def test_ambiguous_and_calendar_units_in_durations_are_refused() -> None:
    """'1M' is refused as ambiguous (minute or month); '1mo' and '1y' are not fixed
    durations; '1m' stays a minute."""
    with pytest.raises(ModelError, match="ambiguous"):
        parse_duration("1M", "tick")
    for text in ("1mo", "2 years"):
        with pytest.raises(ModelError, match="calendar length"):
            parse_duration(text, "tick")
    assert parse_duration("1m") == 60_000


def test_calendar_runs_refuse_what_they_cannot_stamp() -> None:
    """A start that is not a month start, jitter and resources are refused, each saying
    what would be right; the tick's mean length is the Gregorian month's."""
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 10)
    with pytest.raises(ModelError, match="first day of a month"):
        Simulation(model, 1, ticks=2, tick_ms="1mo", timestamp_start=START + 3600_000)
    with pytest.raises(ModelError, match="jitter"):
        Simulation(model, 1, ticks=2, tick_ms="1mo", jitter=True)
    held = Model(["a", "b"], "a", resources={"desk": 1})
    held.add_transition("go", "a", "b", 10, resource="desk")
    with pytest.raises(ModelError, match="resources"):
        Simulation(held, 1, ticks=2, tick_ms="1mo").run()
    assert Simulation(model, 1, ticks=2, tick_ms="1mo").tick_ms == MEAN_MONTH_MS


FILE = """\
name: monthly
states: [a, b]
initial_state: a
tick: 1mo
start: 1993-08-01
ticks: 12
seed: 2
subjects: {count: 50}
sinks:
  out: {type: jsonl, path: OUT}
transitions:
  - {trigger: go, from: a, to: b, probability: 30, sinks: [out]}
  - {trigger: back, from: b, to: a, probability: 30, sinks: [out]}
"""


def test_model_file_month_ticks_run_at_month_starts(tmp_path: Path) -> None:
    """tick: 1mo in a model file: the loaded spec runs with every event at a month start
    of its window, and a start inside a month, or tick: 1M, is refused with file:line."""
    from dogesim.modelfile import load_model_text

    out = tmp_path / "events.jsonl"
    spec = load_model_text(FILE.replace("OUT", str(out)))
    assert spec.calendar == 1 and spec.tick_ms == MEAN_MONTH_MS
    spec.run()
    stamps = {json.loads(line)["timestamp"] for line in out.read_text().splitlines()}
    table = CalendarTicks(1, START)
    assert stamps and stamps <= {table.stamp(t) for t in range(12)}
    with pytest.raises(ModelError, match=r"<model>:5: start: .*first day of a month"):
        load_model_text(FILE.replace("1993-08-01", "1993-08-02"))
    with pytest.raises(ModelError, match=r"<model>:4: tick: .*ambiguous"):
        load_model_text(FILE.replace("tick: 1mo", "tick: 1M"))


def test_a_resumed_month_run_goes_on_stamping_month_starts(tmp_path: Path) -> None:
    """A tick: 1mo run checkpointed after 5 ticks and resumed from its model file stamps
    the rest at month starts too: both halves together are the uninterrupted run's events."""
    from dogesim.modelfile import load_model_text

    whole, first = tmp_path / "whole.jsonl", tmp_path / "parts.jsonl"
    load_model_text(FILE.replace("OUT", str(whole))).run()
    spec = load_model_text(FILE.replace("OUT", str(first)))
    sim = spec.simulation(progress=lambda done: sim.stop() if done >= 5 else None)
    assert sim.run().stopped
    sim.checkpoint(tmp_path / "ck.npz")
    again = load_model_text(FILE.replace("OUT", str(first)))
    again.resume(tmp_path / "ck.npz").run()
    assert first.read_text() == whole.read_text()


def test_report_reads_a_month_log_on_the_month_grid(tmp_path: Path) -> None:
    """observed_occupancy with calendar=1 puts an event of 1 March in the March tick (a
    multiple of the mean month would put it in February's, after a 28-day month)."""
    from dogesim.report.tables import observed_occupancy, read_event_log

    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", 10)
    start = _ms("2001-01-01")
    log = read_event_log(
        pd.DataFrame(
            [{"subject": 0, "timestamp": _ms("2001-03-01"), "from_state": "a", "to_state": "b"}]
        ),
        model=model,
    )
    window = {"subjects": 1, "ticks": 4, "tick_ms": MEAN_MONTH_MS, "timestamp_start": start}
    by_month = observed_occupancy(log, model, calendar=1, **window)
    assert by_month["b"].tolist() == [0, 0, 1, 1]
    assert observed_occupancy(log, model, **window)["b"].tolist() == [0, 1, 1, 1]
