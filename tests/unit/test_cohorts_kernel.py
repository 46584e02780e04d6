"""Destination-by-length kernels (`dogesim.laws.StayKernel`) in the engine and model files.

A stay's length is drawn from the kernel, then its destination given the length; a
subject's first stay may follow its own kernel. The engine's joint law of (length,
destination) is checked against the kernel itself (Pearson, computed critical values at a
false-alarm rate of 1e-6), and against `fit_helpers.simulate_kernel`, the tests' reference
walker of a fitted kernel (a two-sample chi-square on events per tick and transition).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dogesim import Model
from dogesim.errors import ModelError
from dogesim.laws import StayKernel, as_law
from dogesim.modelfile import load_model_file
from dogesim.report.observed import observe
from dogesim.report.spells import fit_kernel
from tests.unit.cohorts_stats import chi_square_critical, fits_pmf
from tests.unit.fit_helpers import engine_log, simulate_kernel, two_sample

LATER = StayKernel([1, 3, 6], [2, 1, 1], {"B": [1, 0, 0.5], "C": [0, 1, 0.5]})
FIRST = StayKernel([2, 4], [1, 3], {"B": [0.25, 1], "C": [0.75, 0]})


def _model(first: StayKernel | None = FIRST) -> Model:
    """A kernel state A (first stays apart), B returning to A, C final."""
    law = StayKernel(LATER.lengths, LATER.weights, dict(LATER.to), first=first)
    model = Model(["A", "B", "C"], "A", dwell={"A": law})
    model.add_transition("toB", "A", "B", 0)
    model.add_transition("toC", "A", "C", 0)
    model.add_transition("back", "B", "A", 100)
    return model


def _joint(kernel: StayKernel) -> np.ndarray:
    """P(length, destination) of a stay, cells in (length, destination) order."""
    shares = np.asarray(kernel.weights) / sum(kernel.weights)
    pairs = zip(shares, kernel.lengths, strict=True)
    return np.array([s * r for s, length in pairs for r in kernel.row(length)])


def _cells(kernel: StayKernel, lengths: pd.Series, to: pd.Series) -> np.ndarray:
    """Each stay's (length, destination) cell, numbered from 1 as `_joint` orders them."""
    n = len(kernel.destinations)
    position = {length: k for k, length in enumerate(kernel.lengths)}
    where = {d: k for k, d in enumerate(kernel.destinations)}
    return np.array(
        [position[int(length)] * n + where[d] + 1 for length, d in zip(lengths, to, strict=True)]
    )


def test_first_and_later_stays_follow_their_kernels() -> None:
    """From tick 0 a subject's first stay in A ends at tick L - 1 with (L, destination) drawn
    from the first-stay kernel; its stay after returning from B follows the later kernel."""
    log, _ = engine_log(_model(), 6000, 40, seed=3)
    log["tick"] = log["timestamp"] // 1000
    leaving = log[log["from_state"] == "A"].copy()
    leaving["k"] = leaving.groupby("subject").cumcount()
    first = leaving[leaving["k"] == 0]
    assert len(first) == 6000
    assert fits_pmf(_cells(FIRST, first["tick"] + 1, first["to_state"]), _joint(FIRST))
    back = log[log["from_state"] == "B"].set_index("subject")["tick"]
    second = leaving[leaving["k"] == 1].set_index("subject")
    lengths = second["tick"] - back.groupby(level=0).first().reindex(second.index)
    assert len(second) > 2000
    assert fits_pmf(_cells(LATER, lengths, second["to_state"]), _joint(LATER))


