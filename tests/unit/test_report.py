"""Reports: analytic occupancy (exact on a 2-state chain, statistically on banking), tables,
observed occupancy from event logs, and plots that render on Agg."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dogesim import MemorySink, Model, Simulation
from dogesim.examples import banking
from dogesim.modelfile import load_model_file
from dogesim.report import analytic, plots, tables

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def two_state(p: float, q: float) -> Model:
    """a -> b with p% per tick, b -> a with q% per tick."""
    model = Model(["a", "b"], "a", name="two")
    model.add_transition("go", "a", "b", p)
    model.add_transition("back", "b", "a", q)
    return model


def record(timestamp: int, subject: object, transition: object) -> dict[str, object]:
    return {
        "subject": subject.user_id if hasattr(subject, "user_id") else subject.id,  # type: ignore[attr-defined]
        "timestamp": timestamp,
        "trigger": transition.trigger,  # type: ignore[attr-defined]
        "from_state": transition.from_state,  # type: ignore[attr-defined]
        "to_state": transition.to_state,  # type: ignore[attr-defined]
    }


def test_analytic_matches_closed_form_two_state_chain() -> None:
    """Row t is pi0 P^(t+1): P(a after t+1 ticks) = q/(p+q) + p/(p+q) (1-p-q)^(t+1)."""
    p, q = 0.07, 0.2
    probs = analytic.occupancy_probabilities(two_state(100 * p, 100 * q), 200)
    t = np.arange(200)
    in_a = q / (p + q) + p / (p + q) * (1 - p - q) ** (t + 1)
    np.testing.assert_allclose(probs[:, 0], in_a, rtol=0, atol=1e-12)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(
        analytic.stationary_distribution(two_state(100 * p, 100 * q)),
        [q / (p + q), p / (p + q)],
        atol=1e-12,
    )


def test_engine_convention_first_row_is_after_tick_zero() -> None:
    """A certain move shows in row 0: the occupancy after tick 0's moves."""
    model = two_state(100, 100)
    probs = analytic.occupancy_probabilities(model, 3)
    np.testing.assert_array_equal(probs, [[0, 1], [1, 0], [0, 1]])
    result = Simulation(model, 5, ticks=3, tick_ms=1000, seed=1).run()
    np.testing.assert_array_equal(result.occupancy, 5 * probs)


def test_stationary_distribution_of_absorbing_and_banking_chains() -> None:
    """An absorbing state takes everything; banking's pi solves pi P = pi."""
    model = Model(["a", "b", "dead"], "a")
    model.add_transition("go", "a", "b", 10)
    model.add_transition("die", "b", "dead", 5)
    np.testing.assert_allclose(analytic.stationary_distribution(model), [0, 0, 1], atol=1e-9)
    chain = banking.build_banking_model(callbacks=False)
    pi = analytic.stationary_distribution(chain)
    np.testing.assert_allclose(pi @ analytic.transition_matrix(chain), pi, atol=1e-14)
    assert pi.sum() == pytest.approx(1.0)
    # Two closed classes: the limit depends on where the chain starts.
    split = Model(["s", "x", "y"], "s")
    split.add_transition("left", "s", "x", 30)
    split.add_transition("right", "s", "y", 10)
    np.testing.assert_allclose(analytic.stationary_distribution(split), [0, 0.75, 0.25], atol=1e-9)


def test_banking_occupancy_within_binomial_bounds() -> None:
    """Simulated banking occupancy (no callbacks, 20k subjects) stays within 5 binomial sd of
    n pi_t at chosen ticks, for every state."""
    n, ticks = 20_000, 1000
    result = banking.banking_simulation(subjects=n, ticks=ticks, seed=2024, callbacks=False).run()
    probs = analytic.occupancy_probabilities(banking.build_banking_model(callbacks=False), ticks)
    for t in (0, 1, 2, 5, 10, 50, 200, 500, 999):
        for k, state in enumerate(result.states):
            mean = n * probs[t, k]
            sd = np.sqrt(n * probs[t, k] * (1 - probs[t, k]))
            assert abs(result.occupancy[t, k] - mean) <= 5 * sd, (t, state)
    # At tick 0 nobody can have reached the loan screen yet: the bound is exactly 0.
    assert result.occupancy[0, 2] == 0


def test_occupancy_and_event_frames() -> None:
    """Frames carry a UTC datetime index at the tick timestamps and the run's numbers."""
    result = banking.banking_simulation(
        subjects=500, ticks=120, seed=5, timestamp_start=1_704_067_200_000
    ).run()
    occupancy = tables.occupancy_frame(result)
    assert isinstance(occupancy.index, pd.DatetimeIndex)
    assert str(occupancy.index.tz) == "UTC"
    assert occupancy.index[0] == pd.Timestamp("2024-01-01T00:00:00Z")
    assert occupancy.index[1] - occupancy.index[0] == pd.Timedelta(minutes=1)
    assert list(occupancy.columns) == list(result.states)
    np.testing.assert_array_equal(occupancy.to_numpy(), result.occupancy)
    events = tables.events_frame(result)
    assert events.sum().to_dict() == result.events_by_trigger()
    assert len(events) == result.ticks


