"""The fit's output with kernels and chance tables: `FitResult.with_kernel` /
`with_tables` give models (and model files) the engine simulates, and simulate-then-fit
recovers the engine's laws with intervals covering the truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dogesim import Model
from dogesim.laws import StayKernel
from dogesim.modelfile import load_model_file
from dogesim.report.fit import fit_event_log
from dogesim.report.observed import observe
from dogesim.report.spells import fit_kernel
from dogesim.report.timevarying import fit_by_factor
from dogesim.varying import ByAge, ByMonth
from tests.unit.fit_helpers import MONTH_START, count_covered, coverage_bounds, engine_log

DAY = 86_400_000
TO_B = [30, 2, 2, 2, 2, 2, 2, 2, 20, 2, 2, 2]


def _monthly_truth() -> Model:
    """a -> b by month (peaks in January and September), b -> a at 10% a day."""
    model = Model(["a", "b"], "a")
    model.add_transition("a->b", "a", "b", by_month=TO_B)
    model.add_transition("b->a", "b", "a", 10)
    return model


def test_month_tables_simulated_then_fitted_cover_the_truth() -> None:
    """The engine's by_month chances, fitted back by month from its log: the 95% intervals
    of the twelve months cover the truth as often as Binomial(12, 0.95) allows, and the
    fitted model carries the tables (`with_tables`)."""
    truth = _monthly_truth()
    days = 730
    log, roster = engine_log(truth, 300, days, seed=7, tick_ms=DAY)
    log["timestamp"] += MONTH_START
    obs = observe(
        log, tick=DAY, states=["a", "b"], window_start=MONTH_START, ticks=days, roster=roster
    )
    tables = fit_by_factor(obs, "month")
    rows = tables.table[tables.table["trigger"] == "a->b"].sort_values("level")
    pairs = list(zip(rows["ci_low"], rows["ci_high"], strict=True))
    covered = sum(count_covered([pair], p / 100) for pair, p in zip(pairs, TO_B, strict=True))
    assert covered >= coverage_bounds(12, 0.95)[0]
    fit = fit_event_log(log, tick_ms=DAY, window_start=MONTH_START, ticks=days, roster=roster)
    model = fit.with_tables(tables).to_model()
    chances = {t.trigger: t.chances for t in model.transitions}
    assert isinstance(chances["a->b"], ByMonth)
    assert list(chances["a->b"].chances) == tables.chances("a", "a->b")
    engine_log(model, 50, 60, seed=1, tick_ms=DAY)  # the fitted model runs


def test_age_tables_fit_into_by_age_transitions() -> None:
    """A fit by age bins gives by_age transitions with the bins' lower edges."""
    model = Model(["a", "b"], "a")
    model.add_transition("go", "a", "b", by_age={"edges": [0, 10], "chances": [1, 20]})
    log, roster = engine_log(model, 2000, 30, seed=3)
    obs = observe(log, tick=1000, states=["a", "b"], window_start=0, ticks=30, roster=roster)
    tables = fit_by_factor(obs, "age", age_bins=[0, 10])
    fitted = fit_event_log(log, tick_ms=1000, window_start=0, ticks=30, roster=roster)
    table = fitted.with_tables(tables).to_model().transitions[0].chances
    assert isinstance(table, ByAge) and table.edges == (0.0, 10.0)
    early, late = table.chances
    assert early < 2 < 15 < late