def test_without_a_first_kernel_every_stay_follows_the_kernel() -> None:
    """With no first block, first stays follow the state's kernel too."""
    log, _ = engine_log(_model(first=None), 4000, 20, seed=4)
    first = log[log["from_state"] == "A"].drop_duplicates("subject")
    assert fits_pmf(_cells(LATER, first["timestamp"] // 1000 + 1, first["to_state"]), _joint(LATER))


def test_engine_walks_a_fitted_kernel_as_the_reference_walker() -> None:
    """A kernel fitted from a log, as the model's dwell laws, walked by the engine and by
    `simulate_kernel` from the same initial states: the same law of events per tick and
    transition (two-sample chi-square)."""
    truth = _model()
    log, roster = engine_log(truth, 800, 30, seed=8)
    obs = observe(log, tick=1000, states=truth.states, window_start=0, ticks=30, roster=roster)
    kernel = fit_kernel(obs)
    laws = kernel.dwell_laws()
    assert set(laws) == {"A", "B"} and laws["A"].first is not None
    model = Model(list(truth.states), "A", dwell=laws)
    model.add_transition("A->B", "A", "B", 0)
    model.add_transition("A->C", "A", "C", 0)
    model.add_transition("B->A", "B", "A", 0)
    engine, _ = engine_log(model, 5000, 30, seed=9)
    reference, _ = simulate_kernel(kernel, ["A"] * 5000, 30, np.random.default_rng(10))
    statistic, df = two_sample(engine, reference)
    assert df > 20
    assert statistic <= chi_square_critical(df)


def test_kernel_data_form_round_trips() -> None:
    """to_dict / as_law give the same kernel back, first block included."""
    law = _model().dwell["A"]
    again = as_law(law.to_dict(), "here")
    assert again == law and isinstance(again, StayKernel) and again.first == FIRST


def test_model_file_dwell_kernel(tmp_path: Path) -> None:
    """A model file's dwell section holds a kernel with a first block; the engine runs it."""
    path = tmp_path / "kernel.yaml"
    path.write_text(
        """
name: kernel
initial_state: A
states: [A, B, C]
tick: 1s
ticks: 10
subjects: {count: 50}
seed: 1
dwell:
  A:
    kernel: {lengths: [1, 3], weights: [1, 1], to: {B: [1, 0], C: [0, 1]}}
    first:
      kernel: {lengths: [2], weights: [1], to: {C: [1]}}
transitions:
  - {trigger: toB, from: A, to: B, probability: 0}
  - {trigger: toC, from: A, to: C, probability: 0}
  - {trigger: back, from: B, to: A, probability: 100}
"""
    )
    spec = load_model_file(path)
    law = spec.model.dwell["A"]
    assert isinstance(law, StayKernel) and law.first is not None
    assert law.first.lengths == (2,)
    log, _ = engine_log(spec.model, 50, 10, seed=1)
    first = log.drop_duplicates("subject")
    assert (first["timestamp"] == 1000).all() and (first["to_state"] == "C").all()


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ({"D": [1]}, "no transition leads there"),
        ({"B": [0]}, "no destination has a positive share"),
    ],
)
def test_bad_kernels_are_refused(to: dict[str, list[float]], message: str) -> None:
    """A destination no transition leads to, or a length with no destination, is refused
    with the state and the value named."""
    from dogesim import Simulation

    with pytest.raises(ModelError, match=message):
        model = Model(["A", "B", "D"], "A", dwell={"A": StayKernel([2], [1], to)})
        model.add_transition("toB", "A", "B", 0)
        Simulation(model, 1, ticks=2, tick_ms=1000).run()


def test_delay_into_a_kernel_state_is_refused() -> None:
    """A delay law on a move into a kernel state would give lengths the kernel has no
    destinations for: refused when the run starts."""
    from dogesim import Simulation

    model = _model()
    model.add_transition("loop", "C", "A", 10, delay={"law": "fixed", "value_ticks": 2})
    with pytest.raises(ModelError, match="has a delay law, but 'A' has a dwell kernel"):
        Simulation(model, 1, ticks=2, tick_ms=1000).run()


def test_kernel_stays_survive_a_snapshot() -> None:
    """`SemiMarkov.snapshot` is plain data (JSON) that `restore` turns back into the same
    kernel stays (kernel, length, first or not), for a checkpoint to keep."""
    import json

    from dogesim import Simulation
    from dogesim.engine.dwell import SemiMarkov

    sim = Simulation(_model(), 300, ticks=3, tick_ms=1000, seed=1)
    sim.run()
    walker = sim._walker
    assert walker is not None and walker.tables.semi is not None
    semi = walker.tables.semi
    data = json.loads(json.dumps(semi.snapshot()))
    again = SemiMarkov(walker.tables.model, walker.tables.order)
    again.restore(data, walker.population.view)

    def view(m: SemiMarkov) -> dict[int, tuple[StayKernel, int, bool]]:
        return {i: (k.law, length, first) for i, (k, length, first) in m.stay.items()}

    in_a = {i for i, s in enumerate(walker.population.view.tolist()) if s == 0}
    assert view(again) == view(semi) and set(semi.stay) <= in_a and len(semi.stay) > 100
    assert any(first for _, _, first in semi.stay.values())
    assert not all(first for _, _, first in semi.stay.values())


def test_model_file_kernel_mistakes_name_the_line() -> None:
    """A kernel whose shares do not match its lengths is refused with file:line and key."""
    from dogesim.modelfile import load_model_text

    text = """\
states: [A, B]
initial_state: A
tick: 1s
ticks: 5
subjects: {count: 1}
dwell:
  A: {kernel: {lengths: [1, 2], weights: [1, 1], to: {B: [1]}}}
transitions:
  - {trigger: go, from: A, to: B, probability: 0}
"""
    with pytest.raises(ModelError, match=r"<model>:7: dwell\.A: .*1 shares for 2 lengths"):
        load_model_text(text)


def test_engine_matches_the_per_tick_hazard_definition_of_kernels() -> None:
    """The engine (length drawn on entry, destination at its end) and
    `reference.cohort_reference` (the kernel as per-tick hazards, walked literally) give
    the same law of events per tick and transition, with an initial mix (two-sample
    chi-square)."""
    from tests.unit.reference import cohort_reference

    model = _model()
    model = Model(model.states, {"A": 3, "B": 1}, model.transitions, dwell=model.dwell)
    engine, _ = engine_log(model, 4000, 25, seed=12)
    reference = pd.DataFrame(
        cohort_reference(model, 4000, 25, seed=13),
        columns=["subject", "timestamp", "from_state", "to_state"],
    )
    statistic, df = two_sample(engine, reference)
    assert df > 30
    assert statistic <= chi_square_critical(df)
