"""The share report: observed vs simulated vs analytic occupancy shares on one tick grid,
TVD per tick with its mean and max (in the result and in words), and the figure's data
(read from the figure's lines, not its pixels)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from dogesim import MemorySink, Model, Simulation, Transition
from dogesim.errors import DogesimError
from dogesim.laws import Fixed
from dogesim.report import analytic, compare, plots, tables
from dogesim.result import RunResult

Z = 5.0
TICK_MS = 60_000


def mixed(sink: MemorySink) -> Model:
    """a -> b -> c -> a from a 3:1 mix of a and b; b lasts 4 ticks, c's entry waits 3."""
    return Model(
        ["a", "b", "c"],
        {"a": 3, "b": 1},
        [
            Transition("ab", "a", "b", 20, event_sinks=[sink]),
            Transition("bc", "b", "c", 10, event_sinks=[sink], delay=Fixed(3)),
            Transition("ca", "c", "a", 5, event_sinks=[sink]),
        ],
        dwell={"b": Fixed(4)},
    )


def run_and_log(
    model: Model, sink: MemorySink, n: int, ticks: int, **options: Any
) -> tuple[RunResult, pd.DataFrame]:
    """A seeded run and the occupancy its event log implies."""
    result = Simulation(model, n, ticks=ticks, tick_ms=TICK_MS, seed=8, **options).run()
    log = pd.DataFrame(compare.memory_log(sink.events))
    observed = tables.observed_occupancy(
        log, model, subjects=n, ticks=ticks, tick_ms=TICK_MS, timestamp_start=0
    )
    return result, observed


def test_share_report_gives_shares_and_tvd_per_tick() -> None:
    """Rows are shares; TVD is half the absolute difference per row; the run's own log has
    TVD 0; the analytic line (semi-Markov, from the run's mix) stays within Z binomial sd of
    the run in every state and row, so its TVD is within the sum of those bounds."""
    sink = MemorySink()
    model = mixed(sink)
    n, ticks = 2000, 120
    result, observed = run_and_log(model, sink, n, ticks)
    report = compare.share_report(observed=observed, result=result, model=model)
    assert list(report.shares) == ["observed", "simulated", "analytic"]
    assert report.reference == "observed" and report.semi_markov
    for table in report.shares.values():
        np.testing.assert_allclose(table.to_numpy().sum(axis=1), 1.0)
    obs, ana = report.shares["observed"].to_numpy(), report.shares["analytic"].to_numpy()
    np.testing.assert_allclose(report.tvd["analytic"], 0.5 * np.abs(obs - ana).sum(axis=1))
    assert report.tvd["simulated"].max() == 0.0
    low, high = analytic.expected_band(model, ticks, result.started(), Z)
    bound = 0.5 * (high - low).sum(axis=1) / 2 / n
    assert (report.tvd["analytic"].to_numpy() <= bound + 1e-12).all()
    summary = report.summary()
    assert summary["tvd_analytic_mean"] == pytest.approx(report.tvd["analytic"].mean())
    assert summary["tvd_analytic_max"] == pytest.approx(report.tvd["analytic"].max())
    assert summary["tvd_simulated_max"] == 0.0
    assert report.approximations == []
    lines = report.lines()
    assert lines[1] == (
        f"TVD per tick, analytic vs observed: mean {summary['tvd_analytic_mean']:.4f}, "
        f"max {summary['tvd_analytic_max']:.4f} ({ticks} rows)"
    )
    assert "exact up to sampling" in lines[-1]


def test_share_figure_draws_the_report_data() -> None:
    """Each state's panel holds the observed, simulated and analytic shares; the last
    panel the TVD per tick; the summary lines are written on the figure."""
    sink = MemorySink()
    model = mixed(sink)
    result, observed = run_and_log(model, sink, 300, 40)
    report = compare.share_report(observed=observed, result=result, model=model)
    fig = plots.plot_shares(report)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title(loc="left") for ax in axes] == [
        "a",
        "b",
        "c",
        "total variation distance per tick",
    ]
    for ax, state in zip(axes, ["a", "b", "c"], strict=False):
        drawn = {str(line.get_label()): np.asarray(line.get_ydata()) for line in ax.get_lines()}
        assert set(drawn) == {"observed", "simulated", "analytic"}
        for name, values in drawn.items():
            np.testing.assert_allclose(values, report.shares[name][state].to_numpy())
    tvd_lines = {
        str(line.get_label()): np.asarray(line.get_ydata()) for line in axes[-1].get_lines()
    }
    np.testing.assert_allclose(tvd_lines["analytic vs observed"], report.tvd["analytic"])
    texts = "\n".join(t.get_text() for t in fig.findobj(Text))
    for line in report.lines():
        assert line in texts