def test_fitted_kernel_goes_through_a_model_file(tmp_path: Path) -> None:
    """A fit with a kernel writes dwell kernels (first stays apart) and the initial mix to
    its model file; loaded back, the model has the same kernels and the engine runs it."""
    truth = Model(
        ["A", "B", "C"],
        {"A": 3, "B": 1},
        dwell={
            "A": StayKernel(
                [1, 3, 6],
                [2, 1, 1],
                {"B": [1, 0, 0.5], "C": [0, 1, 0.5]},
                first=StayKernel([2, 4], [1, 3], {"B": [0.25, 1], "C": [0.75, 0]}),
            )
        },
    )
    truth.add_transition("A->B", "A", "B", 0)
    truth.add_transition("A->C", "A", "C", 0)
    truth.add_transition("B->A", "B", "A", 40)
    log, roster = engine_log(truth, 500, 25, seed=2)
    obs = observe(log, tick=1000, states=truth.states, window_start=0, ticks=25, roster=roster)
    kernel = fit_kernel(obs)
    fit = fit_event_log(log, tick_ms=1000, window_start=0, ticks=25, roster=roster)
    path = tmp_path / "fitted.yaml"
    text = fit.with_kernel(kernel).write_model_file(path, seed=4)
    assert "Dwell kernels" in text and "first:" in text
    spec = load_model_file(path)
    assert spec.model.dwell == kernel.dwell_laws()
    assert set(spec.model.initial_mix) == {"A", "B"}
    again, _ = engine_log(spec.model, 500, 25, seed=4)
    assert len(again) > 0
    assert np.isin(again["to_state"], ["B", "C", "A"]).all()


def test_fit_event_log_fits_kernel_and_tables_on_request() -> None:
    """fit_event_log(kernel=True, by="month") is with_kernel(fit_kernel) and
    with_tables(fit_by_factor) on the same log; an unknown factor is refused."""
    import pytest

    from dogesim import DogesimError

    log, roster = engine_log(_monthly_truth(), 200, 90, seed=3, tick_ms=DAY)
    log["timestamp"] += MONTH_START
    options = {"tick_ms": DAY, "window_start": MONTH_START, "ticks": 90, "roster": roster}
    fit = fit_event_log(log, kernel=True, by="month", **options)
    assert fit.kernel is not None and fit.tables is not None and fit.tables.factor == "month"
    model = fit.to_model()
    assert set(model.dwell) == {"a", "b"}
    assert all(isinstance(t.chances, ByMonth) for t in model.transitions)
    with pytest.raises(DogesimError, match="by 'month' or by 'age'"):
        fit_event_log(log, by="week", **options)


MONTHLY = """\
name: monthly
states: [a, b]
initial_state: a
tick: 1mo
start: 2001-01-01
ticks: 36
seed: 4
subjects: {count: 400}
transitions:
  - {trigger: go, from: a, to: b, by_month: [30, 2, 2, 2, 2, 2, 2, 2, 20, 2, 2, 2]}
  - {trigger: back, from: b, to: a, probability: 10}
"""


def test_cli_runs_and_fits_month_ticks_with_kernel_and_tables(tmp_path: Path, capsys: Any) -> None:
    """`dogesim run` of a tick: 1mo file, then `dogesim fit --kernel --by-month` on its log:
    the fitted file keeps tick: 1mo, carries dwell kernels and by_month chances, and loads;
    '--tick 1M' is refused as ambiguous (exit 2, one line)."""
    from dogesim.cli import main

    model = tmp_path / "monthly.yaml"
    model.write_text(MONTHLY)
    log = tmp_path / "log.jsonl"
    assert main(["run", str(model), "-q", "--out", str(log)]) == 0
    fitted = tmp_path / "fitted.yaml"
    args = ["fit", str(log), "--model", str(model), "-o", str(fitted)]
    assert main([*args, "--kernel", "--by-month"]) == 0
    out = capsys.readouterr().out
    assert "dwell kernels for 2 states" in out and "chances by month: LR" in out
    spec = load_model_file(fitted)
    assert spec.calendar == 1 and spec.ticks == 36
    go = next(t for t in spec.model.transitions if t.trigger == "go")
    assert isinstance(go.chances, ByMonth) and go.chances.at(1, 0) > go.chances.at(5, 0)
    assert isinstance(spec.model.dwell["a"], StayKernel)
    assert main([*args, "--tick", "1M"]) == 2
    assert "ambiguous" in capsys.readouterr().err