def test_transition_table_counts_vetoes_and_exposure() -> None:
    """Spending is vetoed when the balance is short; other transitions never are; the
    exposure is the subject-ticks spent in the source state."""
    result = banking.banking_simulation(subjects=3000, ticks=600, seed=9).run()
    table = tables.transition_table(result).set_index("trigger")
    assert table.loc["spending", "vetoes"] > 0
    assert 0 < table.loc["spending", "veto_rate"] < 1
    assert (table.drop(index="spending")["vetoes"] == 0).all()
    assert (table["attempts"] == table["events"] + table["vetoes"]).all()
    total_subject_ticks = table.loc[["login", "logout", "close_loan_screen"], "subject_ticks"]
    assert total_subject_ticks.sum() == 3000 * 600


def test_observed_occupancy_rebuilds_the_run_exactly(tmp_path: Path) -> None:
    """Replaying a complete event log gives exactly the engine's occupancy — from full
    records, and from README-shaped records (triggers only) through the model."""
    sink = MemorySink(record)
    readme = MemorySink(banking.event_record)
    result = banking.banking_simulation(
        {t[0]: [sink, readme] for t in banking.TRANSITIONS}, subjects=800, ticks=400, seed=4
    ).run()
    model = banking.build_banking_model()
    log = tables.read_event_log(sink.events)
    observed = tables.observed_occupancy(
        log, model, subjects=800, ticks=400, tick_ms=60_000, timestamp_start=0
    )
    np.testing.assert_array_equal(observed.to_numpy(), result.occupancy)
    path = tmp_path / "readme.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in readme.events))
    from_triggers = tables.read_event_log(path, model=model)
    assert list(from_triggers.columns) == list(tables.EVENT_COLUMNS)
    again = tables.observed_occupancy(
        from_triggers, model, subjects=800, ticks=400, tick_ms=60_000, timestamp_start=0
    )
    np.testing.assert_array_equal(again.to_numpy(), result.occupancy)


def test_ambiguous_triggers_are_replayed_per_subject(tmp_path: Path) -> None:
    """`telemetry` leaves two states in the IoT model; states are replayed per subject."""
    spec = load_model_file(ROOT / "models" / "iot_fleet.yaml", subjects=60, ticks=300)
    sink = MemorySink(lambda ts, s, t: {"id": s.id, "timestamp": ts, "event": t.trigger})
    result = spec.run(sinks=[sink])
    log = tables.read_event_log(sink.events, model=spec.model)
    observed = tables.observed_occupancy(
        log,
        spec.model,
        subjects=60,
        ticks=300,
        tick_ms=spec.tick_ms,
        timestamp_start=spec.timestamp_start,
    )
    np.testing.assert_array_equal(observed.to_numpy(), result.occupancy)


def test_read_event_log_errors(tmp_path: Path) -> None:
    """Missing fields and unknown triggers are named."""
    from dogesim import DogesimError

    with pytest.raises(DogesimError, match="cannot find the subject field"):
        tables.read_event_log([{"timestamp": 1, "trigger": "x"}])
    with pytest.raises(DogesimError, match="no from_state/to_state"):
        tables.read_event_log([{"id": 1, "timestamp": 1, "trigger": "x"}])
    with pytest.raises(DogesimError, match=r"triggers \['fly'\] are not in model"):
        tables.read_event_log(
            [{"id": 1, "timestamp": 1, "trigger": "fly"}], model=banking.build_banking_model()
        )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\nnot json\n')
    with pytest.raises(DogesimError, match=r"bad.jsonl:2: not a JSON line"):
        tables.read_event_log(bad)


def test_plots_render_to_png() -> None:
    """Every plot renders to PNG with the Agg machinery (no display needed)."""
    spec = load_model_file(ROOT / "models" / "ecommerce.yaml", subjects=300, ticks=200)
    sink = MemorySink(record)
    result = spec.run(sinks=[sink])
    observed = tables.observed_occupancy(
        tables.read_event_log(sink.events),
        spec.model,
        subjects=300,
        ticks=200,
        tick_ms=spec.tick_ms,
        timestamp_start=spec.timestamp_start,
    )
    figures = [
        plots.plot_occupancy(result, observed=observed),
        plots.plot_occupancy(model=spec.model, subjects=300, ticks=200, tick_ms=60_000),
        plots.plot_event_rates(result),
        plots.plot_transition_heatmap(result),
    ]
    for figure in figures:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        assert buffer.getvalue().startswith(PNG_MAGIC)
    assert len(figures[0].axes) == 4  # one panel per state
    labels = {line.get_label() for line in figures[0].axes[0].get_lines()}
    assert {"simulated", "analytic", "observed"} <= labels


def test_import_dogesim_stays_light() -> None:
    """Importing dogesim, its model files, CLI, graphs and the report package loads no
    pandas, matplotlib or scipy."""
    code = (
        "import sys, dogesim, dogesim.modelfile, dogesim.cli, dogesim.graph, dogesim.report\n"
        "heavy = [m for m in ('pandas', 'matplotlib', 'scipy', 'confluent_kafka', 'sqlalchemy')"
        " if m in sys.modules]\n"
        "print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_occupancy_band_stays_within_the_possible_counts() -> None:
    """The +/- 3 sd band of a small population is clipped to 0 .. n (10 subjects reached
    10.42 and went below 0 before)."""
    model = banking.build_banking_model([])
    low, high = analytic.occupancy_band(model, 100, 10)
    assert low.min() >= 0 and high.max() <= 10
    assert (high > low).any()  # still a band where the law spreads the counts