def test_share_report_says_when_the_analytic_line_approximates() -> None:
    """Per-subject rates, profiles, vetoes and arrivals are named in the report's notes and
    on the figure; too long a law falls back to the chain and says so."""
    sink = MemorySink()
    model = Model(
        ["a", "b"],
        "a",
        [
            Transition("go", "a", "b", 10, lambda s, t: False, [sink]),
            Transition("back", "b", "a", 10, event_sinks=[sink], rate_attribute="pace"),
        ],
        attributes={"pace": Fixed(1)},
    )
    result = Simulation(model, 50, ticks=20, tick_ms=TICK_MS, seed=1, arrivals=1).run()
    report = compare.share_report(result=result, model=model)
    assert report.reference == "simulated" and list(report.tvd) == ["analytic"]
    notes = " ".join(report.approximations)
    assert "subject attribute" in notes
    assert "arrived during the run" in notes
    assert "vetoed" in notes
    assert "is an approximation" in "\n".join(report.lines())
    texts = "\n".join(t.get_text() for t in report.figure().findobj(Text))
    assert "vetoed" in texts
    long = Model(["a", "b"], "a", [Transition("go", "a", "b", 10)], dwell={"a": Fixed(2e6)})
    plain = Simulation(long, 10, ticks=5, tick_ms=TICK_MS, seed=1).run()
    fallback = compare.share_report(result=plain, model=long)
    assert not fallback.semi_markov
    assert "dwell-time laws" in " ".join(fallback.approximations)


def test_share_report_on_rows_of_several_ticks_reads_the_log_at_the_row_ends() -> None:
    """With record_every the grid is the run's rows: the log's shares are taken at each
    row's last tick, so the run and its own log still agree exactly."""
    sink = MemorySink()
    model = mixed(sink)
    result, observed = run_and_log(model, sink, 400, 95, record_every=10)
    report = compare.share_report(observed=observed, result=result, model=model)
    assert len(report.shares["observed"]) == 10
    assert report.tvd["simulated"].max() == 0.0
    expected = analytic.expected_counts(model, 95, result.started(), every=10)
    np.testing.assert_allclose(
        report.shares["analytic"].to_numpy(), expected / expected.sum(axis=1, keepdims=True)
    )


def test_share_report_without_a_run_uses_the_log_and_the_models_mix() -> None:
    """An observed table alone is compared with the analytic line from the model's mix over
    the table's population; an empty call and a short table are refused."""
    sink = MemorySink()
    model = mixed(sink)
    _, observed = run_and_log(model, sink, 500, 30)
    report = compare.share_report(observed=observed, model=model)
    assert list(report.shares) == ["observed", "analytic"]
    start = 500 * analytic.initial_distribution(model)
    expected = analytic.expected_counts(model, 30, start)
    np.testing.assert_allclose(
        report.shares["analytic"].to_numpy(), expected / expected.sum(axis=1, keepdims=True)
    )
    with pytest.raises(DogesimError, match="needs an observed log or a run result"):
        compare.share_report()
    result = Simulation(model, 10, ticks=30, tick_ms=TICK_MS, seed=1).run()
    with pytest.raises(DogesimError, match="observed table has 5 ticks, the run 30"):
        compare.share_report(observed=observed.iloc[:5], result=result, model=model)


def test_share_figure_of_many_states_draws_the_largest() -> None:
    """With more states than panels the largest (by mean share) are drawn, in model order,
    and the figure says how many were left out."""
    states = [f"s{k}" for k in range(15)]
    model = Model(
        states,
        {s: k + 1 for k, s in enumerate(states)},
        [Transition(f"t{k}", s, states[(k + 1) % 15], 5) for k, s in enumerate(states)],
    )
    result = Simulation(model, 3000, ticks=5, tick_ms=TICK_MS, seed=2).run()
    report = compare.share_report(result=result, model=model)
    fig = plots.plot_shares(report)
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible()]
    drawn = titles[:-1]
    assert len(drawn) == plots.MAX_SHARE_PANELS
    assert drawn == sorted(drawn, key=states.index)
    means = report.shares["simulated"].mean()
    assert min(means[drawn]) >= max(means.drop(drawn))
    texts = "\n".join(t.get_text() for t in fig.findobj(Text))
    assert "4 smaller states not drawn" in texts


def _log_of(model: Model, sink: MemorySink, seed: int) -> pd.DataFrame:
    Simulation(model, 1500, ticks=60, tick_ms=TICK_MS, seed=seed).run()
    return pd.DataFrame(compare.memory_log(sink.events))


def test_spell_ks_of_two_logs_is_small_for_one_law_and_large_for_another() -> None:
    """Two runs of one model give spell-length KS distances under the two-sample bound
    (c(alpha=1e-6) sqrt((n+m)/(n m)), n and m the spells per state); b lasting 8 ticks
    instead of 4 puts b's distance near 1. The report keeps and prints them."""
    first, second, other = MemorySink(), MemorySink(), MemorySink()
    slow = mixed(other)
    slow.set_dwell("b", Fixed(8))
    logs = [_log_of(mixed(first), first, 1), _log_of(mixed(second), second, 2)]
    grid = {"tick": TICK_MS, "timestamp_start": 0, "ticks": 60}
    same = compare.log_spell_ks(logs[0], logs[1], mixed(MemorySink()), **grid)
    counts = [log["from_state"].value_counts() for log in logs]
    for state, ks in same.items():
        n, m = (int(c.get(state, 0)) for c in counts)
        assert ks < np.sqrt(-0.5 * np.log(1e-6 / 2)) * np.sqrt((n + m) / (n * m))
    apart = compare.log_spell_ks(logs[0], _log_of(slow, other, 3), mixed(MemorySink()), **grid)
    assert apart["b"] > 0.9
    result = Simulation(mixed(MemorySink()), 100, ticks=60, tick_ms=TICK_MS, seed=1).run()
    report = compare.share_report(result=result, spell_distances=apart)
    assert report.summary()["spell_ks_max"] == max(apart.values())
    assert any(line.startswith("spell-length KS per state") for line in report.lines())
