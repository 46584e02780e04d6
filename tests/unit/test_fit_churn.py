"""`dogesim fit --model M` on the log of a run of M with churn: the log's `churned` state and
`churn` moves are the model's (as `dogesim report` reads them), and the fitted file says
each state's churn chance as a transition to `churned`."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dogesim.cli import main
from dogesim.modelfile import load_model_file

MODEL = """\
name: churny
seed: 3
states: [a, b]
initial_state: a
tick: 1m
ticks: 200
subjects: {count: 400}
churn: 2
sinks:
  events: {type: jsonl, path: events.jsonl}
default_sinks: [events]
transitions:
  - {trigger: go, from: a, to: b, probability: 10}
  - {trigger: back, from: b, to: a, probability: 20}
"""


def test_fit_reads_churn_and_writes_it_as_transitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fit of a churned run succeeds; each state's fitted churn chance lies within 5 sd
    (binomial, from the state's exposure) of the configured 2% per tick."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(MODEL)
    assert main(["run", "m.yaml"]) == 0
    code = main(["fit", "events.jsonl", "--model", "m.yaml", "-o", "fit.yaml"])
    assert code == 0
    fitted = load_model_file(tmp_path / "fit.yaml")
    assert "churned" in fitted.states
    churn = {t.from_state: t.probability for t in fitted.transitions if t.to_state == "churned"}
    assert set(churn) == {"a", "b"}
    # Subjects live ~50 ticks: at least 400 * 10 ticks are spent in each state.
    sd = math.sqrt(0.02 * 0.98 / 4000) * 100
    for state, chance in churn.items():
        assert isinstance(chance, float) and abs(chance - 2.0) < 5 * sd, (state, chance)
