"""An event log without a trigger column, fitted with ``--model``, names each move by the
model's transition for its (from_state, to_state) pair when exactly one joins them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dogesim.cli import main
from dogesim.modelfile import load_model_file

MODEL = """\
name: configured
states: [idle, active]
initial_state: idle
tick: 1s
ticks: 10
start: 0
subjects: {count: 2}
transitions:
  - {trigger: start, from: idle, to: active, probability: 10}
"""


def test_fit_names_triggerless_moves_by_the_models_transition(tmp_path: Path) -> None:
    """A trigger-less log's idle -> active move is the model's 'start' (1 event in 13
    subject-ticks), not a second transition 'idle->active' beside a 'start' with 0 events."""
    (tmp_path / "m.yaml").write_text(MODEL)
    (tmp_path / "l.csv").write_text("subject,timestamp,from_state,to_state\n1,2000,idle,active\n")
    argv = ["fit", str(tmp_path / "l.csv"), "--model", str(tmp_path / "m.yaml")]
    assert main([*argv, "-o", str(tmp_path / "f.yaml")]) == 0
    moves = {t.trigger: t.probability for t in load_model_file(tmp_path / "f.yaml").transitions}
    assert moves == {"start": pytest.approx(100 / 13, rel=1e-5)}
